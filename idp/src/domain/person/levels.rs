//! How well the person is known (level), whether the account may be used (status), and
//! who confirmed the identity.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How well the person is known (requirements: "Account levels and status"). Ordered:
/// `Simplified < Standard < Confirmed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountLevel {
    /// Name + a confirmed phone or e-mail.
    Simplified,
    /// SNILS and passport checked against the state registries.
    Standard,
    /// Identity proven in person, by bank ID or by a qualified certificate.
    Confirmed,
}

impl AccountLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Simplified => "simplified",
            Self::Standard => "standard",
            Self::Confirmed => "confirmed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "simplified" => Self::Simplified,
            "standard" => Self::Standard,
            "confirmed" => Self::Confirmed,
            _ => return None,
        })
    }
    /// ESIA `trusted` / `urn:esia:sbj:is_tru`: true only for a confirmed account.
    pub fn trusted(self) -> bool {
        self == Self::Confirmed
    }
}

/// Whether the account may be used (requirements: active, blocked, pending confirmation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Signs in normally.
    Active,
    /// Refused at sign-in (a readable page + audit); its refresh tokens and access tokens stop
    /// working at the token and userinfo endpoints. Only an operator unblocks.
    Blocked,
    /// Created, but the contact is not confirmed yet: sign-in is refused with a page that
    /// says to finish the registration.
    PendingConfirmation,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Blocked => "blocked",
            Self::PendingConfirmation => "pending_confirmation",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "blocked" => Self::Blocked,
            "pending_confirmation" | "pending" => Self::PendingConfirmation,
            _ => return None,
        })
    }
    /// May sign in and use tokens.
    pub fn may_sign_in(self) -> bool {
        self == Self::Active
    }
}

/// How an operator confirmed an identity (`idp users confirm --method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmMethod {
    InPerson,
    Bank,
    Certificate,
}

impl ConfirmMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InPerson => "in-person",
            Self::Bank => "bank",
            Self::Certificate => "certificate",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "in-person" | "in_person" => Self::InPerson,
            "bank" => Self::Bank,
            "certificate" => Self::Certificate,
            _ => return None,
        })
    }
}

/// Who confirmed the identity, how and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub by: String,
    pub method: ConfirmMethod,
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn levels_are_ordered_and_only_confirmed_is_trusted() {
        assert!(AccountLevel::Simplified < AccountLevel::Standard);
        assert!(AccountLevel::Standard < AccountLevel::Confirmed);
        assert!(AccountLevel::Confirmed.trusted());
        assert!(!AccountLevel::Standard.trusted());
        for l in [
            AccountLevel::Simplified,
            AccountLevel::Standard,
            AccountLevel::Confirmed,
        ] {
            assert_eq!(AccountLevel::parse(l.as_str()), Some(l));
        }
        assert!(AccountStatus::Active.may_sign_in());
        assert!(!AccountStatus::Blocked.may_sign_in());
        assert!(!AccountStatus::PendingConfirmation.may_sign_in());
    }
}
