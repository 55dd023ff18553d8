//! The dev mailbox: keeps the newest messages in memory instead of sending them, for a
//! demo-mode page that shows what would have been sent. Never a production sender.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::{Channel, Message, SendError, Sender};

/// One message as the dev mailbox keeps it. `Debug` shows no recipient or content.
#[derive(Clone, PartialEq)]
pub struct DevMessage {
    pub id: String,
    pub channel: Channel,
    pub to: String,
    pub subject: Option<String>,
    pub text: String,
    pub kind: String,
    pub locale: String,
    /// When the message was queued.
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for DevMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevMessage")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The newest `capacity` messages, shared by clones.
#[derive(Clone)]
pub struct DevMailbox {
    messages: Arc<Mutex<VecDeque<DevMessage>>>,
    capacity: usize,
}

impl std::fmt::Debug for DevMailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevMailbox")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl DevMailbox {
    pub fn new(capacity: usize) -> DevMailbox {
        DevMailbox {
            messages: Arc::new(Mutex::new(VecDeque::with_capacity(capacity.min(1024)))),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<DevMessage>> {
        // A panic while holding the lock leaves the queue consistent (push/pop only).
        self.messages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The kept messages, newest first.
    pub fn recent(&self) -> Vec<DevMessage> {
        self.lock().iter().rev().cloned().collect()
    }

    /// Keeps `m`, dropping the oldest message when full.
    pub fn push(&self, m: DevMessage) {
        let mut q = self.lock();
        q.push_back(m);
        while q.len() > self.capacity {
            q.pop_front();
        }
    }
}

#[async_trait::async_trait]
impl Sender for DevMailbox {
    async fn send(&self, m: &Message) -> Result<(), SendError> {
        self.push(DevMessage {
            id: m.id.clone(),
            channel: m.channel,
            to: m.recipient.clone(),
            subject: m.subject.clone(),
            text: m.text.clone(),
            kind: m.kind.clone(),
            locale: m.locale.clone(),
            created_at: m.created_at,
        });
        Ok(())
    }
}
