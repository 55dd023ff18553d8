//! Propusk identity provider: an OpenID Connect provider for citizens and relying portals.

pub mod audit;
pub mod authn;
pub mod clock;
pub mod config;
pub mod domain;
pub mod ephemeral;
pub mod esia;
pub mod http;
pub mod keyring;
pub mod notify;
pub mod protocol;
pub mod registry;
pub mod startup;
pub mod state;
pub mod store;
mod sync;
pub mod vault;

/// Logs to stderr; `IDP_LOG` (e.g. `info`, `idp=debug`) sets the filter.
pub fn telemetry_init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("IDP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
