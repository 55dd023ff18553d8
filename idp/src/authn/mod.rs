//! The login engine: transactions, methods, policy.

pub mod login;
pub mod otp;
pub mod password;
pub mod password_policy;
pub mod recovery;
pub mod throttle;
pub mod totp;
pub mod transaction;
pub mod webauthn;

/// acr for a sign-in with one factor.
pub const ACR_ONE_FACTOR: &str = "urn:propusk:acr:1";
/// acr for a sign-in with two factors.
pub const ACR_TWO_FACTORS: &str = "urn:propusk:acr:2";
/// acr for a phishing-resistant sign-in (passkey or certificate).
pub const ACR_PHISHING_RESISTANT: &str = "urn:propusk:acr:3";
pub const ACR_VALUES: [&str; 3] = [ACR_ONE_FACTOR, ACR_TWO_FACTORS, ACR_PHISHING_RESISTANT];
