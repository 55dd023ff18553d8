//! The only place that imports actix-web: routes, extractors, error mapping.

mod alerts;
mod authorize;
mod cookies;
mod error;
mod login;
mod logout;
mod meta;
mod second_factor;
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
        .route("/consent", web::get().to(login::consent_page))
        .route("/consent", web::post().to(login::consent_submit))
        .route("/token", web::post().to(token::token))
        .route("/userinfo", web::get().to(token::userinfo_get))
        .route("/userinfo", web::post().to(token::userinfo_post))
        .route("/introspect", web::post().to(token::introspect))
        .route("/revoke", web::post().to(token::revoke))
        .route("/logout", web::get().to(logout::get))
        .route("/logout", web::post().to(logout::post))
        .route("/health", web::get().to(meta::health))
        .route("/dev/mailbox", web::get().to(alerts::dev_mailbox));
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
        App::new()
            .app_data(data.clone())
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
