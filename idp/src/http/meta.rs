//! Discovery, JWKS, static assets, health.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use consent_ui::ErrorKind;

use super::error;
use crate::state::AppState;

pub async fn discovery(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/json"))
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(web::Bytes::from_owner(state.discovery.clone()))
}

pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "application/jwk-set+json"))
        .insert_header((header::CACHE_CONTROL, state.jwks_cache_control.clone()))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .body(web::Bytes::from_owner(
            state.keyring.snapshot().jwks_bytes(),
        ))
}

pub async fn static_asset(path: web::Path<String>) -> HttpResponse {
    match consent_ui::static_asset(&path) {
        Some((bytes, ctype)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, ctype))
            .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
            .body(bytes),
        None => HttpResponse::NotFound().finish(),
    }
}

pub async fn health() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

pub async fn not_found(req: HttpRequest) -> HttpResponse {
    error::page(
        actix_web::http::StatusCode::NOT_FOUND,
        error::lang_of(&req, None),
        ErrorKind::NotFound,
        None,
    )
}
