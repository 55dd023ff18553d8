//! The person behind a subject: account level and status, identity documents, contacts,
//! addresses, organisations, and the registry verification of SNILS + passport. No I/O here;
//! validators take `today` as a parameter (conventions: time is a parameter).
//!
//! Personal numbers (SNILS, INN, document numbers, birthplace, addresses) are sealed by the
//! store; the types here hold them opened and print nothing of them in `Debug`.

mod contacts;
mod documents;
mod error;
mod identity;
mod levels;
mod organisations;
mod verification;

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use contacts::{Address, AddressKind, Contact, ContactKind};
pub use documents::{Document, DocumentKind, VerifiedState};
pub use error::{Field, PersonError};
pub use identity::{
    check_division_code, check_issue_date, check_passport_number, check_passport_series,
    check_person_inn, parse_date, IdentityClaim, IdentityForm,
};
pub use levels::{AccountLevel, AccountStatus, ConfirmMethod, Confirmation};
pub use organisations::{Membership, Ogrn, OrgRole};
pub use verification::{MismatchReason, Verification, VerificationState};

/// Everything held about a person beyond the sign-in profile (`Subject::profile` keeps the
/// name, birth date, gender and the sign-in contacts).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub subject_id: String,
    pub level: AccountLevel,
    pub status: AccountStatus,
    /// 11 digits, checksum valid.
    pub snils: Option<String>,
    /// 12 digits, checksum valid.
    pub inn: Option<String>,
    pub birth_place: Option<String>,
    /// Citizenship, ISO 3166 alpha-3.
    pub citizenship: Option<String>,
    pub confirmation: Option<Confirmation>,
    pub documents: Vec<Document>,
    pub contacts: Vec<Contact>,
    pub addresses: Vec<Address>,
    pub organizations: Vec<Membership>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Person")
            .field("subject_id", &self.subject_id)
            .field("level", &self.level)
            .field("status", &self.status)
            .field("documents", &self.documents)
            .finish_non_exhaustive()
    }
}

impl Person {
    /// A person nothing is known about yet: simplified, active.
    pub fn new(subject_id: &str, now: DateTime<Utc>) -> Person {
        Person {
            subject_id: subject_id.to_string(),
            level: AccountLevel::Simplified,
            status: AccountStatus::Active,
            snils: None,
            inn: None,
            birth_place: None,
            citizenship: None,
            confirmation: None,
            documents: Vec::new(),
            contacts: Vec::new(),
            addresses: Vec::new(),
            organizations: Vec::new(),
            updated_at: now,
        }
    }
    pub fn document(&self, kind: DocumentKind) -> Option<&Document> {
        self.documents.iter().find(|d| d.kind == kind)
    }
    pub fn passport(&self) -> Option<&Document> {
        self.document(DocumentKind::Passport)
    }
}

/// One change of a collection (documents, contacts, addresses, organisations, identifiers),
/// kept with its date. The old and new values are sealed at rest.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonChange {
    pub at: DateTime<Utc>,
    /// `document`, `contact`, `address`, `organization`, `snils`, `inn`, `level`, `status`.
    pub collection: String,
    /// `added`, `changed`, `removed`.
    pub action: String,
    pub item_id: Option<String>,
    /// The item as it was before (JSON), if any.
    pub before: Option<serde_json::Value>,
    /// The item as it is after (JSON), if any.
    pub after: Option<serde_json::Value>,
}

impl fmt::Debug for PersonChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonChange")
            .field("at", &self.at)
            .field("collection", &self.collection)
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}
