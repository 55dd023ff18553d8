//! Signing keys and data sealing for Propusk.
//!
//! * [`SigningKey`] / [`VerifyingKey`]: ES256 (default), EdDSA (Ed25519) and RS256 keys,
//!   compact JWS signing and verification (RFC 7515), JWKs with RFC 7638 thumbprints as `kid`,
//!   and the JWKS document.
//! * [`MasterKey`] / [`Sealer`]: envelope encryption of secrets at rest with AES-256-GCM, with
//!   key rotation (older master keys still open), and keyed blind indexes for lookups.
//! * Small primitives: [`random_token`], [`sha256_b64url`], [`constant_time_eq`],
//!   [`token_hash`].
//!
//! Cryptography is `ring`; the `rsa` crate is used only to *generate* RSA keys (ring cannot),
//! never to sign or decrypt. This crate knows nothing of OAuth storage or HTTP, and does not
//! read the clock: JWT time claims (`exp`, `iat`, `nbf`) and `aud` are the caller's to check.

mod alg;
mod envelope;
mod error;
mod jwk;
mod jws;
mod lifecycle;
mod pem;
mod seal;
mod secret;
mod signing;
mod util;

pub use alg::Alg;
pub use envelope::{
    new_data_key, rewrap, unwrap as unwrap_data_key, wrap as wrap_data_key, DataKey, Vault,
};
pub use error::KeyError;
pub use jwk::{jwk_thumbprint, jwks_document, jwks_document_public, parse_jwks, VerifyingKey};
pub use jws::{decode_header, verify_jws, verify_jws_with_header, JwsHeader};
pub use lifecycle::{
    apply as apply_steps, plan as plan_rotation, KeyMeta, KeyState, RotationPolicy, Step,
};
pub use seal::{MasterKey, Sealer};
pub use secret::SecretBytes;
pub use signing::SigningKey;
pub use util::{constant_time_eq, random_token, sha256_b64url, token_hash};
