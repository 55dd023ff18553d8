//! The only place that imports actix-web: routes, extractors, error mapping.

mod authorize;
mod cookies;
mod error;
mod login;
mod logout;
mod meta;
mod token;

use actix_web::{middleware, web, App, HttpServer};

use crate::state::AppState;

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
        .route("/consent", web::get().to(login::consent_page))
        .route("/consent", web::post().to(login::consent_submit))
        .route("/token", web::post().to(token::token))
        .route("/userinfo", web::get().to(token::userinfo_get))
        .route("/userinfo", web::post().to(token::userinfo_post))
        .route("/introspect", web::post().to(token::introspect))
        .route("/revoke", web::post().to(token::revoke))
        .route("/logout", web::get().to(logout::get))
        .route("/logout", web::post().to(logout::post))
        .route("/health", web::get().to(meta::health));
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
