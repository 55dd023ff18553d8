//! The HTTP registry adapter. Contract (also in `docs/design/identity.md`):
//!
//! - `POST {base}/requests` with JSON `{"request_id", "snils", "family_name", "given_name",
//!   "middle_name", "birth_date", "birth_place", "passport": {"series", "number",
//!   "issue_date", "issued_by", "division_code"}}` (dates `YYYY-MM-DD`) answers `202` (or
//!   `200`) with `{"ref": "..."}`.
//! - `GET {base}/requests/{ref}` answers `200` with `{"status": "pending" | "matched" |
//!   "mismatch", "reason": "name_mismatch" | "birth_date_mismatch" | "snils_not_found" |
//!   "document_expired" | "document_not_found"}`.
//! - A connection error, a timeout or a 5xx is "unavailable" (retried with backoff); a 4xx
//!   or an unreadable body is a refusal (the request fails).

use serde::Deserialize;

use super::{Answer, Registry, RegistryError};
use crate::domain::person::{IdentityClaim, MismatchReason};

pub struct HttpRegistry {
    base: url::Url,
    http: reqwest::Client,
}

impl HttpRegistry {
    pub fn new(base: &str, timeout: std::time::Duration) -> Result<Self, String> {
        let mut base = url::Url::parse(base).map_err(|e| format!("identity.registry.url: {e}"))?;
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("registry client: {e}"))?;
        Ok(HttpRegistry { base, http })
    }

    fn url(&self, path: &str) -> Result<url::Url, RegistryError> {
        self.base
            .join(path)
            .map_err(|e| RegistryError::Refused(format!("url: {e}")))
    }
}

fn classify(e: reqwest::Error) -> RegistryError {
    // No URL or body in the message: it could carry personal numbers.
    RegistryError::Unavailable(if e.is_timeout() {
        "timeout".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        "transport error".into()
    })
}

fn status_error(status: reqwest::StatusCode) -> RegistryError {
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        RegistryError::Unavailable(format!("HTTP {}", status.as_u16()))
    } else {
        RegistryError::Refused(format!("HTTP {}", status.as_u16()))
    }
}

#[derive(Deserialize)]
struct Accepted {
    #[serde(rename = "ref")]
    reference: String,
}

#[derive(Deserialize)]
struct Status {
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

#[async_trait::async_trait]
impl Registry for HttpRegistry {
    async fn submit(
        &self,
        request_id: &str,
        claim: &IdentityClaim,
    ) -> Result<String, RegistryError> {
        let body = serde_json::json!({
            "request_id": request_id,
            "snils": claim.snils,
            "family_name": claim.family_name,
            "given_name": claim.given_name,
            "middle_name": claim.middle_name,
            "birth_date": claim.birth_date.format("%Y-%m-%d").to_string(),
            "birth_place": claim.birth_place,
            "passport": {
                "series": claim.passport_series,
                "number": claim.passport_number,
                "issue_date": claim.passport_issue_date.format("%Y-%m-%d").to_string(),
                "issued_by": claim.passport_issued_by,
                "division_code": claim.passport_division_code,
            },
        });
        let resp = self
            .http
            .post(self.url("requests")?)
            .json(&body)
            .send()
            .await
            .map_err(classify)?;
        if !resp.status().is_success() {
            return Err(status_error(resp.status()));
        }
        let a: Accepted = resp
            .json()
            .await
            .map_err(|_| RegistryError::Refused("unreadable answer".into()))?;
        if a.reference.is_empty() || a.reference.len() > 200 {
            return Err(RegistryError::Refused("bad reference".into()));
        }
        Ok(a.reference)
    }

    async fn poll(&self, registry_ref: &str) -> Result<Answer, RegistryError> {
        let mut url = self.url("requests/")?;
        url.path_segments_mut()
            .map_err(|_| RegistryError::Refused("url".into()))?
            .pop_if_empty()
            .push(registry_ref);
        let resp = self.http.get(url).send().await.map_err(classify)?;
        if !resp.status().is_success() {
            return Err(status_error(resp.status()));
        }
        let s: Status = resp
            .json()
            .await
            .map_err(|_| RegistryError::Refused("unreadable answer".into()))?;
        match s.status.as_str() {
            "pending" => Ok(Answer::Pending),
            "matched" => Ok(Answer::Matched),
            "mismatch" => s
                .reason
                .as_deref()
                .and_then(MismatchReason::parse)
                .map(Answer::Mismatch)
                .ok_or_else(|| RegistryError::Refused("unknown mismatch reason".into())),
            _ => Err(RegistryError::Refused("unknown status".into())),
        }
    }
}
