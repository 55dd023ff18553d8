//! Cookies: the SSO session and the browser binding of login transactions.
//! `__Host-` prefix, Secure, HttpOnly, SameSite=Lax; dev mode on plain http drops the
//! prefix and Secure (browsers refuse `__Host-` cookies without it).

use actix_web::cookie::{time::Duration, Cookie, SameSite};
use actix_web::HttpRequest;

use crate::state::AppState;

fn name(state: &AppState, base: &str) -> String {
    if state.cfg.insecure_cookies() {
        base.to_string()
    } else {
        format!("__Host-{base}")
    }
}

pub fn session_name(state: &AppState) -> String {
    name(state, "propusk_session")
}

pub fn bid_name(state: &AppState) -> String {
    name(state, "propusk_bid")
}

pub fn read(req: &HttpRequest, name: &str) -> Option<String> {
    req.cookie(name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

pub fn build(
    state: &AppState,
    name: String,
    value: String,
    max_age_secs: Option<i64>,
) -> Cookie<'static> {
    let mut c = Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(!state.cfg.insecure_cookies())
        .finish();
    if let Some(s) = max_age_secs {
        c.set_max_age(Duration::seconds(s));
    }
    c
}

pub fn removal(state: &AppState, name: String) -> Cookie<'static> {
    let mut c = build(state, name, String::new(), Some(0));
    c.make_removal();
    c
}
