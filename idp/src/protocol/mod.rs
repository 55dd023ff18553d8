//! OAuth 2.0 / OpenID Connect rules. No actix, no diesel here.

pub mod authorize;
pub mod claims;
pub mod client_auth;
pub mod code;
pub mod discovery;
pub mod error;
pub mod grants;
pub mod introspect;
pub mod params;
pub mod scopes;
pub mod tokens;
pub mod userinfo;

pub use error::{ErrorCode, OAuthError};
