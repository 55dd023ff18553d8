//! `/account/profile`: the person's data (level, name, documents masked, organisations, the
//! change history) and the identity form — SNILS + passport sent to the registry verifier to
//! raise a simplified account to standard (issue 5). Needs a live SSO session; forms carry a
//! CSRF token derived from the session cookie.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{
    AddressView, CodeView, ContactView, ErrorKind, Lang, ProfilePage, VerificationView,
};

use super::account::SignedInPage;
pub(super) use super::account::{event, Ctx};
use super::error::{html, page, page_failure};
use super::login::see_other;
use crate::domain::identifier::Snils;
use crate::domain::person::{AddressKind, IdentityForm, Person, Verification, VerificationState};
use crate::domain::Subject;
use crate::protocol::params::Params;
use crate::protocol::{tokens, OAuthError};
use crate::state::AppState;
use crate::store::{AuditStore, PersonStore, StoreError, SubjectStore};

pub(super) const PAGE: &str = "/account/profile";

/// The profile page: its forms' CSRF tokens are its own (`profile:`), and a sign-in for it
/// comes back here.
const SIGNED_IN: SignedInPage = SignedInPage {
    csrf_label: "profile",
    path: PAGE,
};

pub(super) async fn context(state: &AppState, req: &HttpRequest) -> Result<Ctx, HttpResponse> {
    super::account::signed_in_context(state, req, SIGNED_IN).await
}

/// The context of a form post of the profile page, CSRF checked.
pub(super) async fn form_context(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
) -> Result<(Ctx, Params), HttpResponse> {
    super::account::signed_in_form(state, req, body, SIGNED_IN).await
}

fn fmt_date(d: chrono::NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}

/// Rows of the "personal data" list; personal numbers masked.
fn facts(lang: Lang, s: &Subject, p: &Person) -> Vec<(String, String)> {
    let ru = lang == Lang::Ru;
    let l = |r: &str, e: &str| if ru { r.to_string() } else { e.to_string() };
    let pr = &s.profile;
    let mut out = Vec::new();
    let name: Vec<&str> = [&pr.family_name, &pr.given_name, &pr.middle_name]
        .into_iter()
        .filter_map(|x| x.as_deref())
        .collect();
    if !name.is_empty() {
        out.push((l("ФИО", "Name"), name.join(" ")));
    }
    if let Some(b) = &pr.birthdate {
        let shown = crate::domain::person::parse_date(b)
            .map(fmt_date)
            .unwrap_or_else(|| b.clone());
        out.push((l("Дата рождения", "Date of birth"), shown));
    }
    if let Some(s) = p.snils.as_deref().and_then(|x| Snils::parse(x).ok()) {
        out.push((l("СНИЛС", "SNILS"), s.to_string()));
    }
    if let Some(i) = &p.inn {
        let tail = i.get(i.len().saturating_sub(2)..).unwrap_or_default();
        out.push((l("ИНН", "INN"), format!("********{tail}")));
    }
    if let Some(d) = p.passport() {
        let tail = d
            .number
            .get(d.number.len().saturating_sub(2)..)
            .unwrap_or_default();
        let series = d.series.as_deref().unwrap_or("");
        out.push((
            l("Паспорт", "Passport"),
            format!(
                "{} **** {tail}{}",
                series.get(..2).unwrap_or_default(),
                d.issue_date
                    .map(|x| format!(", {}", fmt_date(x)))
                    .unwrap_or_default()
            ),
        ));
    }
    for m in &p.organizations {
        out.push((
            l("Организация", "Organisation"),
            format!("{} ({}, ОГРН {})", m.name, m.role.as_str(), m.ogrn.as_str()),
        ));
    }
    if let Some(c) = &p.confirmation {
        out.push((
            l("Личность подтверждена", "Identity confirmed"),
            format!("{} ({})", c.at.format("%d.%m.%Y"), c.method.as_str()),
        ));
    }
    out
}

struct Loaded {
    subject: Subject,
    person: Person,
    verification: Option<Verification>,
    history: Vec<(String, String)>,
}

/// A history row in words: "Документ: добавлен".
fn change_text(lang: Lang, collection: &str, action: &str) -> String {
    let ru = lang == Lang::Ru;
    let what = match (collection, ru) {
        ("document", true) => "Документ",
        ("contact", true) => "Контакт",
        ("address", true) => "Адрес",
        ("organization", true) => "Организация",
        ("snils", true) => "СНИЛС",
        ("inn", true) => "ИНН",
        ("birth_place", true) => "Место рождения",
        ("level", true) => "Уровень учётной записи",
        ("status", true) => "Состояние учётной записи",
        ("document", false) => "Document",
        ("contact", false) => "Contact",
        ("address", false) => "Address",
        ("organization", false) => "Organisation",
        ("snils", false) => "SNILS",
        ("inn", false) => "INN",
        ("birth_place", false) => "Place of birth",
        ("level", false) => "Account level",
        ("status", false) => "Account status",
        (other, _) => other,
    };
    let how = match (action, ru) {
        ("added", true) => "добавлено",
        ("changed", true) => "изменено",
        ("removed", true) => "удалено",
        (other, _) => other,
    };
    format!("{what}: {how}")
}

async fn load(
    state: &AppState,
    lang: Lang,
    subject_id: &str,
) -> Result<Option<Loaded>, OAuthError> {
    let sid = subject_id.to_string();
    Ok(state
        .store
        .call(move |s| {
            let (Some(subject), Some(person)) = (s.find_subject(&sid)?, s.find_person(&sid)?)
            else {
                return Ok(None);
            };
            let verification = s.latest_verification(&sid)?;
            let history = s
                .person_history(&sid)?
                .into_iter()
                .rev()
                .take(20)
                .map(|c| {
                    (
                        c.at.format("%d.%m.%Y %H:%M:%S").to_string(),
                        change_text(lang, &c.collection, &c.action),
                    )
                })
                .collect();
            Ok(Some(Loaded {
                subject,
                person,
                verification,
                history,
            }))
        })
        .await?)
}

/// Renders the profile; `values` refill the identity form after an error.
pub(super) async fn render(
    state: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
    values: &[(&str, String)],
) -> HttpResponse {
    render_with(state, ctx, status, error, notice, values, None).await
}

/// The sign-in contacts (e-mail, mobile) as the profile page shows them.
fn contact_views(s: &Subject) -> Vec<ContactView> {
    let p = &s.profile;
    [
        ("email", p.email.clone()),
        ("mobile", p.phone_number.clone()),
    ]
    .into_iter()
    .map(|(kind, value)| {
        let is_login = value.as_deref() == Some(s.login.as_str());
        ContactView {
            kind,
            value,
            is_login,
        }
    })
    .collect()
}

fn address_views(p: &Person) -> Vec<AddressView> {
    p.addresses
        .iter()
        .map(|a| AddressView {
            kind: match a.kind {
                AddressKind::Registration => "registration",
                AddressKind::Living => "living",
            },
            formatted: a.formatted.clone(),
            zip: a.zip.clone().unwrap_or_default(),
            country: a.country.clone().unwrap_or_default(),
        })
        .collect()
}

/// Renders the profile, with the code form of a contact change when `code_for` is set.
pub(super) async fn render_with(
    state: &AppState,
    ctx: &Ctx,
    status: StatusCode,
    error: Option<&str>,
    notice: Option<&str>,
    values: &[(&str, String)],
    code_for: Option<CodeView<'_>>,
) -> HttpResponse {
    let loaded = match load(state, ctx.lang, &ctx.session.subject_id).await {
        Ok(Some(l)) => l,
        Ok(None) => {
            return page(
                StatusCode::NOT_FOUND,
                ctx.lang,
                ErrorKind::SessionExpired,
                None,
            )
        }
        Err(e) => return page_failure(ctx.lang, &e),
    };
    let p = &loaded.person;
    let facts = facts(ctx.lang, &loaded.subject, p);
    let reason = match loaded.verification.as_ref().map(|v| &v.state) {
        Some(VerificationState::Mismatch { reason }) => reason.as_str(),
        _ => "",
    };
    let verification = loaded.verification.as_ref().map(|v| VerificationView {
        state: v.state.as_str(),
        reason,
    });
    let pending = loaded
        .verification
        .as_ref()
        .is_some_and(|v| v.state == VerificationState::Pending);
    // Prefill the form with what the profile knows.
    let pr = &loaded.subject.profile;
    let mut all: Vec<(&str, String)> = values.to_vec();
    if values.is_empty() {
        for (k, v) in [
            ("family_name", pr.family_name.clone()),
            ("given_name", pr.given_name.clone()),
            ("middle_name", pr.middle_name.clone()),
            (
                "birth_date",
                pr.birthdate
                    .as_deref()
                    .and_then(crate::domain::person::parse_date)
                    .map(fmt_date),
            ),
        ] {
            if let Some(v) = v {
                all.push((k, v));
            }
        }
    }
    let (contacts, addresses) = (contact_views(&loaded.subject), address_views(p));
    let body = ProfilePage {
        lang: ctx.lang,
        csrf: &ctx.csrf,
        user_display: &loaded.subject.login,
        level: p.level.as_str(),
        status: p.status.as_str(),
        facts: &facts,
        verification,
        show_form: p.level == crate::domain::person::AccountLevel::Simplified && !pending,
        values: &all,
        error,
        // "Sent for checking" only while the check is under way.
        notice: notice.filter(|n| *n != "submitted" || pending),
        history: &loaded.history,
        contacts: &contacts,
        addresses: &addresses,
        code_for,
    }
    .render();
    html(status, body)
}

/// `GET /account/profile`.
pub async fn profile_page(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let ctx = match context(&state, &req).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let query = Params::parse(req.query_string().as_bytes());
    let notice = query.get("notice").ok().flatten().and_then(|n| {
        [
            "submitted",
            "contact_changed",
            "contact_removed",
            "address_saved",
            "address_removed",
        ]
        .into_iter()
        .find(|k| *k == n)
    });
    render(&state, &ctx, StatusCode::OK, None, notice, &[]).await
}

const FORM_FIELDS: [&str; 11] = [
    "family_name",
    "given_name",
    "middle_name",
    "birth_date",
    "birth_place",
    "snils",
    "passport_series",
    "passport_number",
    "passport_issue_date",
    "passport_issued_by",
    "passport_division_code",
];

fn form_of(form: &Params) -> IdentityForm {
    let g = |k: &str| form.get(k).ok().flatten().unwrap_or("").to_string();
    IdentityForm {
        family_name: g("family_name"),
        given_name: g("given_name"),
        middle_name: g("middle_name"),
        birth_date: g("birth_date"),
        birth_place: g("birth_place"),
        snils: g("snils"),
        passport_series: g("passport_series"),
        passport_number: g("passport_number"),
        passport_issue_date: g("passport_issue_date"),
        passport_issued_by: g("passport_issued_by"),
        passport_division_code: g("passport_division_code"),
    }
}

/// `POST /account/profile/identity`: validate, then queue the registry check. Every refusal
/// is specific, writes `identity.rejected` and saves nothing.
pub async fn submit_identity(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (ctx, form) = match form_context(&state, &req, &body).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let lang = ctx.lang;
    let values: Vec<(&str, String)> = FORM_FIELDS
        .iter()
        .map(|k| {
            (
                *k,
                form.get(k)
                    .ok()
                    .flatten()
                    .unwrap_or("")
                    .chars()
                    .take(200)
                    .collect(),
            )
        })
        .collect();
    let sub = ctx.session.subject_id.clone();
    let now = state.now();
    let refuse = |code: String| {
        let state = state.clone();
        let req = req.clone();
        let sub = sub.clone();
        async move {
            let e = event(
                &state,
                &req,
                "identity.rejected",
                &sub,
                serde_json::json!({ "error": code }),
            );
            state
                .store
                .call(move |s| s.append_audit(&e))
                .await
                .map(|_| code)
        }
    };
    let claim = match form_of(&form).validate(now.date_naive()) {
        Ok(c) => c,
        Err(e) => {
            return match refuse(e.code()).await {
                Ok(code) => {
                    render(
                        &state,
                        &ctx,
                        StatusCode::BAD_REQUEST,
                        Some(&code),
                        None,
                        &values,
                    )
                    .await
                }
                Err(e) => page_failure(lang, &e.into()),
            };
        }
    };
    let id = match tokens::new_id() {
        Ok(i) => i,
        Err(e) => return page_failure(lang, &e),
    };
    let v = Verification {
        id,
        subject_id: sub.clone(),
        claim,
        state: VerificationState::Pending,
        registry_ref: None,
        attempts: 0,
        next_attempt_at: now,
        last_error: None,
        created_at: now,
        updated_at: now,
    };
    let snils = v.claim.snils.clone();
    let e = event(
        &state,
        &req,
        "identity.submitted",
        &sub,
        serde_json::json!({ "verification": v.id }),
    );
    let sub2 = sub.clone();
    let res = state
        .store
        .call(move |s| {
            // A SNILS already recorded on another account cannot be claimed here.
            if let Some(other) = s.find_subject_by_snils_or_inn(&snils)? {
                if other.id != sub2 {
                    return Ok(Err("snils_taken"));
                }
            }
            match s.insert_verification(&v, &e) {
                Ok(()) => Ok(Ok(())),
                Err(StoreError::Conflict) => Ok(Err("pending")),
                Err(e) => Err(e),
            }
        })
        .await;
    match res {
        Ok(Ok(())) => see_other(&format!("{PAGE}?notice=submitted")),
        Ok(Err(code)) => match refuse(code.to_string()).await {
            Ok(code) => {
                render(
                    &state,
                    &ctx,
                    StatusCode::BAD_REQUEST,
                    Some(&code),
                    None,
                    &values,
                )
                .await
            }
            Err(e) => page_failure(lang, &e.into()),
        },
        Err(e) => page_failure(lang, &e.into()),
    }
}
