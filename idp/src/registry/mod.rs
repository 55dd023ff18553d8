//! The registry verifier (issue 5): SNILS + passport checked against the state registries
//! like an inter-agency exchange — a request is submitted, stays pending, and the answer
//! comes later. The durable state is the `verifications` table; [`Verifier`] (a background
//! task like the notify dispatcher) submits due requests, polls for answers, retries an
//! unavailable registry with exponential backoff and applies the answer in one transaction
//! with its audit event.
//!
//! Implementations: [`simulated::SimulatedRegistry`] (demo and tests; answers configured per
//! SNILS) and [`http::HttpRegistry`] (the JSON contract in `docs/design/identity.md`).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::audit::AuditEvent;
use crate::clock::Clock;
use crate::config::identity::RegistryConfig;
use crate::domain::person::{
    Document, DocumentKind, IdentityClaim, MismatchReason, Verification, VerificationState,
    VerifiedState,
};
use crate::store::{PersonStore, SqlStore, StoreError, VerificationEffect};

pub mod certificate;
pub mod http;
pub mod simulated;

/// The registry's answer to a request it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Not answered yet: ask again later.
    Pending,
    Matched,
    Mismatch(MismatchReason),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Not reachable, timed out, or answered 5xx: retried with backoff.
    #[error("registry unavailable: {0}")]
    Unavailable(String),
    /// The registry refused the request itself (4xx, malformed answer): not retried.
    #[error("registry refused the request: {0}")]
    Refused(String),
}

/// An asynchronous request/response exchange with the registries.
#[async_trait::async_trait]
pub trait Registry: Send + Sync {
    /// Sends a request; the registry accepts it and returns its reference.
    async fn submit(
        &self,
        request_id: &str,
        claim: &IdentityClaim,
    ) -> Result<String, RegistryError>;
    /// Asks for the answer to an accepted request.
    async fn poll(&self, registry_ref: &str) -> Result<Answer, RegistryError>;
}

/// The registry the configuration names.
pub fn from_config(cfg: &RegistryConfig) -> Result<Arc<dyn Registry>, String> {
    match cfg.kind.as_str() {
        "http" => {
            let url = cfg
                .url
                .as_deref()
                .ok_or("identity.registry.url is required")?;
            Ok(Arc::new(http::HttpRegistry::new(
                url,
                std::time::Duration::from_secs(cfg.timeout_secs),
            )?))
        }
        _ => Ok(Arc::new(simulated::SimulatedRegistry::new(
            cfg.simulated_answers.clone(),
        ))),
    }
}

/// The verified passport recorded from a matched claim.
pub fn passport_of(v: &Verification, now: DateTime<Utc>) -> Document {
    let c = &v.claim;
    Document {
        id: format!("doc-{}", v.id),
        kind: DocumentKind::Passport,
        series: Some(c.passport_series.clone()),
        number: c.passport_number.clone(),
        issue_date: Some(c.passport_issue_date),
        issued_by: Some(c.passport_issued_by.clone()),
        division_code: Some(c.passport_division_code.clone()),
        expiry_date: None,
        citizenship: Some("RUS".into()),
        verified: VerifiedState::Verified,
        created_at: now,
        updated_at: now,
    }
}

/// Delay before attempt `attempts + 1` after `attempts` failures: base · 2^(attempts-1),
/// capped.
pub fn backoff(cfg: &RegistryConfig, attempts: i32) -> Duration {
    let exp = attempts.clamp(1, 20) - 1;
    let secs = cfg
        .retry_base_secs
        .saturating_mul(1u64 << exp)
        .min(cfg.retry_max_secs.max(cfg.retry_base_secs));
    Duration::seconds(secs as i64)
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Round {
    pub due: usize,
    pub finished: usize,
    pub retried: usize,
}

/// The background task that moves verification requests along.
pub struct Verifier {
    store: SqlStore,
    registry: Arc<dyn Registry>,
    clock: Arc<dyn Clock>,
    cfg: RegistryConfig,
}

impl Verifier {
    pub fn new(
        store: SqlStore,
        registry: Arc<dyn Registry>,
        clock: Arc<dyn Clock>,
        cfg: RegistryConfig,
    ) -> Verifier {
        Verifier {
            store,
            registry,
            clock,
            cfg,
        }
    }

    fn event(
        v: &Verification,
        kind: &str,
        now: DateTime<Utc>,
        detail: serde_json::Value,
    ) -> AuditEvent {
        AuditEvent {
            at: now,
            kind: kind.into(),
            subject_id: Some(v.subject_id.clone()),
            client_id: None,
            ip: None,
            detail,
        }
    }

    async fn finish(
        &self,
        mut v: Verification,
        state: VerificationState,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        v.updated_at = now;
        v.state = state.clone();
        let (kind, detail, effect) = match &state {
            VerificationState::Matched => (
                "identity.verified",
                serde_json::json!({"verification": v.id}),
                VerificationEffect::RaiseToStandard {
                    passport: passport_of(&v, now),
                },
            ),
            VerificationState::Mismatch { reason } => (
                "identity.mismatch",
                serde_json::json!({"verification": v.id, "reason": reason.as_str()}),
                VerificationEffect::None,
            ),
            _ => (
                "identity.failed",
                serde_json::json!({"verification": v.id, "attempts": v.attempts}),
                VerificationEffect::None,
            ),
        };
        let event = Self::event(&v, kind, now, detail);
        let v2 = v.clone();
        let res = self
            .store
            .call(move |s| s.finish_verification(&v2, &effect, &event))
            .await;
        match res {
            Ok(_) => Ok(()),
            // The SNILS is another person's: the request fails, nothing is applied.
            Err(StoreError::Conflict) => {
                v.state = VerificationState::Failed;
                v.last_error = Some("snils_taken".into());
                let event = Self::event(
                    &v,
                    "identity.failed",
                    now,
                    serde_json::json!({"verification": v.id, "reason": "snils_taken"}),
                );
                self.store
                    .call(move |s| s.finish_verification(&v, &VerificationEffect::None, &event))
                    .await
                    .map(|_| ())
            }
            Err(e) => Err(e),
        }
    }

    /// The registry could not be reached: retry later with backoff, or give up.
    async fn unavailable(
        &self,
        mut v: Verification,
        err: &RegistryError,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        v.attempts += 1;
        v.last_error = Some(match err {
            RegistryError::Unavailable(_) => "unavailable".into(),
            RegistryError::Refused(_) => "refused".into(),
        });
        v.updated_at = now;
        if v.attempts >= self.cfg.max_attempts || matches!(err, RegistryError::Refused(_)) {
            self.finish(v, VerificationState::Failed).await?;
            return Ok(false);
        }
        v.next_attempt_at = now + backoff(&self.cfg, v.attempts);
        tracing::info!(
            verification = v.id.as_str(),
            attempts = v.attempts,
            "registry unavailable; retrying later"
        );
        self.store
            .call(move |s| s.update_pending_verification(&v))
            .await?;
        Ok(true)
    }

    /// Moves one due request along; true if it was retried later.
    async fn step(&self, mut v: Verification) -> Result<bool, StoreError> {
        if v.registry_ref.is_none() {
            match self.registry.submit(&v.id, &v.claim).await {
                Ok(r) => {
                    v.registry_ref = Some(r);
                    v.updated_at = self.clock.now();
                    let v2 = v.clone();
                    if !self
                        .store
                        .call(move |s| s.update_pending_verification(&v2))
                        .await?
                    {
                        return Ok(false);
                    }
                }
                Err(e) => return self.unavailable(v, &e).await,
            }
        }
        let r = v.registry_ref.clone().unwrap_or_default();
        match self.registry.poll(&r).await {
            Ok(Answer::Pending) => {
                let now = self.clock.now();
                v.next_attempt_at = now + Duration::seconds(self.cfg.poll_interval_secs as i64);
                v.updated_at = now;
                self.store
                    .call(move |s| s.update_pending_verification(&v))
                    .await?;
                Ok(false)
            }
            Ok(Answer::Matched) => self
                .finish(v, VerificationState::Matched)
                .await
                .map(|_| false),
            Ok(Answer::Mismatch(reason)) => self
                .finish(v, VerificationState::Mismatch { reason })
                .await
                .map(|_| false),
            Err(e) => self.unavailable(v, &e).await,
        }
    }

    /// Handles every due request once.
    pub async fn run_once(&self) -> Result<Round, StoreError> {
        let now = self.clock.now();
        let due = self
            .store
            .call(move |s| s.due_verifications(now, 50))
            .await?;
        let mut round = Round {
            due: due.len(),
            ..Round::default()
        };
        for v in due {
            let id = v.id.clone();
            match self.step(v).await {
                Ok(true) => round.retried += 1,
                Ok(false) => round.finished += 1,
                Err(e) => {
                    tracing::error!(verification = id.as_str(), error = %e, "registry step failed")
                }
            }
        }
        Ok(round)
    }

    /// Runs rounds every `poll_interval_secs`. Never returns.
    pub async fn run(self) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(
            self.cfg.poll_interval_secs.max(1),
        ));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = self.run_once().await {
                tracing::error!(error = %e, "registry: cannot read due requests");
            }
        }
    }

    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }
}

#[cfg(test)]
mod tests;
