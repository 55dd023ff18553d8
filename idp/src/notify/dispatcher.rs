//! The background sender: claims due messages, sends each through its channel's sender and
//! records the outcome. Every node runs one; leases keep them from sending a message twice.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;

use super::{
    Channel, DevMailbox, FailureOutcome, HttpGatewaySender, Message, NotifyError, OutboxStore,
    RetryPolicy, SendError, Sender, SmtpSender,
};
use crate::clock::Clock;
use crate::config::notify::NotifyConfig;
use crate::store::{StoreError, StoreResult};

/// How often finished messages are purged.
const PURGE_EVERY: chrono::Duration = chrono::Duration::hours(1);

/// The sender for each channel.
#[derive(Clone)]
pub struct Senders {
    email: Arc<dyn Sender>,
    sms: Arc<dyn Sender>,
    voice: Arc<dyn Sender>,
    push: Arc<dyn Sender>,
}

impl std::fmt::Debug for Senders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Senders").finish_non_exhaustive()
    }
}

impl Senders {
    /// One sender for every channel.
    pub fn all(sender: Arc<dyn Sender>) -> Senders {
        Senders {
            email: sender.clone(),
            sms: sender.clone(),
            voice: sender.clone(),
            push: sender,
        }
    }

    /// These senders with `sender` for `channel`.
    pub fn with(mut self, channel: Channel, sender: Arc<dyn Sender>) -> Senders {
        *self.slot(channel) = sender;
        self
    }

    fn slot(&mut self, channel: Channel) -> &mut Arc<dyn Sender> {
        match channel {
            Channel::Email => &mut self.email,
            Channel::Sms => &mut self.sms,
            Channel::Voice => &mut self.voice,
            Channel::Push => &mut self.push,
        }
    }

    pub fn get(&self, channel: Channel) -> Arc<dyn Sender> {
        match channel {
            Channel::Email => self.email.clone(),
            Channel::Sms => self.sms.clone(),
            Channel::Voice => self.voice.clone(),
            Channel::Push => self.push.clone(),
        }
    }

    /// SMTP for e-mail when `smtp.host` is set, the HTTP gateway for SMS, voice and push when
    /// `gateway.url` is set, and `mailbox` for whatever is not configured. Reads the secret
    /// files now, so a missing file stops start-up rather than every send.
    pub fn from_config(cfg: &NotifyConfig, mailbox: &DevMailbox) -> Result<Senders, NotifyError> {
        let mut senders = Senders::all(Arc::new(mailbox.clone()));
        if cfg.smtp.host().is_some() {
            senders = senders.with(
                Channel::Email,
                Arc::new(SmtpSender::from_config(&cfg.smtp)?),
            );
        } else {
            tracing::warn!(
                channel = "email",
                "no SMTP relay configured; e-mail goes to the dev mailbox"
            );
        }
        if cfg.gateway.url().is_some() {
            let gateway: Arc<dyn Sender> = Arc::new(HttpGatewaySender::from_config(&cfg.gateway)?);
            for c in [Channel::Sms, Channel::Voice, Channel::Push] {
                senders = senders.with(c, gateway.clone());
            }
        } else {
            tracing::warn!(
                channel = "sms,voice,push",
                "no HTTP gateway configured; these messages go to the dev mailbox"
            );
        }
        Ok(senders)
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub claimed: usize,
    pub sent: usize,
    /// Failed and due again later.
    pub retried: usize,
    /// Failed for good (permanent error or last attempt).
    pub gave_up: usize,
    /// The outcome could not be recorded (the claim was taken over, or the database failed);
    /// the message is retried when its lease ends.
    pub unrecorded: usize,
}

enum Outcome {
    Sent,
    Retry,
    GaveUp,
    Unrecorded,
}

/// Runs `f` with the store on tokio's blocking pool (the store traits are synchronous).
async fn blocking<S, R>(
    store: &S,
    f: impl FnOnce(&S) -> StoreResult<R> + Send + 'static,
) -> StoreResult<R>
where
    S: Clone + Send + 'static,
    R: Send + 'static,
{
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| StoreError::Db(format!("outbox task failed: {e}")))?
}

/// Claims due messages and sends them.
pub struct Dispatcher<S> {
    store: S,
    senders: Senders,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
    batch: usize,
    interval: std::time::Duration,
    retention: chrono::Duration,
}

impl<S> std::fmt::Debug for Dispatcher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("policy", &self.policy)
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl<S> Dispatcher<S>
where
    S: OutboxStore + Clone + Send + Sync + 'static,
{
    pub fn new(store: S, senders: Senders, clock: Arc<dyn Clock>, cfg: &NotifyConfig) -> Self {
        Dispatcher {
            store,
            senders,
            clock,
            policy: RetryPolicy::from_config(cfg),
            batch: usize::try_from(cfg.batch_size).unwrap_or(usize::MAX).max(1),
            interval: std::time::Duration::from_millis(cfg.poll_interval_ms.max(1)),
            retention: chrono::Duration::days(i64::from(cfg.retention_days)),
        }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// One round: claims up to a batch of due messages, sends them concurrently and records
    /// each outcome. An error means the claim itself failed (database unreachable).
    pub async fn run_once(&self) -> Result<Round, StoreError> {
        let now = self.clock.now();
        let (policy, batch) = (self.policy.clone(), self.batch);
        let messages = blocking(&self.store, move |s| s.claim_due(now, batch, &policy)).await?;
        let mut round = Round {
            claimed: messages.len(),
            ..Round::default()
        };
        let mut tasks = JoinSet::new();
        for m in messages {
            tasks.spawn(deliver(
                self.store.clone(),
                self.senders.get(m.channel),
                self.clock.clone(),
                self.policy.clone(),
                m,
            ));
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Outcome::Sent) => round.sent += 1,
                Ok(Outcome::Retry) => round.retried += 1,
                Ok(Outcome::GaveUp) => round.gave_up += 1,
                Ok(Outcome::Unrecorded) | Err(_) => round.unrecorded += 1,
            }
        }
        Ok(round)
    }

    /// Deletes messages finished (sent or given up) longer than the retention ago.
    pub async fn purge(&self) -> Result<usize, StoreError> {
        let before = self.clock.now() - self.retention;
        blocking(&self.store, move |s| s.purge_finished(before)).await
    }

    /// Runs rounds every poll interval (at once again while rounds come back full) and purges
    /// hourly. Never returns; drop or abort the task to stop it.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_purge: Option<DateTime<Utc>> = None;
        loop {
            tick.tick().await;
            loop {
                match self.run_once().await {
                    Ok(r) if r.claimed >= self.batch => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "outbox: cannot claim messages");
                        break;
                    }
                }
            }
            let now = self.clock.now();
            if last_purge.is_none_or(|t| now - t >= PURGE_EVERY) {
                last_purge = Some(now);
                match self.purge().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, "outbox: finished messages deleted"),
                    Err(e) => tracing::error!(error = %e, "outbox: purge failed"),
                }
            }
        }
    }

    /// Starts [`Dispatcher::run`] on the tokio runtime.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }
}

/// Sends one claimed message and records the outcome. Logs only id, channel, attempt and the
/// error class.
async fn deliver<S>(
    store: S,
    sender: Arc<dyn Sender>,
    clock: Arc<dyn Clock>,
    policy: RetryPolicy,
    m: Message,
) -> Outcome
where
    S: OutboxStore + Clone + Send + Sync + 'static,
{
    // A send must end before the lease does, or another node could send the message again.
    let limit = (policy.lease * 3 / 4)
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(1));
    let result = match tokio::time::timeout(limit, sender.send(&m)).await {
        Ok(r) => r,
        Err(_) => Err(SendError::Temporary("send took too long".into())),
    };
    let now = clock.now();
    let (id, channel, attempt) = (m.id.clone(), m.channel.as_str(), m.attempt);
    match result {
        Ok(()) => {
            let key = id.clone();
            match blocking(&store, move |s| s.mark_sent(&key, now)).await {
                Ok(_) => {
                    tracing::info!(id = %id, channel, attempt, "notification sent");
                    Outcome::Sent
                }
                Err(e) => {
                    tracing::error!(id = %id, channel, attempt, error = %e, "notification sent but not recorded; it may be sent again");
                    Outcome::Unrecorded
                }
            }
        }
        Err(err) => {
            let (key, e2) = (id.clone(), err.clone());
            let recorded = blocking(&store, move |s| {
                s.record_failure(&key, attempt, &e2, &policy, now)
            })
            .await;
            let error = err.reason();
            match recorded {
                Ok(FailureOutcome::RetryAt(at)) => {
                    tracing::warn!(id = %id, channel, attempt, error, retry_at = %at, "notification failed; will retry");
                    Outcome::Retry
                }
                Ok(FailureOutcome::GaveUp) => {
                    tracing::error!(id = %id, channel, attempt, error, permanent = err.is_permanent(), "notification failed; giving up");
                    Outcome::GaveUp
                }
                Ok(FailureOutcome::Stale) => {
                    tracing::warn!(id = %id, channel, attempt, error, "notification failed after its claim was taken over");
                    Outcome::Unrecorded
                }
                Err(e) => {
                    tracing::error!(id = %id, channel, attempt, error, store_error = %e, "notification failure not recorded");
                    Outcome::Unrecorded
                }
            }
        }
    }
}
