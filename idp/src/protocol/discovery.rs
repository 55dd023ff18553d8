//! The discovery document (OIDC Discovery §3, RFC 8414), rendered once at start-up.

use serde_json::json;

use super::scopes::{CLAIMS_SUPPORTED, KNOWN_SCOPES};
use crate::authn::ACR_VALUES;

/// `signing_algs`: the configured signing algorithms, default first.
pub fn document(issuer: &str, signing_algs: &[&str]) -> Vec<u8> {
    let e = |p: &str| format!("{issuer}{p}");
    let doc = json!({
        "issuer": issuer,
        "authorization_endpoint": e("/authorize"),
        "token_endpoint": e("/token"),
        "userinfo_endpoint": e("/userinfo"),
        "jwks_uri": e("/jwks"),
        "introspection_endpoint": e("/introspect"),
        "revocation_endpoint": e("/revoke"),
        "end_session_endpoint": e("/logout"),
        "scopes_supported": KNOWN_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": signing_algs,
        "userinfo_signing_alg_values_supported": ["none"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256", "EdDSA"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": CLAIMS_SUPPORTED,
        "claims_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_request_uri_registration": false,
        "authorization_response_iss_parameter_supported": true,
        "acr_values_supported": ACR_VALUES,
        "ui_locales_supported": ["ru", "en"],
        "claims_locales_supported": ["ru", "en"],
        "display_values_supported": ["page", "popup", "touch"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": false,
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}
