//! Contacts (e-mail, phones) and addresses.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    /// ESIA `EML`.
    Email,
    /// ESIA `MBT`.
    Mobile,
    /// ESIA `PHN` (landline).
    Phone,
}

impl ContactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Mobile => "mobile",
            Self::Phone => "phone",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "email" => Self::Email,
            "mobile" => Self::Mobile,
            "phone" => Self::Phone,
            _ => return None,
        })
    }
    pub fn esia_type(self) -> &'static str {
        match self {
            Self::Email => "EML",
            Self::Mobile => "MBT",
            Self::Phone => "PHN",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub kind: ContactKind,
    pub value: String,
    pub verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// Registration address (ESIA `PRG`).
    Registration,
    /// Where the person lives (ESIA `PLV`).
    Living,
}

impl AddressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Living => "living",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "registration" => Self::Registration,
            "living" => Self::Living,
            _ => return None,
        })
    }
    pub fn esia_type(self) -> &'static str {
        match self {
            Self::Registration => "PRG",
            Self::Living => "PLV",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub id: String,
    pub kind: AddressKind,
    /// The whole address as one line (OIDC `address.formatted`).
    pub formatted: String,
    pub zip: Option<String>,
    pub country: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}
