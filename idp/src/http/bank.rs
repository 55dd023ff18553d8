//! `POST /api/v1/confirmations`: a bank confirms a citizen's account (issue 5), as banks
//! confirm ESIA accounts for customers they identified in person. The bank is a client of
//! this provider that an operator approved for the scope [`CONFIRM_SCOPE`]; it calls with a
//! client-credentials access token and the customer's SNILS, names and birth date. A
//! standard account whose verified SNILS, names and birth date all match becomes confirmed,
//! recorded as method `bank` by that client, audited in the same transaction, and the owner
//! is notified. See `docs/design/bank-confirmation.md` for the contract.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::alerts::{alert_owner, Alert};
use super::bearer::{json_body, no_store, token_with_scope, Refusal};
use crate::audit::AuditEvent;
use crate::domain::identifier::Snils;
use crate::domain::person::{parse_date, AccountLevel, ConfirmMethod, Confirmation, Person};
use crate::domain::Subject;
use crate::registry::certificate::same_name;
use crate::state::AppState;
use crate::store::{AuditStore, ClientStore, PersonStore};

/// The scope a bank's access token needs.
pub const CONFIRM_SCOPE: &str = "propusk:confirm";

pub const PATH: &str = "/api/v1/confirmations";

/// The request (unknown fields are refused: a typo must not pass silently).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    snils: String,
    family_name: String,
    given_name: String,
    #[serde(default)]
    middle_name: Option<String>,
    /// `YYYY-MM-DD`.
    birth_date: String,
}

const SHAPE: &str = "the body must be a JSON object with snils, family_name, given_name, \
                     middle_name (optional) and birth_date";

/// Whether the bank's data are this person's: every name given and the birth date.
fn same_person(b: &Body, s: &Subject) -> bool {
    let p = &s.profile;
    let name =
        |given: &str, held: &Option<String>| held.as_deref().is_some_and(|h| same_name(given, h));
    let middle_ok = match b.middle_name.as_deref().map(str::trim) {
        None | Some("") => true,
        Some(m) => name(m, &p.middle_name),
    };
    let born = p.birthdate.as_deref().and_then(parse_date);
    name(&b.family_name, &p.family_name)
        && name(&b.given_name, &p.given_name)
        && middle_ok
        && born.is_some()
        && born == parse_date(&b.birth_date)
}

/// What the store call found.
enum Outcome {
    /// No account with this SNILS, or the data do not match (one answer for both, so the
    /// API cannot be used to learn data from a SNILS alone).
    Unknown,
    Inactive,
    NotStandard,
    Already(i64),
    Confirmed {
        subject_id: String,
        oid: i64,
    },
}

/// `POST /api/v1/confirmations`.
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    match run(&state, &req, &body).await {
        Ok(r) => r,
        Err(r) => r.respond(),
    }
}

async fn run(state: &AppState, req: &HttpRequest, body: &[u8]) -> Result<HttpResponse, Refusal> {
    let at = token_with_scope(state, req, CONFIRM_SCOPE).await?;
    tracing::Span::current().record("client_id", at.client_id.as_str());
    let b: Body = json_body(req, body, SHAPE)?;
    let snils = Snils::parse(&b.snils)
        .map_err(|_| Refusal::InvalidRequest("snils must be 11 digits with a valid checksum"))?;
    if parse_date(&b.birth_date).is_none() {
        return Err(Refusal::InvalidRequest("birth_date must be YYYY-MM-DD"));
    }
    let now = state.now();
    let client_id = at.client_id.clone();
    let found = state
        .store
        .call(move |s| {
            let bank = s
                .find_client(&client_id)?
                .map(|c| c.name)
                .unwrap_or_else(|| client_id.clone());
            let Some(subject) = s.find_subject_by_snils_or_inn(snils.as_str())? else {
                return Ok(Outcome::Unknown);
            };
            if !same_person(&b, &subject) {
                return Ok(Outcome::Unknown);
            }
            let Some(person): Option<Person> = s.find_person(&subject.id)? else {
                return Ok(Outcome::Unknown);
            };
            if !person.status.may_sign_in() {
                return Ok(Outcome::Inactive);
            }
            match person.level {
                AccountLevel::Simplified => return Ok(Outcome::NotStandard),
                AccountLevel::Confirmed => return Ok(Outcome::Already(subject.oid)),
                AccountLevel::Standard => {}
            }
            let confirmation = Confirmation {
                by: format!("bank: {bank} ({client_id})"),
                method: ConfirmMethod::Bank,
                at: now,
            };
            let event = AuditEvent {
                at: now,
                kind: "user.confirmed".into(),
                subject_id: Some(subject.id.clone()),
                client_id: Some(client_id.clone()),
                ip: None,
                detail: serde_json::json!({ "actor": format!("bank:{client_id}"), "method": "bank" }),
            };
            s.set_level(&subject.id, AccountLevel::Confirmed, Some(&confirmation), &event)?;
            Ok(Outcome::Confirmed {
                subject_id: subject.id,
                oid: subject.oid,
            })
        })
        .await
        .map_err(|_| Refusal::Unavailable)?;
    let audit_refusal = |reason: &'static str| {
        let e = AuditEvent {
            at: now,
            kind: "identity.bank_confirmation_refused".into(),
            subject_id: None,
            client_id: Some(at.client_id.clone()),
            ip: None,
            detail: serde_json::json!({ "reason": reason }),
        };
        async move {
            state
                .store
                .call(move |s| s.append_audit(&e))
                .await
                .map_err(|_| Refusal::Unavailable)
        }
    };
    match found {
        Outcome::Unknown => {
            audit_refusal("not_found").await?;
            Err(Refusal::Conflict(
                StatusCode::NOT_FOUND,
                "not_found",
                "no account with this SNILS and these data",
            ))
        }
        Outcome::Inactive => {
            audit_refusal("inactive").await?;
            Err(Refusal::Conflict(
                StatusCode::CONFLICT,
                "account_inactive",
                "the account is blocked or not activated",
            ))
        }
        Outcome::NotStandard => {
            audit_refusal("not_standard").await?;
            Err(Refusal::Conflict(
                StatusCode::CONFLICT,
                "not_standard",
                "the account's documents have not been verified yet (simplified account)",
            ))
        }
        Outcome::Already(oid) => Ok(no_store(StatusCode::OK).json(
            serde_json::json!({ "oid": oid, "level": "confirmed", "result": "already_confirmed" }),
        )),
        Outcome::Confirmed { subject_id, oid } => {
            if let Err(e) = alert_owner(state, &subject_id, Alert::ConfirmedByBank).await {
                tracing::warn!(error = %e, "confirmation notice not queued");
            }
            Ok(no_store(StatusCode::OK).json(
                serde_json::json!({ "oid": oid, "level": "confirmed", "result": "confirmed" }),
            ))
        }
    }
}
