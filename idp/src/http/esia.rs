//! The ESIA dialect's HTTP adapters: `/aas/oauth2/{ac,v2/ac,te,v3/te}`, `/idp/ext/Logout`,
//! `/rs/prns/{oid}[/{collection}[/{id}]]`. The rules live in `crate::esia`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::{ErrorKind, Lang};

use super::authorize::{proceed, redirect_error};
use super::error::{bearer_error, json_error, lang_of, page, page_failure};
use crate::audit::AuditEvent;
use crate::esia::authorize::{self as ac, AcError};
use crate::esia::errors::{code_of, EsiaCode};
use crate::esia::prns::{self, Collection};
use crate::esia::{param, token as te, Flavor};
use crate::protocol::params::Params;
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{AuditStore, ClientStore};

fn disabled(state: &AppState, req: &HttpRequest) -> Option<HttpResponse> {
    (!state.cfg.esia.enabled).then(|| {
        page(
            StatusCode::NOT_FOUND,
            lang_of(req, None),
            ErrorKind::NotFound,
            None,
        )
    })
}

/// Every refusal on an ESIA path is an audit event naming its ESIA code (never a secret).
async fn audit_refusal(
    state: &AppState,
    req: &HttpRequest,
    endpoint: &str,
    client_id: Option<String>,
    e: &OAuthError,
) {
    let event = AuditEvent {
        at: state.now(),
        kind: "esia.request_refused".into(),
        subject_id: None,
        client_id: client_id.filter(|c| c.len() <= 256),
        ip: super::client_ip(state, req),
        detail: serde_json::json!({
            "endpoint": endpoint,
            "code": code_of(e).unwrap_or(e.code.as_str()),
        }),
    };
    if let Err(err) = state.store.call(move |s| s.append_audit(&event)).await {
        tracing::error!(error = %err, "cannot write the audit event of a refused ESIA request");
    }
}

/// The error a refused consent sends back: for a client of the ESIA dialect (a registered
/// certificate) `access_denied` with `ESIA-007004` (and an `esia.request_refused` audit
/// event), for any other client the provider's plain `access_denied`.
pub(super) async fn consent_denied(
    state: &AppState,
    req: &HttpRequest,
    client_id: &str,
) -> OAuthError {
    let plain = || {
        OAuthError::new(
            crate::protocol::ErrorCode::AccessDenied,
            "the user declined to share the data",
        )
    };
    match te::find_client(state, client_id).await {
        Ok(Some(_)) => {
            let e = EsiaCode::Denied.error("the user refused to grant access to the data");
            audit_refusal(state, req, "consent", Some(client_id.to_string()), &e).await;
            e
        }
        _ => plain(),
    }
}

pub async fn ac_legacy(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    authorize(&state, &req, Flavor::Legacy).await
}

pub async fn ac_v2(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    authorize(&state, &req, Flavor::Current).await
}

#[tracing::instrument(skip_all, fields(client_id, flavor = flavor.as_str()))]
async fn authorize(state: &AppState, req: &HttpRequest, flavor: Flavor) -> HttpResponse {
    if let Some(r) = disabled(state, req) {
        return r;
    }
    let endpoint = match flavor {
        Flavor::Legacy => "ac",
        Flavor::Current => "v2/ac",
    };
    let lang = lang_of(req, None);
    let params = Params::parse(req.query_string().as_bytes());
    let client_id = match param(&params, "client_id") {
        Ok(Some(c)) => c.to_string(),
        Ok(None) => {
            return refused_page(
                state,
                req,
                lang,
                endpoint,
                None,
                EsiaCode::missing("client_id"),
            )
            .await
        }
        Err(e) => return refused_page(state, req, lang, endpoint, None, e).await,
    };
    tracing::Span::current().record("client_id", client_id.as_str());
    let found = match te::find_client(state, &client_id).await {
        Ok(f) => f,
        Err(e) => return page_failure(lang, &e),
    };
    let (client, cert) = match found {
        Some((c, k)) => (Some(c), Some(k)),
        None => (None, None),
    };
    // The signature check (certificate parsing, CMS) runs off the async workers.
    let (esia_cfg, now) = (state.cfg.esia.clone(), state.now());
    let checked = web::block(move || {
        let (client, cert, uri) =
            ac::check_client_and_redirect(&params, client.as_ref(), cert.as_ref())?;
        let request = ac::check_request(flavor, &params, client, cert, uri, &esia_cfg, now)?;
        Ok::<_, AcError>(request)
    })
    .await;
    let checked = match checked {
        Ok(c) => c,
        Err(e) => return page_failure(lang, &OAuthError::server(e)),
    };
    let request = match checked {
        Ok(x) => x,
        Err(AcError::Page(e)) => {
            return refused_page(state, req, lang, endpoint, Some(client_id), e).await
        }
        Err(AcError::Redirect { target, error }) => {
            audit_refusal(state, req, endpoint, Some(client_id), &error).await;
            return redirect_error(state, &target, &error);
        }
    };
    // From here on, the provider's own browser flow (sign-in, second factor, consent).
    proceed(state, req, lang, request).await
}

/// An error page (no safe redirect) that names the ESIA code.
async fn refused_page(
    state: &AppState,
    req: &HttpRequest,
    lang: Lang,
    endpoint: &str,
    client_id: Option<String>,
    e: OAuthError,
) -> HttpResponse {
    tracing::info!(
        error = e.description.as_str(),
        "ESIA authorization request refused with a page"
    );
    audit_refusal(state, req, endpoint, client_id, &e).await;
    let kind = match code_of(&e) {
        Some("ESIA-007002") => ErrorKind::InvalidClient,
        Some("ESIA-007005") => ErrorKind::InvalidRedirectUri,
        _ => ErrorKind::BadRequest,
    };
    page(StatusCode::BAD_REQUEST, lang, kind, Some(&e.description))
}

pub async fn te_legacy(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    token(&state, &req, &body, Flavor::Legacy).await
}

pub async fn te_v3(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    token(&state, &req, &body, Flavor::Current).await
}

#[tracing::instrument(skip_all, fields(flavor = flavor.as_str()))]
async fn token(
    state: &AppState,
    req: &HttpRequest,
    body: &web::Bytes,
    flavor: Flavor,
) -> HttpResponse {
    if let Some(r) = disabled(state, req) {
        return r;
    }
    let endpoint = match flavor {
        Flavor::Legacy => "te",
        Flavor::Current => "v3/te",
    };
    let form = match super::token::form_body(req, body) {
        Ok(f) => f,
        Err(_) => {
            let e =
                EsiaCode::BadParameter.error("the body must be application/x-www-form-urlencoded");
            audit_refusal(state, req, endpoint, None, &e).await;
            return json_error(&e);
        }
    };
    let (client_id, res) = te::exchange(state, flavor, &form).await;
    match res {
        Ok(resp) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .insert_header((header::PRAGMA, "no-cache"))
            .json(&resp),
        Err(e) => {
            if code_of(&e).is_some() {
                audit_refusal(state, req, endpoint, client_id, &e).await;
            }
            json_error(&e)
        }
    }
}

/// `GET /idp/ext/Logout?client_id=...&redirect_url=...`: ends the browser's session and
/// returns to a URL registered for the client (a post-logout or redirect URI, exact match).
pub async fn logout(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Some(r) = disabled(&state, &req) {
        return r;
    }
    let lang = lang_of(&req, None);
    let params = Params::parse(req.query_string().as_bytes());
    let (client_id, redirect) = match (param(&params, "client_id"), param(&params, "redirect_url"))
    {
        (Ok(Some(c)), Ok(r)) => (c.to_string(), r.map(str::to_string)),
        (Ok(None), _) => {
            return refused_page(
                &state,
                &req,
                lang,
                "Logout",
                None,
                EsiaCode::missing("client_id"),
            )
            .await
        }
        (Err(e), _) | (_, Err(e)) => {
            return refused_page(&state, &req, lang, "Logout", None, e).await
        }
    };
    let target = match redirect {
        None => None,
        Some(url) => {
            let id = client_id.clone();
            let client = match state.store.call(move |s| s.find_client(&id)).await {
                Ok(c) => c,
                Err(e) => return page_failure(lang, &e.into()),
            };
            let registered = client.is_some_and(|c| {
                c.post_logout_redirect_uris.contains(&url) || c.redirect_uris.contains(&url)
            });
            if !registered || url::Url::parse(&url).is_err() {
                let e = EsiaCode::BadRedirectUri
                    .error("redirect_url is not registered for this client");
                return refused_page(&state, &req, lang, "Logout", Some(client_id), e).await;
            }
            Some(url)
        }
    };
    super::logout::end_and(&state, &req, lang, target, Some(&client_id)).await
}

fn bearer(req: &HttpRequest) -> Option<&str> {
    let h = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    (h.len() > 7 && h[..7].eq_ignore_ascii_case("bearer ")).then(|| h[7..].trim())
}

/// ESIA-007019 is a 403; a bad token a 401 with `WWW-Authenticate`.
fn prns_error(e: &OAuthError) -> HttpResponse {
    if code_of(e) == Some("ESIA-007019") {
        tracing::info!(
            detail = e.detail.as_deref().unwrap_or(""),
            "person data refused"
        );
        return HttpResponse::Forbidden()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(
                serde_json::json!({ "error": e.code.as_str(), "error_description": e.description }),
            );
    }
    bearer_error(e)
}

fn no_store_json(v: &serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(v)
}

/// `/rs/prns/{oid}`, `/rs/prns/{oid}/{collection}` and `/rs/prns/{oid}/{collection}/{id}`.
pub async fn prns(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    if let Some(r) = disabled(&state, &req) {
        return r;
    }
    let info = req.match_info();
    let (oid, coll, id) = (info.get("oid"), info.get("coll"), info.get("id"));
    let Some(oid) = oid.and_then(|o| o.parse::<i64>().ok()) else {
        return page(
            StatusCode::NOT_FOUND,
            lang_of(&req, None),
            ErrorKind::NotFound,
            None,
        );
    };
    let coll = match coll {
        None => None,
        Some(c) => match Collection::parse(c) {
            Some(c) if c.path() == info.get("coll").unwrap_or("") => Some(c),
            _ => {
                return page(
                    StatusCode::NOT_FOUND,
                    lang_of(&req, None),
                    ErrorKind::NotFound,
                    None,
                )
            }
        },
    };
    let Some(token) = bearer(&req) else {
        return prns_error(&EsiaCode::BadToken.error("an access token is required"));
    };
    let access = match prns::access(&state, token, oid).await {
        Ok(a) => a,
        Err(e) => {
            if code_of(&e) == Some("ESIA-007019") {
                audit_refusal(&state, &req, "rs/prns", None, &e).await;
            }
            return prns_error(&e);
        }
    };
    let params = Params::parse(req.query_string().as_bytes());
    let embed = params.get("embed").ok().flatten();
    // Element links point at this server, which serves them.
    let base = state.issuer.to_string();
    let result = match (coll, id) {
        (None, _) => Ok(prns::person(&access, &base, &prns::parse_embed(embed))),
        (Some(c), None) => prns::collection(&access, c, &base, prns::embeds_elements(embed)),
        (Some(c), Some(id)) => match prns::element(&access, c, id) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => {
                return page(
                    StatusCode::NOT_FOUND,
                    lang_of(&req, None),
                    ErrorKind::NotFound,
                    None,
                )
            }
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(v) => no_store_json(&v),
        Err(e) => {
            audit_refusal(&state, &req, "rs/prns", None, &e).await;
            prns_error(&e)
        }
    }
}
