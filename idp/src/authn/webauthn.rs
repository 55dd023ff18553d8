//! WebAuthn (webauthn-rs): passkeys as a first factor, security keys as a second factor.
//!
//! The library's `start_*` / `finish_*` pairs are kept; the ceremony state between them lives
//! in the ephemeral store under `wa:<random id>`, bound to a login transaction (sign-in) or an
//! SSO session (enrolment), and is taken atomically on finish: a replayed finish finds
//! nothing. The relying party is derived from the issuer URL. No actix here.

use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration, SecurityKey,
    SecurityKeyAuthentication, SecurityKeyRegistration, Url, Webauthn, WebauthnBuilder,
    WebauthnError,
};

use super::ACR_PHISHING_RESISTANT;
use crate::domain::credential::{WebauthnCredential, WebauthnKind};
use crate::ephemeral::{EphResult, Ephemeral};

/// How long a started ceremony can be finished (the browser's own timeout is 5 minutes).
pub const CEREMONY_TTL_SECS: u64 = 300;

/// Why WebAuthn is not available with this issuer.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("the issuer is not a URL with a host name")]
    NoHost,
    #[error("an IP address cannot be a WebAuthn relying party id (use a host name)")]
    IpAddress,
    #[error("webauthn: {0}")]
    Library(String),
}

/// The relying party id and origin for `issuer`: its host name and origin. WebAuthn does not
/// accept IP addresses as relying party ids, so in dev mode a loopback-IP issuer
/// (`http://127.0.0.1:PORT`) gets `localhost` and `http://localhost:PORT`: a browser must
/// then open the pages at `localhost`.
pub fn relying_party(issuer: &str, dev: bool) -> Result<(String, Url), SetupError> {
    let url = Url::parse(issuer).map_err(|_| SetupError::NoHost)?;
    let mut origin = url.clone();
    origin.set_path("");
    origin.set_query(None);
    origin.set_fragment(None);
    match url.host() {
        Some(url::Host::Domain(d)) => Ok((d.to_string(), origin)),
        Some(url::Host::Ipv4(ip)) if dev && ip.is_loopback() => {
            origin
                .set_host(Some("localhost"))
                .map_err(|_| SetupError::NoHost)?;
            Ok(("localhost".into(), origin))
        }
        Some(url::Host::Ipv6(ip)) if dev && ip.is_loopback() => {
            origin
                .set_host(Some("localhost"))
                .map_err(|_| SetupError::NoHost)?;
            Ok(("localhost".into(), origin))
        }
        Some(_) => Err(SetupError::IpAddress),
        None => Err(SetupError::NoHost),
    }
}

/// The webauthn-rs relying party for `issuer` (cheap to build: no keys, no I/O).
pub fn build(issuer: &str, dev: bool) -> Result<Webauthn, SetupError> {
    let (rp_id, origin) = relying_party(issuer, dev)?;
    WebauthnBuilder::new(&rp_id, &origin)
        .map_err(|e| SetupError::Library(e.to_string()))?
        .rp_name("Propusk")
        .build()
        .map_err(|e| SetupError::Library(e.to_string()))
}

/// What a ceremony is for, with the library state to finish it.
#[derive(Serialize, Deserialize)]
pub enum CeremonyState {
    /// Passkey sign-in (discoverable credential, conditional UI or the button).
    SignIn(DiscoverableAuthentication),
    /// Security key after the password.
    SecondFactor(SecurityKeyAuthentication),
    /// Confirming a change on the security page with an enrolled passkey.
    ConfirmPasskey(PasskeyAuthentication),
    /// Enrolment of a passkey from the security page.
    RegisterPasskey(PasskeyRegistration),
    /// Enrolment of a security key from the security page.
    RegisterSecurityKey(SecurityKeyRegistration),
}

/// A started ceremony, kept server-side until its finish takes it.
#[derive(Serialize, Deserialize)]
pub struct Ceremony {
    /// Serialisation version of this record.
    pub v: u8,
    /// What it is bound to: `tx:<login transaction id>` or `sid:<SSO session id>`. A finish
    /// from another transaction or session is refused.
    pub binding: String,
    /// The subject, when known at the start (second factor, enrolment).
    pub subject_id: Option<String>,
    /// Enrolment: the label the person gave.
    #[serde(default)]
    pub name: Option<String>,
    pub state: CeremonyState,
}

fn key(id: &str) -> String {
    format!("wa:{id}")
}

impl Ceremony {
    pub async fn save(&self, eph: &dyn Ephemeral, id: &str) -> EphResult<()> {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        eph.put(
            &key(id),
            &bytes,
            std::time::Duration::from_secs(CEREMONY_TTL_SECS),
        )
        .await
    }

    /// Takes the ceremony (at most one caller gets it); unknown, expired or unreadable is `None`.
    pub async fn take(eph: &dyn Ephemeral, id: &str) -> EphResult<Option<Ceremony>> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        Ok(eph
            .take(&key(id))
            .await?
            .and_then(|b| serde_json::from_slice::<Ceremony>(&b).ok())
            .filter(|c| c.v == 1))
    }
}

/// The library credential as stored (`WebauthnCredential::data`), versioned.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StoredKey {
    PasskeyV1 { key: Passkey },
    SecurityKeyV1 { key: SecurityKey },
}

impl StoredKey {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
    pub fn parse(data: &str) -> Option<StoredKey> {
        serde_json::from_str(data).ok()
    }
}

/// Credential id bytes as stored (base64url, no padding).
pub fn cred_id_b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Why a WebAuthn response was refused: a precise reason for the audit trail and the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// Not a WebAuthn response at all (bad JSON, missing fields, bad encodings).
    Malformed,
    /// No such ceremony: expired, already finished (a replay), or never started.
    NoCeremony,
    /// The ceremony belongs to another sign-in or session.
    OtherBrowser,
    /// Signed over another challenge.
    WrongChallenge,
    /// Made for another site (origin or relying party id).
    WrongOrigin,
    /// The credential is not registered, or belongs to someone else.
    UnknownCredential,
    /// The signature counter went backwards or stood still: the key may have been cloned.
    CounterRegression,
    /// The authenticator did not verify the user (PIN / biometrics) where it is required.
    NotVerified,
    /// Already registered to this or another account.
    AlreadyRegistered,
    /// Signature or anything else that does not verify.
    Invalid,
    /// The browser reported that the person cancelled or the ceremony failed there.
    Cancelled,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::NoCeremony => "no_ceremony",
            Refusal::OtherBrowser => "other_browser",
            Refusal::WrongChallenge => "wrong_challenge",
            Refusal::WrongOrigin => "wrong_origin",
            Refusal::UnknownCredential => "unknown_credential",
            Refusal::CounterRegression => "counter_regression",
            Refusal::NotVerified => "not_verified",
            Refusal::AlreadyRegistered => "already_registered",
            Refusal::Invalid => "invalid",
            Refusal::Cancelled => "cancelled",
        }
    }
}

impl From<&WebauthnError> for Refusal {
    fn from(e: &WebauthnError) -> Self {
        use WebauthnError as E;
        match e {
            E::MismatchedChallenge | E::ChallengeNotFound => Refusal::WrongChallenge,
            E::InvalidRPOrigin | E::InvalidRPIDHash | E::CredentialCrossOrigin => {
                Refusal::WrongOrigin
            }
            E::CredentialPossibleCompromise => Refusal::CounterRegression,
            E::UserNotVerified | E::UserNotPresent => Refusal::NotVerified,
            E::CredentialNotFound | E::InvalidUserUniqueId => Refusal::UnknownCredential,
            E::CredentialExcludedFromRequest | E::CredentialAlreadyExists => {
                Refusal::AlreadyRegistered
            }
            E::ParseCBORFailure(_)
            | E::ParseJSONFailure(_)
            | E::ParseNOMFailure
            | E::ParseInsufficientBytesAvailable
            | E::InvalidClientDataType => Refusal::Malformed,
            _ => Refusal::Invalid,
        }
    }
}

/// Parses a browser's JSON response into a library type; anything else is `Malformed`.
pub fn parse_response<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, Refusal> {
    if json.is_empty() || json.len() > 16 * 1024 {
        return Err(Refusal::Malformed);
    }
    serde_json::from_str(json).map_err(|_| Refusal::Malformed)
}

/// The counter check the store enforces: a signature counter that is not above the one seen
/// (when either is non-zero) means the key may have been cloned (WebAuthn §7.2 step 21).
pub fn counter_ok(seen: i64, counter: u32) -> bool {
    (seen == 0 && counter == 0) || i64::from(counter) > seen
}

/// acr and amr of a passkey sign-in (RFC 8176): the key is phishing-resistant (`acr:3`); the
/// authenticator verified the user (PIN or biometrics, which it does not tell us: `user`)
/// and the key is something held, so the sign-in is multi-factor (`mfa`). A device-bound key
/// is `hwk`; one that can be synced between devices (backup eligible) is `swk`.
pub fn passkey_acr_amr(backup_eligible: bool) -> (&'static str, Vec<String>) {
    let key = if backup_eligible { "swk" } else { "hwk" };
    (
        ACR_PHISHING_RESISTANT,
        vec![key.into(), "user".into(), "mfa".into()],
    )
}

/// amr of a security key used as the second factor (with `pwd` and `mfa` added by
/// [`super::login::after_second_factor`]).
pub const SECURITY_KEY_AMR: &str = "hwk";

/// A default label for a new key: "Passkey 23.11.2026" / "Ключ доступа 23.11.2026".
pub fn default_name(kind: WebauthnKind, now: chrono::DateTime<chrono::Utc>) -> String {
    let what = match kind {
        WebauthnKind::Passkey => "Ключ доступа",
        WebauthnKind::SecurityKey => "Аппаратный ключ",
    };
    format!("{what} {}", now.format("%d.%m.%Y"))
}

/// A label as typed: trimmed, control characters removed, at most 64 characters.
pub fn clean_name(raw: &str) -> Option<String> {
    let s: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    (!s.is_empty()).then_some(s)
}

/// The passkeys of a list, opened; unreadable rows are skipped.
pub fn passkeys(creds: &[WebauthnCredential]) -> Vec<(&WebauthnCredential, Passkey)> {
    creds
        .iter()
        .filter(|c| c.kind == WebauthnKind::Passkey)
        .filter_map(|c| match StoredKey::parse(&c.data) {
            Some(StoredKey::PasskeyV1 { key }) => Some((c, key)),
            _ => None,
        })
        .collect()
}

/// The security keys of a list, opened; unreadable rows are skipped.
pub fn security_keys(creds: &[WebauthnCredential]) -> Vec<(&WebauthnCredential, SecurityKey)> {
    creds
        .iter()
        .filter(|c| c.kind == WebauthnKind::SecurityKey)
        .filter_map(|c| match StoredKey::parse(&c.data) {
            Some(StoredKey::SecurityKeyV1 { key }) => Some((c, key)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relying_party_comes_from_the_issuer() {
        let (id, origin) = relying_party("https://id.example.ru/base", false).unwrap();
        assert_eq!(id, "id.example.ru");
        assert_eq!(origin.as_str(), "https://id.example.ru/");
        let (id, origin) = relying_party("http://127.0.0.1:8080", true).unwrap();
        assert_eq!(id, "localhost");
        assert_eq!(origin.as_str(), "http://localhost:8080/");
        assert!(matches!(
            relying_party("http://127.0.0.1:8080", false),
            Err(SetupError::IpAddress)
        ));
        assert!(matches!(
            relying_party("https://10.0.0.1", true),
            Err(SetupError::IpAddress)
        ));
        assert!(build("http://localhost:9", true).is_ok());
    }

    #[test]
    fn counters_only_move_forward() {
        assert!(counter_ok(0, 0), "an authenticator without a counter");
        assert!(counter_ok(0, 1));
        assert!(counter_ok(5, 6));
        assert!(!counter_ok(5, 5), "stood still");
        assert!(!counter_ok(5, 4), "went backwards");
        assert!(!counter_ok(5, 0), "reset");
    }

    #[test]
    fn passkey_amr_tells_device_bound_from_synced() {
        let (acr, amr) = passkey_acr_amr(false);
        assert_eq!(acr, ACR_PHISHING_RESISTANT);
        assert_eq!(amr, ["hwk", "user", "mfa"]);
        assert_eq!(passkey_acr_amr(true).1, ["swk", "user", "mfa"]);
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  Ноутбук\u{7}  ").as_deref(), Some("Ноутбук"));
        assert_eq!(clean_name("   "), None);
        assert_eq!(clean_name(&"x".repeat(100)).unwrap().len(), 64);
    }

    #[test]
    fn malformed_responses_are_refused() {
        type R = webauthn_rs::prelude::PublicKeyCredential;
        assert_eq!(parse_response::<R>("").err(), Some(Refusal::Malformed));
        assert_eq!(parse_response::<R>("{").err(), Some(Refusal::Malformed));
        assert_eq!(
            parse_response::<R>("{\"id\":1}").err(),
            Some(Refusal::Malformed)
        );
    }
}
