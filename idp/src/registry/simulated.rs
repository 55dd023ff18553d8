//! A simulated registry for the demo and tests: every SNILS matches, unless
//! `[identity.registry] simulated_answers` names an answer for it (`name_mismatch`,
//! `birth_date_mismatch`, `snils_not_found`, `document_expired`, `document_not_found`,
//! `unavailable`, `unavailable_once`, `pending`). The answer travels in the reference, so any
//! node (or a restarted one) can answer a poll.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use super::{Answer, Registry, RegistryError};
use crate::domain::person::{IdentityClaim, MismatchReason};

pub struct SimulatedRegistry {
    answers: BTreeMap<String, String>,
    /// Requests that already failed once (`unavailable_once`).
    failed_once: Mutex<HashSet<String>>,
}

impl SimulatedRegistry {
    pub fn new(answers: BTreeMap<String, String>) -> Self {
        SimulatedRegistry {
            answers,
            failed_once: Mutex::new(HashSet::new()),
        }
    }
}

#[async_trait::async_trait]
impl Registry for SimulatedRegistry {
    async fn submit(
        &self,
        request_id: &str,
        claim: &IdentityClaim,
    ) -> Result<String, RegistryError> {
        let answer = self
            .answers
            .get(&claim.snils)
            .map(String::as_str)
            .unwrap_or("match");
        match answer {
            "unavailable" => return Err(RegistryError::Unavailable("simulated outage".into())),
            "unavailable_once" => {
                let first = self
                    .failed_once
                    .lock()
                    .map(|mut s| s.insert(request_id.to_string()))
                    .unwrap_or(false);
                if first {
                    return Err(RegistryError::Unavailable("simulated outage".into()));
                }
            }
            _ => {}
        }
        let answer = if answer == "unavailable_once" {
            "match"
        } else {
            answer
        };
        Ok(format!("sim:{answer}:{request_id}"))
    }

    async fn poll(&self, registry_ref: &str) -> Result<Answer, RegistryError> {
        let answer = registry_ref
            .strip_prefix("sim:")
            .and_then(|r| r.split(':').next())
            .ok_or_else(|| RegistryError::Refused("unknown reference".into()))?;
        Ok(match answer {
            "match" => Answer::Matched,
            "pending" => Answer::Pending,
            other => match MismatchReason::parse(other) {
                Some(r) => Answer::Mismatch(r),
                None => Answer::Matched,
            },
        })
    }
}
