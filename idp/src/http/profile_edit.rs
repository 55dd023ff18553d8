//! Contact and address edits on `/account/profile` (issue 5).
//!
//! Contacts (the sign-in e-mail and mobile phone): a change needs a recent confirmation (the
//! security page's: a sign-in within 5 minutes or a confirmation with a factor); a one-time
//! code goes to the NEW value, and only the right code saves it. Whether another account
//! uses the value is checked after the code, so only someone who controls the contact
//! learns it. Saving is one transaction (`PersonEditStore::change_contact`): profile, login
//! when the old value was it, the sign-in index, history, audit event and a notice to the
//! old contact. The pending change is ephemeral (`pcc:<id>`), bound to the SSO session.
//!
//! Addresses (registration, residence): one of each kind; saving replaces it. Validated
//! here (`address_of`), stored through `PersonStore::put_item` / `remove_item` with history.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use consent_ui::{CodeView, ErrorKind, Lang};
use serde::{Deserialize, Serialize};

use super::error::{page, page_failure};
use super::login::see_other;
use super::profile::{event, form_context, render, render_with, Ctx, PAGE};
use super::register::field;
use crate::authn::otp::{mask, CodeChannel, Verdict};
use crate::domain::identifier::{Email, Phone};
use crate::domain::person::{Address, AddressKind, ContactKind};
use crate::domain::Profile;
use crate::notify::{NewMessage, OutboxStore};
use crate::protocol::params::Params;
use crate::protocol::{tokens, OAuthError};
use crate::state::AppState;
use crate::store::{
    AuditStore, ContactChange, ContactOutcome, PersonEditStore, PersonItem, PersonStore,
    SubjectStore,
};

/// A contact change waiting for its code (ephemeral `pcc:<id>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingChange {
    v: u8,
    id: String,
    subject_id: String,
    sid: String,
    /// `email` or `mobile`.
    kind: String,
    /// The new value, normalised.
    value: String,
    created_at: DateTime<Utc>,
}

fn change_key(id: &str) -> String {
    format!("pcc:{id}")
}

fn code_scope(id: &str) -> String {
    format!("contact:{id}")
}

/// A form post of the profile page: the session and the CSRF-checked form, then `act`; its
/// error is the failure page.
async fn posted<F, Fut>(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
    act: F,
) -> HttpResponse
where
    F: FnOnce(Ctx, Params) -> Fut,
    Fut: std::future::Future<Output = Result<HttpResponse, OAuthError>>,
{
    let (ctx, form) = match form_context(state, req, body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let lang = ctx.lang;
    act(ctx, form)
        .await
        .unwrap_or_else(|e| page_failure(lang, &e))
}

fn contact_kind(s: &str) -> Option<ContactKind> {
    match s {
        "email" => Some(ContactKind::Email),
        "mobile" => Some(ContactKind::Mobile),
        _ => None,
    }
}

fn channel_of(kind: ContactKind) -> CodeChannel {
    match kind {
        ContactKind::Email => CodeChannel::Email,
        ContactKind::Mobile | ContactKind::Phone => CodeChannel::Sms,
    }
}

/// The typed value, normalised, or the error code of the page.
fn normalise(kind: ContactKind, raw: &str) -> Result<String, &'static str> {
    match kind {
        ContactKind::Email => Email::parse(raw)
            .map(|e| e.as_str().to_string())
            .map_err(|_| "bad_email"),
        ContactKind::Mobile | ContactKind::Phone => Phone::parse(raw)
            .map(|p| p.as_str().to_string())
            .map_err(|_| "bad_phone"),
    }
}

async fn audit(
    state: &AppState,
    req: &HttpRequest,
    kind: &str,
    sub: &str,
    d: serde_json::Value,
) -> Result<(), OAuthError> {
    let e = event(state, req, kind, sub, d);
    state.store.call(move |s| s.append_audit(&e)).await?;
    Ok(())
}

/// The profile again with an error (the change is not saved).
async fn refuse(
    state: &AppState,
    req: &HttpRequest,
    ctx: &Ctx,
    audit_kind: &str,
    code: &'static str,
) -> HttpResponse {
    let detail = serde_json::json!({ "error": code });
    if let Err(e) = audit(state, req, audit_kind, &ctx.session.subject_id, detail).await {
        return page_failure(ctx.lang, &e);
    }
    render(state, ctx, StatusCode::BAD_REQUEST, Some(code), None, &[]).await
}

/// Whether contacts may be changed now (a recent sign-in or confirmation).
async fn confirmed_recently(state: &AppState, ctx: &Ctx) -> Result<bool, OAuthError> {
    super::account::elevated(state, &ctx.session).await
}

/// `POST /account/profile/contact` (`kind` = email | mobile, `value`): a code to the new value.
pub async fn contact_start(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (state, req) = (state.get_ref(), &req);
    posted(state, req, &body, |ctx, form| async move {
        start(state, req, &ctx, &form).await
    })
    .await
}

async fn start(
    state: &AppState,
    req: &HttpRequest,
    ctx: &Ctx,
    form: &Params,
) -> Result<HttpResponse, OAuthError> {
    const REFUSED: &str = "profile.contact_refused";
    let Some(kind) = contact_kind(field(form, "kind")) else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            ctx.lang,
            ErrorKind::BadRequest,
            None,
        ));
    };
    if !confirmed_recently(state, ctx).await? {
        return Ok(refuse(state, req, ctx, REFUSED, "confirm_first").await);
    }
    let value = match normalise(kind, field(form, "value")) {
        Ok(v) => v,
        Err(code) => return Ok(refuse(state, req, ctx, REFUSED, code).await),
    };
    let sub = ctx.session.subject_id.clone();
    let current = state
        .store
        .call(move |s| s.find_subject(&sub))
        .await?
        .and_then(|s| confirmed_contact(&s.profile, kind));
    if current.as_deref() == Some(value.as_str()) {
        return Ok(refuse(state, req, ctx, REFUSED, "contact_same").await);
    }
    let change = PendingChange {
        v: 1,
        id: tokens::new_id()?,
        subject_id: ctx.session.subject_id.clone(),
        sid: ctx.session.sid.clone(),
        kind: kind.as_str().into(),
        value: value.clone(),
        created_at: state.now(),
    };
    let channel = channel_of(kind);
    // The send budget is the person's, whatever values they try.
    let who = state
        .store
        .vault()?
        .blind_index(&format!("contact-change:{}", change.subject_id));
    let code = match super::otp::codes(state)?
        .issue(&code_scope(&change.id), &who, channel, &value, state.now())
        .await?
    {
        Ok(c) => c,
        Err(_) => return Ok(refuse(state, req, ctx, REFUSED, "throttled").await),
    };
    let minutes = (state.cfg.otp.code_ttl_secs / 60).max(1);
    let (subject, text) = match ctx.lang {
        Lang::Ru => (
            "Код подтверждения контакта",
            format!("Код для привязки контакта к учётной записи Пропуска: {code}. Действует {minutes} мин. Если вы его не запрашивали, ничего не делайте."),
        ),
        Lang::En => (
            "Contact confirmation code",
            format!("Code to add this contact to a Propusk account: {code}. Valid for {minutes} min. If you did not ask for it, ignore this message."),
        ),
    };
    let message = NewMessage::new(channel.notify(), value.clone(), "contact_code", text)
        .with_subject(subject)
        .with_locale(ctx.lang.code());
    let now = state.now();
    let e = event(
        state,
        req,
        "profile.contact_code_sent",
        &change.subject_id,
        serde_json::json!({ "kind": change.kind, "channel": channel.as_str() }),
    );
    state
        .store
        .call(move |s| {
            s.enqueue(&message, now)?;
            s.append_audit(&e)
        })
        .await?;
    let bytes = serde_json::to_vec(&change).map_err(OAuthError::server)?;
    let ttl = std::time::Duration::from_secs(state.cfg.otp.code_ttl_secs.max(1));
    state.eph.put(&change_key(&change.id), &bytes, ttl).await?;
    Ok(code_page(state, ctx, StatusCode::OK, None, &change, channel).await)
}

/// The profile with the code form of a pending change (`error`: why it is shown again).
async fn code_page(
    state: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    error: Option<&str>,
    change: &PendingChange,
    channel: CodeChannel,
) -> HttpResponse {
    let masked = mask(channel, &change.value);
    let code_for = CodeView {
        change: &change.id,
        sent_to: &masked,
    };
    render_with(state, ctx, status, error, None, &[], Some(code_for)).await
}

/// The confirmed value of the person's sign-in contact of this kind, if any.
fn confirmed_contact(p: &Profile, kind: ContactKind) -> Option<String> {
    match kind {
        ContactKind::Email => p.email.clone().filter(|_| p.email_verified),
        _ => p.phone_number.clone().filter(|_| p.phone_number_verified),
    }
}

/// The pending change of this session, if it is still live.
async fn pending_change(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
) -> Result<Option<PendingChange>, OAuthError> {
    if id.is_empty() || id.len() > 100 {
        return Ok(None);
    }
    let Some(bytes) = state.eph.get(&change_key(id)).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<PendingChange>(&bytes)
        .ok()
        .filter(|c| c.v == 1 && c.subject_id == ctx.session.subject_id && c.sid == ctx.session.sid))
}

/// "Your e-mail / phone was changed", to the old value.
fn notice_to_old(kind: ContactKind, old: &str, new: Option<&str>, lang: Lang) -> NewMessage {
    let channel = channel_of(kind).notify();
    let shown = new.map(|v| mask(channel_of(kind), v));
    let (subject, text) = match (lang, kind, shown) {
        (Lang::En, ContactKind::Email, Some(n)) => ("Your e-mail was changed", format!("The e-mail of your Propusk account was changed to {n}. If it was not you, contact support at once.")),
        (Lang::En, ContactKind::Email, None) => ("Your e-mail was removed", "The e-mail was removed from your Propusk account. If it was not you, contact support at once.".to_string()),
        (Lang::En, _, Some(n)) => ("Your phone was changed", format!("The mobile phone of your Propusk account was changed to {n}. If it was not you, contact support at once.")),
        (Lang::En, _, None) => ("Your phone was removed", "The mobile phone was removed from your Propusk account. If it was not you, contact support at once.".to_string()),
        (Lang::Ru, ContactKind::Email, Some(n)) => ("Изменён адрес почты", format!("Адрес электронной почты вашей учётной записи Пропуска изменён на {n}. Если это были не вы, срочно обратитесь в поддержку.")),
        (Lang::Ru, ContactKind::Email, None) => ("Удалён адрес почты", "Адрес электронной почты удалён из вашей учётной записи Пропуска. Если это были не вы, срочно обратитесь в поддержку.".to_string()),
        (Lang::Ru, _, Some(n)) => ("Изменён телефон", format!("Мобильный телефон вашей учётной записи Пропуска изменён на {n}. Если это были не вы, срочно обратитесь в поддержку.")),
        (Lang::Ru, _, None) => ("Удалён телефон", "Мобильный телефон удалён из вашей учётной записи Пропуска. Если это были не вы, срочно обратитесь в поддержку.".to_string()),
    };
    NewMessage::new(channel, old.to_string(), "alert.contact_changed", text)
        .with_subject(subject)
        .with_locale(lang.code())
}

/// Saves a contact change (or removal) with its notice to the old value.
async fn save_contact(
    state: &AppState,
    req: &HttpRequest,
    ctx: &Ctx,
    kind: ContactKind,
    value: Option<String>,
) -> Result<ContactOutcome, OAuthError> {
    let sub = ctx.session.subject_id.clone();
    let Some(subject) = state.store.call(move |s| s.find_subject(&sub)).await? else {
        return Err(OAuthError::invalid_request("the account no longer exists"));
    };
    let old = confirmed_contact(&subject.profile, kind);
    let notices: Vec<NewMessage> = old
        .iter()
        .filter(|o| Some(o.as_str()) != value.as_deref())
        .map(|o| notice_to_old(kind, o, value.as_deref(), ctx.lang))
        .collect();
    let e = event(
        state,
        req,
        if value.is_some() {
            "profile.contact_changed"
        } else {
            "profile.contact_removed"
        },
        &subject.id,
        serde_json::json!({ "kind": kind.as_str(), "login_changed": old.as_deref() == Some(subject.login.as_str()) }),
    );
    let now = state.now();
    let sid = subject.id.clone();
    Ok(state
        .store
        .call(move |s| {
            s.change_contact(&ContactChange {
                subject_id: &sid,
                kind,
                value: value.as_deref(),
                event: &e,
                notices: &notices,
                now,
            })
        })
        .await?)
}

fn outcome_code(o: ContactOutcome) -> Option<&'static str> {
    match o {
        ContactOutcome::Changed => None,
        ContactOutcome::Unchanged => Some("contact_same"),
        ContactOutcome::Taken => Some("contact_taken"),
        ContactOutcome::LastContact => Some("last_contact"),
    }
}

/// `POST /account/profile/contact/confirm` (`change`, `code`): the right code saves it.
pub async fn contact_confirm(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (state, req) = (state.get_ref(), &req);
    posted(state, req, &body, |ctx, form| async move {
        confirm(state, req, &ctx, &form).await
    })
    .await
}

async fn confirm(
    state: &AppState,
    req: &HttpRequest,
    ctx: &Ctx,
    form: &Params,
) -> Result<HttpResponse, OAuthError> {
    const FAILED: &str = "profile.contact_code_failure";
    let Some(change) = pending_change(state, ctx, field(form, "change")).await? else {
        return Ok(refuse(state, req, ctx, FAILED, "code_expired").await);
    };
    let Some(kind) = contact_kind(&change.kind) else {
        return Ok(refuse(state, req, ctx, FAILED, "code_expired").await);
    };
    if !confirmed_recently(state, ctx).await? {
        return Ok(refuse(state, req, ctx, "profile.contact_refused", "confirm_first").await);
    }
    match super::otp::codes(state)?
        .verify(&code_scope(&change.id), field(form, "code"), state.now())
        .await?
    {
        Verdict::Right => {}
        v @ (Verdict::Wrong { .. } | Verdict::Malformed) => {
            let left = match v {
                Verdict::Wrong { left } => Some(left),
                _ => None,
            };
            audit(
                state,
                req,
                FAILED,
                &ctx.session.subject_id,
                serde_json::json!({ "left": left }),
            )
            .await?;
            let (status, error) = (StatusCode::BAD_REQUEST, Some("wrong_code"));
            let channel = channel_of(kind);
            return Ok(code_page(state, ctx, status, error, &change, channel).await);
        }
        Verdict::Exhausted | Verdict::Expired | Verdict::Used => {
            let _ = state.eph.delete(&change_key(&change.id)).await;
            return Ok(refuse(state, req, ctx, FAILED, "code_expired").await);
        }
    }
    let _ = state.eph.delete(&change_key(&change.id)).await;
    let outcome = save_contact(state, req, ctx, kind, Some(change.value.clone())).await?;
    match outcome_code(outcome) {
        None => Ok(see_other(&format!("{PAGE}?notice=contact_changed"))),
        Some(code) => Ok(refuse(state, req, ctx, "profile.contact_refused", code).await),
    }
}

/// `POST /account/profile/contact/remove` (`kind`).
pub async fn contact_remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (state, req) = (state.get_ref(), &req);
    posted(state, req, &body, |ctx, form| async move {
        remove_contact(state, req, &ctx, &form).await
    })
    .await
}

async fn remove_contact(
    state: &AppState,
    req: &HttpRequest,
    ctx: &Ctx,
    form: &Params,
) -> Result<HttpResponse, OAuthError> {
    let Some(kind) = contact_kind(field(form, "kind")) else {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            ctx.lang,
            ErrorKind::BadRequest,
            None,
        ));
    };
    if !confirmed_recently(state, ctx).await? {
        return Ok(refuse(state, req, ctx, "profile.contact_refused", "confirm_first").await);
    }
    let outcome = save_contact(state, req, ctx, kind, None).await?;
    Ok(match outcome_code(outcome) {
        None => see_other(&format!("{PAGE}?notice=contact_removed")),
        Some(code) => refuse(state, req, ctx, "profile.contact_refused", code).await,
    })
}

// ------------------------------------------------------------------ addresses

const MAX_ADDRESS: usize = 300;

fn address_kind(s: &str) -> Option<AddressKind> {
    AddressKind::parse(s)
}

/// Validates the address form: kind, the address line (5..300 characters, no control
/// characters), an optional 6-digit postal code, an optional ISO alpha-3 country (default
/// RUS). Returns the address (a new id unless `existing` names the one it replaces).
fn address_of(
    form: &Params,
    existing: Option<&Address>,
    id: String,
    now: DateTime<Utc>,
) -> Result<Address, &'static str> {
    let kind = address_kind(field(form, "address_kind")).ok_or("address_kind")?;
    let formatted = field(form, "formatted");
    if formatted.is_empty() {
        return Err("address_missing");
    }
    if formatted.chars().count() > MAX_ADDRESS || formatted.chars().any(char::is_control) {
        return Err("address_too_long");
    }
    if formatted.chars().count() < 5 {
        return Err("address_short");
    }
    let zip = field(form, "zip");
    let zip_ok = zip.len() == 6 && zip.bytes().all(|b| b.is_ascii_digit());
    if !zip.is_empty() && !zip_ok {
        return Err("address_zip");
    }
    let country = match field(form, "country") {
        "" => "RUS".to_string(),
        c if c.len() == 3 && c.bytes().all(|b| b.is_ascii_alphabetic()) => c.to_ascii_uppercase(),
        _ => return Err("address_country"),
    };
    Ok(Address {
        id: existing.map_or(id, |a| a.id.clone()),
        kind,
        formatted: formatted.to_string(),
        zip: (!zip.is_empty()).then(|| zip.to_string()),
        country: Some(country),
        created_at: existing.map_or(now, |a| a.created_at),
        updated_at: now,
    })
}

/// The person's address of the kind named `kind`, if any.
async fn current_address(
    state: &AppState,
    ctx: &Ctx,
    kind: &str,
) -> Result<Option<Address>, OAuthError> {
    let kind = address_kind(kind);
    let sub = ctx.session.subject_id.clone();
    let person = state.store.call(move |s| s.find_person(&sub)).await?;
    Ok(person.and_then(|p| p.addresses.into_iter().find(|a| Some(a.kind) == kind)))
}

/// `POST /account/profile/address` (`address_kind`, `formatted`, `zip`, `country`): adds the
/// address of that kind, or replaces it.
pub async fn address_save(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (state, req) = (state.get_ref(), &req);
    posted(state, req, &body, |ctx, form| async move {
        save_address(state, req, &ctx, &form).await
    })
    .await
}

async fn save_address(
    state: &AppState,
    req: &HttpRequest,
    ctx: &Ctx,
    form: &Params,
) -> Result<HttpResponse, OAuthError> {
    let existing = current_address(state, ctx, field(form, "address_kind")).await?;
    let existing = existing.as_ref();
    let address = match address_of(form, existing, tokens::new_id()?, state.now()) {
        Ok(a) => a,
        Err(code) => return Ok(refuse(state, req, ctx, "profile.address_refused", code).await),
    };
    let e = event(
        state,
        req,
        "profile.address_saved",
        &ctx.session.subject_id,
        serde_json::json!({ "kind": address.kind.as_str(), "replaced": existing.is_some() }),
    );
    let sub = ctx.session.subject_id.clone();
    state
        .store
        .call(move |s| s.put_item(&sub, &PersonItem::Address(address), &e))
        .await?;
    Ok(see_other(&format!("{PAGE}?notice=address_saved")))
}

/// `POST /account/profile/address/remove` (`kind`).
pub async fn address_remove(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (state, req) = (state.get_ref(), &req);
    posted(state, req, &body, |ctx, form| async move {
        remove_address(state, req, &ctx, &form).await
    })
    .await
}

async fn remove_address(
    state: &AppState,
    req: &HttpRequest,
    ctx: &Ctx,
    form: &Params,
) -> Result<HttpResponse, OAuthError> {
    let Some(id) = current_address(state, ctx, field(form, "kind"))
        .await?
        .map(|a| a.id)
    else {
        return Ok(refuse(
            state,
            req,
            ctx,
            "profile.address_refused",
            "address_not_found",
        )
        .await);
    };
    let e = event(
        state,
        req,
        "profile.address_removed",
        &ctx.session.subject_id,
        serde_json::json!({ "kind": field(form, "kind") }),
    );
    let sub = ctx.session.subject_id.clone();
    state
        .store
        .call(move |s| s.remove_item(&sub, &id, &e))
        .await?;
    Ok(see_other(&format!("{PAGE}?notice=address_removed")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Params {
        let body: String = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencoding(v)))
            .collect::<Vec<_>>()
            .join("&");
        Params::parse(body.as_bytes())
    }

    fn urlencoding(v: &str) -> String {
        url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap()
    }

    #[test]
    fn address_form_is_checked_field_by_field() {
        let ok = [
            ("address_kind", "registration"),
            ("formatted", "г. Москва, ул. Тверская, д. 1, кв. 5"),
            ("zip", "125009"),
            ("country", "rus"),
        ];
        let a = address_of(&form(&ok), None, "a1".into(), now()).unwrap();
        assert_eq!(a.kind, AddressKind::Registration);
        assert_eq!(a.country.as_deref(), Some("RUS"));
        assert_eq!(a.zip.as_deref(), Some("125009"));
        let cases: [(&str, &str, &str); 6] = [
            ("address_kind", "office", "address_kind"),
            ("formatted", "", "address_missing"),
            ("formatted", "д.1", "address_short"),
            ("formatted", "Москва\u{0}улица", "address_too_long"),
            ("zip", "12345", "address_zip"),
            ("country", "RU", "address_country"),
        ];
        for (k, v, want) in cases {
            let f: Vec<(&str, &str)> = ok
                .iter()
                .map(|(a, b)| if *a == k { (*a, v) } else { (*a, *b) })
                .collect();
            assert_eq!(
                address_of(&form(&f), None, "a1".into(), now()).unwrap_err(),
                want
            );
        }
        let long = "x".repeat(301);
        let f = [("address_kind", "living"), ("formatted", long.as_str())];
        assert_eq!(
            address_of(&form(&f), None, "a1".into(), now()).unwrap_err(),
            "address_too_long"
        );
    }

    #[test]
    fn contacts_are_normalised_or_refused_precisely() {
        assert_eq!(
            normalise(ContactKind::Mobile, "8 (900) 123-45-67").unwrap(),
            "+79001234567"
        );
        assert_eq!(
            normalise(ContactKind::Email, "Ivan@Example.RU").unwrap(),
            "ivan@example.ru"
        );
        assert_eq!(
            normalise(ContactKind::Mobile, "ivan@example.ru"),
            Err("bad_phone")
        );
        assert_eq!(
            normalise(ContactKind::Email, "+79001234567"),
            Err("bad_email")
        );
    }
}
