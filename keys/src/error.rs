//! The error type of this crate.

/// Everything that can go wrong in `keys`.
///
/// The messages are safe to log: they never contain key material, plaintext or token
/// contents. They are not meant to be shown to OAuth clients verbatim; callers map them to
/// their own protocol errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The algorithm is not one of ES256, EdDSA, RS256 (this includes `"none"`).
    #[error("unsupported or disallowed algorithm")]
    UnsupportedAlg,
    /// Private key bytes (PKCS#8) could not be parsed for the requested algorithm.
    #[error("invalid private key for the requested algorithm")]
    InvalidKey,
    /// Key generation failed (RNG or library failure).
    #[error("key generation failed")]
    Generate,
    /// A JWK could not be parsed as a supported public key.
    #[error("invalid JWK: {0}")]
    BadJwk(&'static str),
    /// Signing failed (RNG failure or library error).
    #[error("signing failed")]
    Sign,
    /// The claims could not be serialized to JSON.
    #[error("claims could not be serialized: {0}")]
    Claims(String),
    /// The compact JWS is malformed; the text names the part that is wrong.
    #[error("malformed JWS: {0}")]
    BadJws(&'static str),
    /// No verification key matches the token's `kid` (or, without `kid`, its `alg`).
    #[error("no key matches the token's kid")]
    UnknownKid,
    /// The token's `alg` differs from the algorithm of the key selected by `kid`.
    #[error("token alg does not match the key's alg")]
    AlgMismatch,
    /// The signature does not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Random,
    /// A master key (text form or raw parts) is malformed; the text says how.
    #[error("invalid master key: {0}")]
    BadMasterKey(&'static str),
    /// A certificate could not be made; the text says why.
    #[error("certificate: {0}")]
    Certificate(&'static str),
    /// Sealing failed.
    #[error("sealing failed")]
    Seal,
    /// Sealed data names a master key id that this sealer does not hold.
    #[error("sealed with unknown master key id {0:?}")]
    UnknownMasterKey(String),
    /// Sealed data is malformed, was tampered with, or `aad` does not match.
    #[error("sealed data could not be opened (corrupt, tampered, or wrong context)")]
    Open,
}
