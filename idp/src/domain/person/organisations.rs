//! Organisations a person belongs to: role, OGRN, membership.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::PersonError;

/// The role of a person in an organisation (requirements: "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// Acts for the organisation by a power of attorney.
    Representative,
    /// Head of the organisation (may act for it without a power of attorney).
    Chief,
    Employee,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Representative => "representative",
            Self::Chief => "chief",
            Self::Employee => "employee",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "representative" => Self::Representative,
            "chief" => Self::Chief,
            "employee" => Self::Employee,
            _ => return None,
        })
    }
}

/// OGRN (13 digits, legal entity) or OGRNIP (15 digits, sole proprietor) with its check digit:
/// the number of the first 12 (14) digits mod 11 (mod 13), then mod 10, is the last digit.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ogrn(String);

impl Ogrn {
    pub fn parse(raw: &str) -> Result<Self, PersonError> {
        let digits: String = raw.trim().chars().filter(|c| *c != ' ').collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PersonError::OgrnMalformed);
        }
        let modulus: u64 = match digits.len() {
            13 => 11,
            15 => 13,
            _ => return Err(PersonError::OgrnMalformed),
        };
        let (body, check) = digits.split_at(digits.len() - 1);
        let n: u64 = body.parse().map_err(|_| PersonError::OgrnMalformed)?;
        let want = (n % modulus) % 10;
        if check.parse::<u64>().ok() != Some(want) {
            return Err(PersonError::OgrnChecksum);
        }
        Ok(Ogrn(digits))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Ogrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ogrn({})", self.0)
    }
}

impl TryFrom<String> for Ogrn {
    type Error = PersonError;
    fn try_from(s: String) -> Result<Self, PersonError> {
        Ogrn::parse(&s)
    }
}

impl From<Ogrn> for String {
    fn from(o: Ogrn) -> String {
        o.0
    }
}

/// Membership of a person in an organisation (`usr_org`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Stable id of the organisation (ESIA `oid` of the organisation).
    pub org_oid: i64,
    pub ogrn: Ogrn,
    pub name: String,
    pub role: OrgRole,
    pub since: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ogrn_check_digit() {
        // Sberbank 1027700132195, a valid OGRNIP 304500116000157.
        assert!(Ogrn::parse("1027700132195").is_ok());
        assert!(Ogrn::parse("304500116000157").is_ok());
        assert_eq!(Ogrn::parse("1027700132194"), Err(PersonError::OgrnChecksum));
        assert_eq!(Ogrn::parse("10277001321"), Err(PersonError::OgrnMalformed));
        assert_eq!(
            Ogrn::parse("10277001321x5"),
            Err(PersonError::OgrnMalformed)
        );
    }
}
