//! The security page itself: the person's factors with their last use.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use consent_ui::{Confirm, FactorKind, FactorRow, Lang, SecurityNotice, SecurityPage};

use crate::authn::totp;
use crate::domain::credential::{WebauthnCredential, WebauthnKind};
use crate::domain::{Credential, CredentialKind};
use crate::http::error::{html, page_failure};
use crate::protocol::params::Params;
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{CredentialStore, PushDevice, PushDeviceStore, SubjectStore, WebauthnStore};

use super::confirm::elevated;
use super::{context, Ctx};

pub(super) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%d.%m.%Y %H:%M").to_string()
}

pub(super) struct Factors {
    pub(super) creds: Vec<Credential>,
    pub(super) keys: Vec<WebauthnCredential>,
    /// Phones with the Propusk app (codes by push).
    pub(super) push: Vec<PushDevice>,
}

pub(super) async fn factors_of(state: &AppState, sub: &str) -> Result<Factors, OAuthError> {
    let sub = sub.to_string();
    let (creds, keys, push) = state
        .store
        .call(move |s| {
            Ok((
                s.list_credentials(&sub)?,
                s.list_webauthn(&sub)?,
                s.list_push_devices(&sub)?,
            ))
        })
        .await?;
    Ok(Factors { creds, keys, push })
}

impl Factors {
    pub(super) fn app(&self) -> Option<&Credential> {
        self.creds
            .iter()
            .find(|c| c.kind == CredentialKind::Totp && c.usable())
    }
    pub(super) fn codes_left(&self) -> usize {
        self.creds
            .iter()
            .filter(|c| c.kind == CredentialKind::Recovery && c.usable())
            .count()
    }
    pub(super) fn confirm(&self) -> Confirm {
        if self.app().is_some() || self.codes_left() > 0 {
            Confirm::Code
        } else if !self.keys.is_empty() {
            Confirm::Key
        } else {
            Confirm::Password
        }
    }
}

/// Owned strings of the rows (the page borrows them).
pub(super) struct RowData {
    kind: FactorKind,
    name: String,
    added: String,
    last_used: Option<String>,
    remove: String,
}

pub(super) fn rows(f: &Factors, lang: Lang) -> Vec<RowData> {
    let mut out = Vec::new();
    if let Some(app) = f.app() {
        let last = app
            .last_used_step
            .and_then(|s| DateTime::from_timestamp(s * totp::STEP_SECS as i64, 0));
        out.push(RowData {
            kind: FactorKind::App,
            name: "TOTP".into(),
            added: fmt_time(app.confirmed_at.unwrap_or(app.created_at)),
            last_used: last.map(fmt_time),
            remove: format!("totp:{}", app.id),
        });
    }
    let codes: Vec<&Credential> = f
        .creds
        .iter()
        .filter(|c| c.kind == CredentialKind::Recovery)
        .collect();
    if let Some(first) = codes.first() {
        let left = codes.iter().filter(|c| c.usable()).count();
        let name = match lang {
            Lang::Ru => format!("осталось {left} из {}", codes.len()),
            Lang::En => format!("{left} of {} left", codes.len()),
        };
        out.push(RowData {
            kind: FactorKind::RecoveryCodes,
            name,
            added: fmt_time(first.created_at),
            last_used: codes.iter().filter_map(|c| c.used_at).max().map(fmt_time),
            remove: "recovery".into(),
        });
    }
    for k in &f.keys {
        out.push(RowData {
            kind: match k.kind {
                WebauthnKind::Passkey => FactorKind::Passkey,
                WebauthnKind::SecurityKey => FactorKind::SecurityKey,
            },
            name: k.name.clone(),
            added: fmt_time(k.created_at),
            last_used: k.last_used_at.map(fmt_time),
            remove: format!("wa:{}", k.id),
        });
    }
    for d in &f.push {
        out.push(RowData {
            kind: FactorKind::PushDevice,
            name: d.name.clone(),
            added: fmt_time(d.created_at),
            last_used: d.last_used_at.map(fmt_time),
            remove: format!("push:{}", d.id),
        });
    }
    out
}

pub(super) async fn render(
    state: &AppState,
    ctx: &Ctx,
    notice: Option<SecurityNotice>,
) -> HttpResponse {
    let run = async {
        let sub = ctx.session.subject_id.clone();
        let user = state
            .store
            .call(move |s| s.find_subject(&sub))
            .await?
            .map(|s| s.login)
            .unwrap_or_default();
        let f = factors_of(state, &ctx.session.subject_id).await?;
        let up = elevated(state, &ctx.session).await?;
        Ok::<_, OAuthError>((user, f, up))
    };
    let (user, f, up) = match run.await {
        Ok(v) => v,
        Err(e) => return page_failure(ctx.lang, &e),
    };
    let data = rows(&f, ctx.lang);
    let rows: Vec<FactorRow<'_>> = data
        .iter()
        .map(|r| FactorRow {
            kind: r.kind,
            name: &r.name,
            added: &r.added,
            last_used: r.last_used.as_deref(),
            remove: &r.remove,
        })
        .collect();
    let body = SecurityPage {
        lang: ctx.lang,
        csrf: &ctx.csrf,
        user: &user,
        factors: &rows,
        elevated: up,
        confirm: f.confirm(),
        notice,
    }
    .render();
    let status = match notice {
        Some(
            SecurityNotice::WrongCode
            | SecurityNotice::WrongPassword
            | SecurityNotice::Problem(_)
            | SecurityNotice::ConfirmFirst
            | SecurityNotice::Nothing,
        ) => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    };
    html(status, body)
}

/// `GET /account/security`.
pub async fn security_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let ctx = match context(&state, &req).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let notice = match Params::parse(req.query_string().as_bytes())
        .get("done")
        .ok()
        .flatten()
    {
        Some("confirmed") => Some(SecurityNotice::Confirmed),
        Some("enrolled") => Some(SecurityNotice::Enrolled),
        Some("removed") => Some(SecurityNotice::Removed),
        _ => None,
    };
    render(&state, &ctx, notice).await
}
