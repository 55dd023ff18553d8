//! Everything a request handler needs, built once at start-up.

use std::sync::Arc;

use crate::authn::password::PasswordHasher;
use crate::clock::Clock;
use crate::config::Config;
use crate::ephemeral::Ephemeral;
use crate::keyring::Keyring;
use crate::store::SqlStore;

#[derive(Clone)]
pub struct AppState {
    pub cfg: Arc<Config>,
    /// Issuer URL without a trailing slash.
    pub issuer: Arc<str>,
    pub store: SqlStore,
    pub eph: Arc<dyn Ephemeral>,
    pub keyring: Arc<Keyring>,
    pub clock: Arc<dyn Clock>,
    pub passwords: Arc<PasswordHasher>,
    /// `Cache-Control` of the JWKS document (`keys.jwks_max_age_secs`).
    pub jwks_cache_control: String,
    /// Pre-rendered discovery document.
    pub discovery: Arc<[u8]>,
    /// Messages "sent" to channels without a configured sender; shown at `/dev/mailbox` in
    /// dev mode only.
    pub mailbox: crate::notify::DevMailbox,
    /// Secret for stateless CSRF tokens of forms outside a login transaction.
    pub csrf_secret: Arc<[u8; 32]>,
    /// Client registrations cached for `client_cache_secs`.
    pub clients: Arc<crate::store::ClientCache>,
}

impl AppState {
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }
}
