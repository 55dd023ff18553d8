//! The only place that imports actix-web: routes, extractors, error mapping.

mod account;
mod activate;
mod alerts;
mod authorize;
mod bank;
mod bearer;
mod certificate;
mod consent;
mod cookies;
mod error;
mod esia;
mod level;
mod login;
mod logout;
mod meta;
mod otp;
mod passkey;
mod password;
mod profile;
mod profile_edit;
mod recovery;
mod register;
mod second_factor;
mod step_up;
mod test_clock;
mod token;

use actix_web::{middleware, web, App, HttpServer};

use crate::state::AppState;

/// The client's address: the peer, or what a trusted proxy reports in `X-Forwarded-For`.
pub(crate) fn client_ip(state: &AppState, req: &actix_web::HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok());
    Some(forwarded_client(&state.cfg.trusted_proxies, peer, forwarded).to_string())
}

/// The rightmost `X-Forwarded-For` entry that is not a trusted proxy, when the peer is one;
/// the peer otherwise (anyone can send the header, so only trusted proxies are believed).
fn forwarded_client<'a>(
    trusted: &[std::net::IpAddr],
    peer: std::net::IpAddr,
    headers: impl Iterator<Item = &'a str>,
) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let entries: Vec<&str> = headers.flat_map(|v| v.split(',')).map(str::trim).collect();
    for entry in entries.iter().rev() {
        match entry.parse::<std::net::IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => continue,
            Ok(ip) => return ip,
            // A malformed entry: nothing to the left of it can be trusted.
            Err(_) => break,
        }
    }
    peer
}

/// Largest request body accepted on any endpoint.
pub const MAX_BODY: usize = 64 * 1024;

/// Security headers on every response (design §7).
fn security_headers(dev: bool) -> middleware::DefaultHeaders {
    let h = middleware::DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
        ))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"));
    if dev {
        h
    } else {
        h.add((
            "Strict-Transport-Security",
            "max-age=31536000; includeSubDomains",
        ))
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_BODY))
        .route(
            "/.well-known/openid-configuration",
            web::get().to(meta::discovery),
        )
        .route("/jwks", web::get().to(meta::jwks))
        .route("/static/{name}", web::get().to(meta::static_asset))
        .route("/authorize", web::get().to(authorize::get))
        .route("/authorize", web::post().to(authorize::post))
        .route("/login", web::get().to(login::login_page))
        .route("/login", web::post().to(login::submit))
        .route(
            "/login/second-factor",
            web::get().to(second_factor::page_get),
        )
        .route(
            "/login/second-factor",
            web::post().to(second_factor::submit),
        )
        .route("/consent", web::get().to(consent::consent_page))
        .route("/consent", web::post().to(consent::consent_submit))
        .route("/token", web::post().to(token::token))
        .route("/userinfo", web::get().to(token::userinfo_get))
        .route("/userinfo", web::post().to(token::userinfo_post))
        .route("/introspect", web::post().to(token::introspect))
        .route("/revoke", web::post().to(token::revoke))
        .route("/logout", web::get().to(logout::get))
        .route("/logout", web::post().to(logout::post))
        .route("/health", web::get().to(meta::health))
        .route("/dev/mailbox", web::get().to(alerts::dev_mailbox))
        // Tests only: `danger_test_clock` (dev mode), a 404 otherwise.
        .route("/dev/clock/advance", web::post().to(test_clock::advance))
        // One-time codes, temporary and changed passwords, recovery (issue 4, signin).
        .route("/login/otp/send", web::post().to(otp::send_code))
        .route("/login/new-password", web::get().to(password::forced_get))
        .route("/login/new-password", web::post().to(password::forced_post))
        .route("/account/password", web::get().to(password::change_get))
        .route("/account/password", web::post().to(password::change_post))
        .route("/recover/password", web::get().to(recovery::contact_get))
        .route(
            "/recover/password",
            web::post().to(recovery::password_request),
        )
        .route("/recover/password/code", web::get().to(recovery::code_get))
        .route(
            "/recover/password/code",
            web::post().to(recovery::code_post),
        )
        .route("/recover/password/resend", web::post().to(recovery::resend))
        .route("/recover/password/new", web::get().to(recovery::new_get))
        .route("/recover/password/new", web::post().to(recovery::new_post))
        .route("/recover/login", web::get().to(recovery::contact_get))
        .route("/recover/login", web::post().to(recovery::login_request))
        // WebAuthn in a sign-in, and the citizen's security page (issue 4).
        .route(
            "/login/passkey/start",
            web::post().to(passkey::signin_start),
        )
        .route(
            "/login/passkey/finish",
            web::post().to(passkey::signin_finish),
        )
        .route(
            "/login/security-key/start",
            web::post().to(passkey::second_start),
        )
        .route(
            "/login/security-key/finish",
            web::post().to(passkey::second_finish),
        )
        // Step-up to a passkey for portals that need acr 3 (issue 4, login).
        .route(step_up::PAGE, web::get().to(step_up::page_get))
        .route(
            "/login/passkey-step-up/start",
            web::post().to(step_up::start),
        )
        .route(
            "/login/passkey-step-up/finish",
            web::post().to(step_up::finish),
        )
        .route(
            step_up::NO_PASSKEY_PAGE,
            web::get().to(step_up::needed_page),
        )
        .route(step_up::NO_PASSKEY_PAGE, web::post().to(step_up::give_up))
        // The person: profile, identity documents (issue 5, identity).
        .route("/register", web::get().to(register::page))
        .route("/register", web::post().to(register::submit))
        .route("/activate", web::get().to(activate::page_get))
        .route("/activate", web::post().to(activate::submit))
        .route("/account/profile", web::get().to(profile::profile_page))
        .route(bank::PATH, web::post().to(bank::confirm))
        .route(certificate::PAGE, web::get().to(certificate::page_get))
        .route(certificate::PAGE, web::post().to(certificate::submit))
        .route(
            "/account/profile/identity",
            web::post().to(profile::submit_identity),
        )
        .route(
            "/account/profile/contact",
            web::post().to(profile_edit::contact_start),
        )
        .route(
            "/account/profile/contact/confirm",
            web::post().to(profile_edit::contact_confirm),
        )
        .route(
            "/account/profile/contact/remove",
            web::post().to(profile_edit::contact_remove),
        )
        .route(
            "/account/profile/address",
            web::post().to(profile_edit::address_save),
        )
        .route(
            "/account/profile/address/remove",
            web::post().to(profile_edit::address_remove),
        )
        .route("/account/security", web::get().to(account::security_page))
        .route(
            "/account/security/signin",
            web::get().to(account::sign_in_again),
        )
        .route(
            "/account/security/confirm",
            web::post().to(account::confirm),
        )
        .route(
            "/account/security/confirm-key/start",
            web::post().to(account::confirm_key_start),
        )
        .route(
            "/account/security/confirm-key",
            web::post().to(account::confirm_key),
        )
        .route(
            "/account/security/totp",
            web::post().to(account::totp_start),
        )
        .route(
            "/account/security/totp/confirm",
            web::post().to(account::totp_confirm),
        )
        .route(
            "/account/security/recovery",
            web::post().to(account::recovery_codes),
        )
        .route("/account/security/remove", web::post().to(account::remove))
        // The mobile app registers a push device for sign-in codes (docs/design/push.md).
        .route(
            "/account/push-devices",
            web::post().to(account::register_push_device),
        )
        .route(
            "/account/security/webauthn/start",
            web::post().to(account::webauthn_start),
        )
        .route(
            "/account/security/webauthn/finish",
            web::post().to(account::webauthn_finish),
        )
        // The ESIA dialect (`[esia]`; see docs/design/esia.md).
        .route("/aas/oauth2/ac", web::get().to(esia::ac_legacy))
        .route("/aas/oauth2/v2/ac", web::get().to(esia::ac_v2))
        .route("/aas/oauth2/te", web::post().to(esia::te_legacy))
        .route("/aas/oauth2/v3/te", web::post().to(esia::te_v3))
        .route("/idp/ext/Logout", web::get().to(esia::logout))
        .route("/rs/prns/{oid}", web::get().to(esia::prns))
        .route("/rs/prns/{oid}/{coll}", web::get().to(esia::prns))
        .route("/rs/prns/{oid}/{coll}/{id}", web::get().to(esia::prns));
}

/// Serves until stopped.
pub async fn serve(state: AppState, listener: std::net::TcpListener) -> std::io::Result<()> {
    let workers = state.cfg.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    });
    let dev = state.cfg.dev;
    let data = web::Data::new(state);
    HttpServer::new(move || {
        // Runs on each worker's own thread: a worker gets its own connections to the
        // ephemeral store where that helps (see `Ephemeral::for_worker`).
        let data = match data.eph.for_worker() {
            Some(eph) => web::Data::new(AppState {
                eph,
                ..AppState::clone(&data)
            }),
            None => data.clone(),
        };
        App::new()
            .app_data(data)
            .wrap(security_headers(dev))
            .configure(routes)
            .default_service(web::to(meta::not_found))
    })
    .workers(workers)
    .listen(listener)?
    .run()
    .await
}

#[cfg(test)]
mod tests {
    use super::forwarded_client;
    use std::net::IpAddr;

    #[test]
    fn only_trusted_proxies_are_believed() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let lb = [ip("10.0.0.1"), ip("10.0.0.2")];
        let xff = |v: &'static str| std::iter::once(v);
        // A client talking to us directly cannot pick its address.
        assert_eq!(
            forwarded_client(&lb, ip("203.0.113.9"), xff("1.2.3.4")),
            ip("203.0.113.9")
        );
        // Through the balancer: the address it saw, not what the client claimed before it.
        assert_eq!(
            forwarded_client(&lb, ip("10.0.0.1"), xff("1.2.3.4, 198.51.100.7")),
            ip("198.51.100.7")
        );
        // Through two trusted hops.
        assert_eq!(
            forwarded_client(&lb, ip("10.0.0.1"), xff("198.51.100.7, 10.0.0.2")),
            ip("198.51.100.7")
        );
        // Garbage or nothing: the proxy itself.
        assert_eq!(
            forwarded_client(&lb, ip("10.0.0.1"), xff("1.2.3.4, junk")),
            ip("10.0.0.1")
        );
        assert_eq!(
            forwarded_client(&lb, ip("10.0.0.1"), std::iter::empty()),
            ip("10.0.0.1")
        );
    }
}
