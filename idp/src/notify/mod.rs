//! Notifications: a durable outbox in SQL and the senders that deliver it.
//!
//! Code that wants to tell a person something (a one-time code, "your password was changed")
//! enqueues a [`NewMessage`]; a [`Dispatcher`] on every node claims due messages with a lease
//! (so two nodes never send the same message at once), sends each through the [`Sender`] for
//! its [`Channel`], and records the outcome: sent, retry later with exponential backoff, or
//! given up. Delivery is at least once. The recipient and the body are sealed in the database,
//! and nothing here logs them: tracing fields are the message id, channel, attempt and an
//! error class. See `docs/design/notify.md`.

use std::fmt;

use chrono::{DateTime, Duration, Utc};

use crate::config::notify::NotifyConfig;
use crate::store::StoreResult;

mod dispatcher;
mod gateway;
mod mailbox;
mod smtp;
#[cfg(test)]
mod tests;

pub use dispatcher::{Dispatcher, Round, Senders};
pub use gateway::HttpGatewaySender;
pub use mailbox::{DevMailbox, DevMessage};
pub use smtp::SmtpSender;

/// How a message reaches the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    Email,
    Sms,
    Voice,
    Push,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Email, Channel::Sms, Channel::Voice, Channel::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Voice => "voice",
            Channel::Push => "push",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The recipient of a push message: the device's platform and its token, as one string
/// `<platform>:<token>` (the outbox seals it like any recipient). The gateway sender splits
/// it again into `platform` and `to` (`docs/design/push.md`).
pub fn push_recipient(platform: &str, token: &str) -> String {
    format!("{platform}:{token}")
}

/// The platform (`android`, `ios`, `huawei`) and the token of a push recipient; a recipient
/// without a known platform prefix is all token.
pub fn split_push_recipient(recipient: &str) -> (Option<&str>, &str) {
    match recipient.split_once(':') {
        Some((p, token)) if matches!(p, "android" | "ios" | "huawei") => (Some(p), token),
        _ => (None, recipient),
    }
}

/// A message to enqueue. `Debug` shows neither the recipient nor the content.
#[derive(Clone, PartialEq)]
pub struct NewMessage {
    pub channel: Channel,
    /// E-mail address, phone number (E.164) or push device ([`push_recipient`]).
    pub recipient: String,
    /// E-mail subject; other channels ignore it.
    pub subject: Option<String>,
    /// The text; may hold a one-time code.
    pub text: String,
    /// What the message is (`otp`, `password_changed`, ...): for metrics and support.
    pub kind: String,
    /// Language of the text (`ru`, `en`); voice gateways use it to pick a voice.
    pub locale: String,
}

impl NewMessage {
    pub fn new(
        channel: Channel,
        recipient: impl Into<String>,
        kind: impl Into<String>,
        text: impl Into<String>,
    ) -> NewMessage {
        NewMessage {
            channel,
            recipient: recipient.into(),
            subject: None,
            text: text.into(),
            kind: kind.into(),
            locale: "ru".into(),
        }
    }

    pub fn with_subject(mut self, subject: impl Into<String>) -> NewMessage {
        self.subject = Some(subject.into());
        self
    }

    pub fn with_locale(mut self, locale: impl Into<String>) -> NewMessage {
        self.locale = locale.into();
        self
    }
}

impl fmt::Debug for NewMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewMessage")
            .field("channel", &self.channel)
            .field("kind", &self.kind)
            .field("locale", &self.locale)
            .finish_non_exhaustive()
    }
}

/// A claimed message, opened, ready to send. `Debug` shows neither the recipient nor the
/// content.
#[derive(Clone, PartialEq)]
pub struct Message {
    /// Stable across retries; gateways may use it to drop duplicates.
    pub id: String,
    pub channel: Channel,
    pub recipient: String,
    pub subject: Option<String>,
    pub text: String,
    pub kind: String,
    pub locale: String,
    pub created_at: DateTime<Utc>,
    /// Which attempt this claim is (1 for the first). Pass it back to
    /// [`OutboxStore::record_failure`].
    pub attempt: u32,
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("channel", &self.channel)
            .field("kind", &self.kind)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

/// Where a message stands, without its content (for support views and tests).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEntry {
    pub id: String,
    pub channel: Channel,
    pub kind: String,
    pub locale: String,
    pub created_at: DateTime<Utc>,
    /// Claims so far.
    pub attempts: u32,
    pub next_attempt_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// When the dispatcher gave up.
    pub failed_at: Option<DateTime<Utc>>,
    /// Error class of the last failed attempt (never the recipient or content).
    pub last_error: Option<String>,
}

/// Why a send failed. The text is a short class or status code made by the sender (`smtp:
/// rejected (550)`, `gateway: HTTP 503`, `gateway: timeout`); it never holds the recipient,
/// the content or a server's reply text, so it may be logged and stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Retrying will not help: the recipient or the message was refused.
    #[error("permanent: {0}")]
    Permanent(String),
    /// May succeed later: timeout, connection refused, server busy.
    #[error("temporary: {0}")]
    Temporary(String),
}

impl SendError {
    pub fn is_permanent(&self) -> bool {
        matches!(self, SendError::Permanent(_))
    }

    /// The error class, safe to log and to store.
    pub fn reason(&self) -> &str {
        match self {
            SendError::Permanent(r) | SendError::Temporary(r) => r,
        }
    }
}

/// Delivers one message over one technology.
#[async_trait::async_trait]
pub trait Sender: Send + Sync {
    async fn send(&self, m: &Message) -> Result<(), SendError>;
}

/// Claims, retries and backoff.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts before a message is given up.
    pub max_attempts: u32,
    /// Delay after the first failed attempt; doubled after each further one.
    pub backoff_base: Duration,
    /// Upper bound of the delay.
    pub backoff_max: Duration,
    /// How long a claim holds a message before another dispatcher may take it.
    pub lease: Duration,
}

impl RetryPolicy {
    pub fn from_config(cfg: &NotifyConfig) -> RetryPolicy {
        let secs = |v: u64| Duration::seconds(i64::try_from(v).unwrap_or(i64::MAX / 1_000_000));
        RetryPolicy {
            max_attempts: cfg.max_attempts.max(1),
            backoff_base: secs(cfg.backoff_base_secs),
            backoff_max: secs(cfg.backoff_max_secs),
            lease: secs(cfg.lease_secs),
        }
    }

    /// Delay before the attempt after failed attempt `attempt` (1-based):
    /// `base * 2^(attempt-1)`, at most `backoff_max`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let factor = 1i32 << doublings;
        self.backoff_base
            .checked_mul(factor)
            .unwrap_or(self.backoff_max)
            .min(self.backoff_max)
    }

    /// When to try again after failed attempt `attempt`, or None to give up.
    pub fn retry_at(
        &self,
        attempt: u32,
        permanent: bool,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if permanent || attempt >= self.max_attempts {
            return None;
        }
        Some(now + self.backoff(attempt))
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::from_config(&NotifyConfig::default())
    }
}

/// What [`OutboxStore::record_failure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// The message is due again at this time.
    RetryAt(DateTime<Utc>),
    /// Permanent error or last attempt: the message will not be sent.
    GaveUp,
    /// The claim was no longer current (the lease ran out and another dispatcher took the
    /// message, or it was already sent): nothing was changed.
    Stale,
}

/// The durable outbox. Times are parameters; nothing here reads the clock.
pub trait OutboxStore {
    /// Queues a message, due at `now`. Returns its id.
    fn enqueue(&self, m: &NewMessage, now: DateTime<Utc>) -> StoreResult<String>;

    /// Claims up to `limit` messages due at `now`, oldest due first, and opens them. Each claim
    /// is a conditional UPDATE that counts the attempt and moves the message's due time to
    /// `now + policy.lease`; of concurrent claimers exactly one wins each message. A message
    /// whose last allowed attempt's lease ran out is given up instead; one that cannot be
    /// opened is given up too.
    fn claim_due(
        &self,
        now: DateTime<Utc>,
        limit: usize,
        policy: &RetryPolicy,
    ) -> StoreResult<Vec<Message>>;

    /// Records that the message was delivered. Ok(false) if it was already marked sent.
    fn mark_sent(&self, id: &str, now: DateTime<Utc>) -> StoreResult<bool>;

    /// Records a failed `attempt` of message `id`: due again after the policy's backoff, or
    /// given up when `error` is permanent or this was the last attempt. Only the current claim
    /// (the latest attempt) may record a failure.
    fn record_failure(
        &self,
        id: &str,
        attempt: u32,
        error: &SendError,
        policy: &RetryPolicy,
        now: DateTime<Utc>,
    ) -> StoreResult<FailureOutcome>;

    /// Deletes messages sent or given up before `before`. Returns how many.
    fn purge_finished(&self, before: DateTime<Utc>) -> StoreResult<usize>;

    /// The state of one message, without its content.
    fn outbox_entry(&self, id: &str) -> StoreResult<Option<OutboxEntry>>;
}

/// Setting up a sender failed (unreadable secret file, invalid setting).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot read {path}: {source}")]
    ReadFile {
        path: String,
        source: std::io::Error,
    },
    #[error("notify configuration: {0}")]
    Config(String),
}

/// Reads a secret from a file, without the trailing newline.
fn read_secret_file(path: &std::path::Path) -> Result<String, NotifyError> {
    let text = std::fs::read_to_string(path).map_err(|source| NotifyError::ReadFile {
        path: path.display().to_string(),
        source,
    })?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}
