//! Account level and status at the browser flow (issue 5): a blocked or pending account is
//! refused with a readable page and an audit event; a person below the client's
//! `min_account_level` sees how to raise it (cancel -> `access_denied`); scopes above the
//! person's level are withheld — named on the consent page, never granted, never in a code.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use consent_ui::{AccountStatusPage, ConsentExtra, Lang, LevelPage, WithheldScope};

use super::error::{html, page_failure};
use crate::audit::AuditEvent;
use crate::authn::transaction::{AuthContext, LoginTx};
use crate::domain::person::{AccountLevel, Person};
use crate::protocol::authorize::{error_fields, response_url, AuthRequest, ResponseMode};
use crate::protocol::scopes::{self, LevelDecision};
use crate::protocol::{ErrorCode, OAuthError};
use crate::state::AppState;
use crate::store::{AuditStore, PersonStore};

/// The level and status of a subject's person (a subject that vanished is an expired flow);
/// nothing here needs the person's records.
async fn person_of(state: &AppState, subject_id: &str) -> Result<Option<Person>, OAuthError> {
    let sid = subject_id.to_string();
    Ok(state
        .store
        .call(move |s| s.find_person_standing(&sid))
        .await?)
}

/// The requested scopes split by the person's level.
pub fn decide(state: &AppState, request: &AuthRequest, person: &Person) -> LevelDecision {
    scopes::by_level(&request.scopes, person.level, |s| {
        state.cfg.identity.min_level(s)
    })
}

async fn audit(
    state: &AppState,
    kind: &str,
    subject_id: &str,
    client_id: &str,
    detail: serde_json::Value,
) -> Result<(), OAuthError> {
    let e = AuditEvent {
        at: state.now(),
        kind: kind.into(),
        subject_id: Some(subject_id.to_string()),
        client_id: Some(client_id.to_string()),
        ip: None,
        detail,
    };
    state.store.call(move |s| s.append_audit(&e)).await?;
    Ok(())
}

/// The page for a blocked or pending account.
fn status_page(lang: Lang, person: &Person) -> HttpResponse {
    html(
        StatusCode::FORBIDDEN,
        AccountStatusPage {
            lang,
            status: person.status.as_str(),
        }
        .render(),
    )
}

/// Refuses a sign-in to an account that is not active (`person`, as read): a readable page
/// and an audit event (`login.refused_status`). `None` when the account may sign in.
pub(super) async fn refuse_inactive(
    state: &AppState,
    lang: Lang,
    client_id: &str,
    subject_id: &str,
    person: &Person,
) -> Option<HttpResponse> {
    if person.status.may_sign_in() {
        return None;
    }
    let detail = serde_json::json!({ "status": person.status.as_str() });
    if let Err(e) = audit(state, "login.refused_status", subject_id, client_id, detail).await {
        return Some(page_failure(lang, &e));
    }
    Some(status_page(lang, person))
}

/// A person's level and status and a client's minimum level, as [`gate`] needs them.
pub struct Standing {
    /// Whose standing this is.
    pub subject_id: String,
    /// `None`: the subject is gone.
    pub person: Option<Person>,
    pub client_min_level: Option<AccountLevel>,
}

/// Before a code is issued: the account is active, meets the client's minimum level, and the
/// request carries only the scopes the person's level allows. Returns the request to issue
/// the code for, or the page to show instead. `known` is the standing when the caller has
/// just read it for this subject and client (the SSO path reads it with the session);
/// otherwise it is read here.
pub async fn gate(
    state: &AppState,
    lang: Lang,
    request: &AuthRequest,
    auth: &AuthContext,
    known: Option<Standing>,
) -> Result<AuthRequest, HttpResponse> {
    let known = known.filter(|k| k.subject_id == auth.subject_id);
    let run = async {
        let (person, min) = match known {
            Some(k) => (k.person, k.client_min_level),
            None => {
                let (sid, cid) = (auth.subject_id.clone(), request.client_id.clone());
                state
                    .store
                    .call(move |s| Ok((s.find_person_standing(&sid)?, s.client_min_level(&cid)?)))
                    .await?
            }
        };
        let person =
            person.ok_or_else(|| OAuthError::new(ErrorCode::AccessDenied, "no such account"))?;
        Ok::<_, OAuthError>((person, min))
    };
    let (person, min) = match run.await {
        Ok(v) => v,
        Err(e) => return Err(page_failure(lang, &e)),
    };
    let refused = refuse_inactive(state, lang, &request.client_id, &auth.subject_id, &person).await;
    if let Some(resp) = refused {
        return Err(resp);
    }
    if !scopes::meets_client_level(min, person.level) {
        // The portal's name, for the page (through the per-node client cache).
        let client_name = match state.clients.find(&state.store, &request.client_id).await {
            Ok(c) => c.map(|c| c.name.clone()).unwrap_or_default(),
            Err(e) => return Err(page_failure(lang, &e.into())),
        };
        let needs = min.map(|m| m.as_str()).unwrap_or("standard");
        let detail = serde_json::json!({ "needs": needs, "has": person.level.as_str() });
        if let Err(e) = audit(
            state,
            "login.level_too_low",
            &auth.subject_id,
            &request.client_id,
            detail,
        )
        .await
        {
            return Err(page_failure(lang, &e));
        }
        let e = OAuthError::new(
            ErrorCode::AccessDenied,
            "the account level is below what the client requires",
        );
        // The cancel link delivers access_denied (a form_post client gets it in the query
        // too: a link cannot post).
        let cancel = match request.target.mode {
            ResponseMode::Query | ResponseMode::FormPost => {
                let [(k1, v1), (k2, v2)] = error_fields(&e);
                response_url(
                    &request.target,
                    &state.issuer,
                    &[(k1, v1.as_str()), (k2, v2.as_str())],
                )
            }
        };
        return Err(html(
            StatusCode::FORBIDDEN,
            LevelPage {
                lang,
                client_name: &client_name,
                needs,
                has: person.level.as_str(),
                cancel_url: Some(&cancel),
            }
            .render(),
        ));
    }
    let mut granted = request.clone();
    granted.scopes = decide(state, request, &person).allowed;
    Ok(granted)
}

/// What the consent page adds for this person: sensitive scopes marked, withheld ones named.
pub struct ConsentView {
    pub sensitive: Vec<&'static str>,
    pub withheld: Vec<(String, &'static str)>,
    pub level: &'static str,
}

impl ConsentView {
    pub fn extra<'a>(&'a self, buf: &'a mut Vec<WithheldScope<'a>>) -> ConsentExtra<'a> {
        *buf = self
            .withheld
            .iter()
            .map(|(s, n)| WithheldScope { scope: s, needs: n })
            .collect();
        ConsentExtra {
            sensitive: &self.sensitive,
            withheld: buf,
            level: self.level,
        }
    }
}

/// The consent page's view of the person's level for this request.
pub async fn consent_view(state: &AppState, tx: &LoginTx, subject_id: &str) -> ConsentView {
    let person = person_of(state, subject_id).await.ok().flatten();
    let (withheld, level) = match &person {
        Some(p) => (
            decide(state, &tx.request, p)
                .withheld
                .into_iter()
                .map(|w| (w.scope, w.needs.as_str()))
                .collect(),
            p.level.as_str(),
        ),
        None => (Vec::new(), "simplified"),
    };
    ConsentView {
        sensitive: scopes::SENSITIVE_SCOPES.to_vec(),
        withheld,
        level,
    }
}

/// The transaction with the withheld scopes removed, so the grant records only what the
/// person could agree to (a withheld scope is asked again once the level allows it).
pub async fn without_withheld(state: &AppState, mut tx: LoginTx, subject_id: &str) -> LoginTx {
    if let Ok(Some(p)) = person_of(state, subject_id).await {
        tx.request.scopes = decide(state, &tx.request, &p).allowed;
    }
    tx
}
