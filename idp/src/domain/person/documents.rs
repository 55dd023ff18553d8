//! Identity and other documents with their ESIA type codes.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// Kinds of identity and other documents, with the ESIA type codes (`/rs/prns/{oid}/docs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// Passport of a citizen of the Russian Federation (`RF_PASSPORT`).
    Passport,
    /// Foreign travel passport (`FID_DOC` / `foreign_passport_doc`).
    ForeignPassport,
    /// Driver's licence (`RF_DRIVING_LICENSE` / `drivers_licence_doc`).
    DriversLicence,
    /// Compulsory medical insurance policy (`MDCL_PLCY` / `medical_doc`).
    Medical,
    /// Military ID (`MLTR_ID` / `military_doc`).
    Military,
    /// Birth certificate (`RF_BRTH_CERT` / `birth_cert_doc`).
    BirthCertificate,
}

impl DocumentKind {
    pub const ALL: [DocumentKind; 6] = [
        Self::Passport,
        Self::ForeignPassport,
        Self::DriversLicence,
        Self::Medical,
        Self::Military,
        Self::BirthCertificate,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passport => "passport",
            Self::ForeignPassport => "foreign_passport",
            Self::DriversLicence => "drivers_licence",
            Self::Medical => "medical",
            Self::Military => "military",
            Self::BirthCertificate => "birth_certificate",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// The ESIA document type code.
    pub fn esia_type(self) -> &'static str {
        match self {
            Self::Passport => "RF_PASSPORT",
            Self::ForeignPassport => "FID_DOC",
            Self::DriversLicence => "RF_DRIVING_LICENSE",
            Self::Medical => "MDCL_PLCY",
            Self::Military => "MLTR_ID",
            Self::BirthCertificate => "RF_BRTH_CERT",
        }
    }
    /// The scope that releases documents of this kind (`id_doc` for the passport).
    pub fn scope(self) -> &'static str {
        match self {
            Self::Passport => "id_doc",
            Self::ForeignPassport => "foreign_passport_doc",
            Self::DriversLicence => "drivers_licence_doc",
            Self::Medical => "medical_doc",
            Self::Military => "military_doc",
            Self::BirthCertificate => "birth_cert_doc",
        }
    }
}

/// Whether a document was checked against a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifiedState {
    NotVerified,
    Pending,
    Verified,
}

/// A document. Numbers are sealed at rest; `Debug` masks them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub kind: DocumentKind,
    pub series: Option<String>,
    pub number: String,
    pub issue_date: Option<NaiveDate>,
    pub issued_by: Option<String>,
    /// Passport division code `NNN-NNN`.
    pub division_code: Option<String>,
    pub expiry_date: Option<NaiveDate>,
    /// ISO 3166 alpha-3 (`RUS` for the national passport).
    pub citizenship: Option<String>,
    pub verified: VerifiedState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}
