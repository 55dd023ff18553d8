use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Personal data held about a citizen, in OIDC claim names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Profile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub birthdate: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub email_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    pub phone_number_verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

/// A citizen account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    /// OIDC `sub`: a random UUID, stable.
    pub id: String,
    /// ESIA-style numeric object id, stable and never reused.
    pub oid: i64,
    /// Normalised sign-in identifier (lower-cased e-mail or +7 phone).
    pub login: String,
    /// argon2id PHC string.
    pub password_hash: String,
    pub profile: Profile,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Subject {
    /// Where the activation code of a pending account goes (issue 5): the login when it is a
    /// phone or e-mail, else the phone, else the e-mail of the profile. `(value, is_email)`.
    pub fn activation_contact(&self) -> Option<(String, bool)> {
        use super::identifier::Identifier;
        match Identifier::parse(&self.login) {
            Ok(Identifier::Phone(p)) => return Some((p.as_str().to_string(), false)),
            Ok(Identifier::Email(e)) => return Some((e.as_str().to_string(), true)),
            _ => {}
        }
        let p = &self.profile;
        p.phone_number
            .clone()
            .map(|v| (v, false))
            .or_else(|| p.email.clone().map(|v| (v, true)))
    }
}
