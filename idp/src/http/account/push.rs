//! `POST /account/push-devices`: the citizen's mobile app registers its push token, so that
//! sign-in codes can be sent to it ("code in the app"). See `docs/design/push.md`.
//!
//! The app calls it with an access token of this provider (RFC 6750 bearer) that carries
//! the scope [`PUSH_SCOPE`] (only clients an operator approved it for can get it) and whose
//! sign-in is recent (`auth_time` within `[otp] push_enrol_max_auth_age_secs`): a new factor
//! is enrolled only right after the person confirmed with the factors they have. The body
//! is JSON `{"platform": "android" | "ios" | "huawei", "token": "...", "name": "..."}`.
//! Answers are JSON; refusals are OAuth-style (`invalid_token`, `insufficient_scope`,
//! `insufficient_user_authentication` of RFC 9470, `invalid_request`), made by the shared
//! bearer-API plumbing (`http/bearer.rs`).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use webauthn_rs::prelude::Uuid;

use crate::audit::AuditEvent;
use crate::http::bearer::{json_body, no_store, token_with_scope, Refusal};
use crate::protocol::tokens::AccessClaims;
use crate::state::AppState;
use crate::store::push::{clean_name, PushAdded, MAX_DEVICES};
use crate::store::{PushDevice, PushDeviceStore, PushPlatform, PushToken, SubjectStore};

use super::notify_owner;

/// The scope an access token needs to register a push device.
pub const PUSH_SCOPE: &str = "propusk:push";

/// The request body (unknown fields are refused: a typo must not pass silently).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    platform: String,
    token: String,
    #[serde(default)]
    name: Option<String>,
}

/// A registration, parsed at the edge.
struct Registration {
    platform: PushPlatform,
    token: PushToken,
    name: String,
}

fn parse_body(req: &HttpRequest, body: &[u8]) -> Result<Registration, Refusal> {
    let b: Body = json_body(
        req,
        body,
        "the body must be {\"platform\", \"token\", \"name\"}",
    )?;
    let platform = PushPlatform::parse(&b.platform).ok_or(Refusal::InvalidRequest(
        "platform must be android, ios or huawei",
    ))?;
    let token = PushToken::parse(&b.token).ok_or(Refusal::InvalidRequest(
        "token must be 1 to 4096 printable ASCII characters",
    ))?;
    let name = b
        .name
        .as_deref()
        .and_then(clean_name)
        .unwrap_or_else(|| default_name(platform).into());
    Ok(Registration {
        platform,
        token,
        name,
    })
}

fn default_name(p: PushPlatform) -> &'static str {
    match p {
        PushPlatform::Android => "Android",
        PushPlatform::Ios => "iPhone",
        PushPlatform::Huawei => "Huawei",
    }
}

/// The access token of the request, checked: signature, expiry, revocation, scope
/// ([`token_with_scope`]), and how recent its sign-in is.
async fn authorize(state: &AppState, req: &HttpRequest) -> Result<AccessClaims, Refusal> {
    let at = token_with_scope(state, req, PUSH_SCOPE).await?;
    let max_age = state.cfg.otp.push_enrol_max_auth_age_secs;
    let fresh = at.auth_time.is_some_and(|t| {
        let age = state.now().timestamp() - t;
        (0..=i64::try_from(max_age).unwrap_or(i64::MAX)).contains(&age)
    });
    if !fresh {
        return Err(Refusal::StaleSignIn { max_age });
    }
    Ok(at)
}

/// `POST /account/push-devices`.
#[tracing::instrument(skip_all, fields(client_id))]
pub async fn register(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let at = match authorize(&state, &req).await {
        Ok(at) => at,
        Err(r) => return r.respond(),
    };
    tracing::Span::current().record("client_id", at.client_id.as_str());
    let reg = match parse_body(&req, &body) {
        Ok(r) => r,
        Err(r) => return r.respond(),
    };
    match add(&state, &req, &at, reg).await {
        Ok(Ok(d)) => no_store(StatusCode::CREATED).json(serde_json::json!({
            "id": d.id,
            "platform": d.platform.as_str(),
            "name": d.name,
            "created_at": d.created_at.timestamp(),
        })),
        Ok(Err(r)) => r.respond(),
        Err(e) => {
            tracing::error!(
                detail = e.detail.as_deref().unwrap_or(""),
                "push device registration failed"
            );
            Refusal::Unavailable.respond()
        }
    }
}

/// Stores the device with its audit event, and tells the owner.
async fn add(
    state: &AppState,
    req: &HttpRequest,
    at: &AccessClaims,
    reg: Registration,
) -> Result<Result<PushDevice, Refusal>, crate::protocol::OAuthError> {
    let sub = at.sub.clone();
    if state
        .store
        .call(move |s| s.find_subject(&sub))
        .await?
        .is_none()
    {
        return Ok(Err(Refusal::InvalidToken(
            "the account of this token no longer exists".into(),
        )));
    }
    let now = state.now();
    let device = PushDevice {
        id: Uuid::new_v4().to_string(),
        subject_id: at.sub.clone(),
        platform: reg.platform,
        token: reg.token,
        name: reg.name,
        created_at: now,
        last_used_at: None,
        removed_at: None,
    };
    let event = AuditEvent {
        at: now,
        kind: "push_device.added".into(),
        subject_id: Some(at.sub.clone()),
        client_id: Some(at.client_id.clone()),
        ip: crate::http::client_ip(state, req),
        detail: serde_json::json!({
            "id": device.id,
            "platform": device.platform.as_str(),
            "name": device.name,
        }),
    };
    let d2 = device.clone();
    let added = state
        .store
        .call(move |s| s.add_push_device(&d2, now, &event))
        .await?;
    match added {
        PushAdded::Added { .. } => {}
        PushAdded::TooMany => {
            return Ok(Err(Refusal::InvalidRequest(too_many())));
        }
    }
    notify_owner(
        state,
        &at.sub,
        &format!("добавлено приложение для получения кодов ({})", device.name),
    )
    .await?;
    Ok(Ok(device))
}

fn too_many() -> &'static str {
    const _: () = assert!(MAX_DEVICES == 10);
    "the account already has 10 devices: remove one on the security page first"
}
