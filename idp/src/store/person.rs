//! The person aggregate: level, status, sealed identifiers, documents, contacts, addresses,
//! organisations and their change history; registry verification requests; the minimum
//! account level a client requires. Implemented over SQL in `sql/person/`.

use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::audit::AuditEvent;
use crate::domain::person::{
    AccountLevel, AccountStatus, Address, Confirmation, Contact, ContactKind, Document, Membership,
    Ogrn, OrgRole, Person, PersonChange, Verification,
};
use crate::domain::{SsoSession, Subject};
use crate::notify::NewMessage;

/// One item of a person's collections, for [`PersonStore::put_item`] / `remove_item`.
#[derive(Debug, Clone, PartialEq)]
pub enum PersonItem {
    Document(Document),
    Contact(Contact),
    Address(Address),
}

impl PersonItem {
    pub fn id(&self) -> &str {
        match self {
            Self::Document(d) => &d.id,
            Self::Contact(c) => &c.id,
            Self::Address(a) => &a.id,
        }
    }
    /// `document`, `contact` or `address` (the history's `collection`).
    pub fn collection(&self) -> &'static str {
        match self {
            Self::Document(_) => "document",
            Self::Contact(_) => "contact",
            Self::Address(_) => "address",
        }
    }
}

/// A change of the profile's sign-in e-mail or mobile phone (the profile page, after a code
/// sent to the new value was entered), applied by [`PersonStore::change_contact`].
#[derive(Debug)]
pub struct ContactChange<'a> {
    pub subject_id: &'a str,
    /// `Email` or `Mobile` (a landline is not a sign-in contact).
    pub kind: ContactKind,
    /// The new value, normalised (`+7...`, lower-case e-mail); `None` removes the contact.
    pub value: Option<&'a str>,
    pub event: &'a AuditEvent,
    /// "Your contact was changed", to the old contact, queued in the same transaction.
    pub notices: &'a [NewMessage],
    pub now: DateTime<Utc>,
}

/// What [`PersonStore::change_contact`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactOutcome {
    /// Saved: profile, login (when the old value was the login), sign-in index, history,
    /// audit event and notices.
    Changed,
    /// The value was already that; nothing written.
    Unchanged,
    /// Another account signs in with this value or has it as a confirmed contact.
    Taken,
    /// Removing it would leave the account without a confirmed phone or e-mail.
    LastContact,
}

/// What a finished registry answer changes, applied by [`PersonStore::finish_verification`]
/// in the transaction that records the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum VerificationEffect {
    /// Matched: SNILS, birthplace and the passport (verified) are recorded and the level is
    /// raised to standard (a confirmed account stays confirmed).
    RaiseToStandard { passport: Document },
    /// Nothing changes on the person (mismatch or failure).
    None,
}

pub trait PersonStore {
    /// The person of a subject with every collection, opened; `None` if the subject does not
    /// exist. A subject nothing was recorded about is a simplified, active person.
    fn find_person(&self, subject_id: &str) -> StoreResult<Option<Person>>;
    /// The person's level and status only, without unsealing anything: documents,
    /// contacts, addresses, organisations and personal numbers stay empty. For decisions
    /// that need no more (the authorization gate, userinfo of profile scopes). `None` for an
    /// unknown subject.
    fn find_person_standing(&self, subject_id: &str) -> StoreResult<Option<Person>>;
    /// The subject with its person's standing ([`find_person_standing`]
    /// (Self::find_person_standing)), in one statement; `None` for an unknown subject.
    fn find_subject_standing(&self, subject_id: &str) -> StoreResult<Option<(Subject, Person)>>;
    /// The subject and person with this ESIA oid.
    fn find_person_by_oid(&self, oid: i64) -> StoreResult<Option<(Subject, Person)>>;
    /// The subject whose SNILS or INN (11 or 12 digits) has this value, by blind index.
    fn find_subject_by_snils_or_inn(&self, digits: &str) -> StoreResult<Option<Subject>>;

    /// Sets the status, with `event`. Blocking also ends every SSO session of the person and
    /// revokes their refresh tokens, in the same transaction. `NotFound` for an unknown
    /// subject; Ok(false) if the status was already that.
    fn set_status(
        &self,
        subject_id: &str,
        status: AccountStatus,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Sets the level (and who confirmed it, for `Confirmed`), with `event` and a history row.
    fn set_level(
        &self,
        subject_id: &str,
        level: AccountLevel,
        confirmation: Option<&Confirmation>,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// Records SNILS and/or INN (digits, already validated), sealed, with blind indexes;
    /// `Conflict` if another person has the same number. A `None` leaves the value as it was.
    fn set_identifiers(
        &self,
        subject_id: &str,
        snils: Option<&str>,
        inn: Option<&str>,
        birth_place: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<()>;

    /// Inserts or replaces (by id) a document, contact or address, with a history row and
    /// `event`, in one transaction.
    fn put_item(&self, subject_id: &str, item: &PersonItem, event: &AuditEvent) -> StoreResult<()>;
    /// Removes an item by id (history keeps it). Ok(false) if there was none.
    fn remove_item(&self, subject_id: &str, item_id: &str, event: &AuditEvent)
        -> StoreResult<bool>;
    /// Every change of the person, oldest first.
    fn person_history(&self, subject_id: &str) -> StoreResult<Vec<PersonChange>>;

    /// Adds the person to an organisation (created on first use by OGRN, with `name`), or
    /// changes the role; returns the organisation's oid.
    fn add_membership(
        &self,
        subject_id: &str,
        ogrn: &Ogrn,
        name: &str,
        role: OrgRole,
        event: &AuditEvent,
    ) -> StoreResult<i64>;
    fn memberships(&self, subject_id: &str) -> StoreResult<Vec<Membership>>;

    /// Stores a new verification request with `event`. `Conflict` if the subject already
    /// has a pending one.
    fn insert_verification(&self, v: &Verification, event: &AuditEvent) -> StoreResult<()>;
    fn find_verification(&self, id: &str) -> StoreResult<Option<Verification>>;
    /// The subject's newest verification request.
    fn latest_verification(&self, subject_id: &str) -> StoreResult<Option<Verification>>;
    /// Pending requests whose `next_attempt_at` has come, oldest first.
    fn due_verifications(&self, now: DateTime<Utc>, limit: i64) -> StoreResult<Vec<Verification>>;
    /// Records progress of a still-pending request (registry reference, attempts, next
    /// attempt, last error). Ok(false) if it is no longer pending (another node finished it).
    fn update_pending_verification(&self, v: &Verification) -> StoreResult<bool>;
    /// Records the final answer `v.state` of a pending request, applies `effect` and writes
    /// `event`, in one transaction. Ok(false) if it was no longer pending.
    fn finish_verification(
        &self,
        v: &Verification,
        effect: &VerificationEffect,
        event: &AuditEvent,
    ) -> StoreResult<bool>;

    /// The minimum account level a client requires, if any.
    fn client_min_level(&self, client_id: &str) -> StoreResult<Option<AccountLevel>>;
    /// Sets (or with `None` clears) the minimum account level of a client.
    fn set_client_min_level(&self, client_id: &str, level: Option<AccountLevel>)
        -> StoreResult<()>;
}

/// Edits of a person by the citizen or an operator beyond the identity check (issue 5):
/// contacts from the profile page, accounts created pending and their activation. Implemented
/// over SQL in `sql/person_edits.rs`.
pub trait PersonEditStore {
    /// Changes the sign-in e-mail or mobile phone of the profile in one transaction: the
    /// profile, the login when the old value was it (removing the login contact moves the
    /// login to the other confirmed contact), the sign-in contact index, a `contact` history
    /// row, `event` and the notices. `NotFound` for an unknown subject.
    fn change_contact(&self, ch: &ContactChange<'_>) -> StoreResult<ContactOutcome>;
    /// Inserts an account created by an operator that waits for the citizen to activate it
    /// (status `pending_confirmation`), with `event`, in one transaction; returns its oid.
    /// `Conflict` if the login is taken.
    fn insert_pending_subject(&self, s: &Subject, event: &AuditEvent) -> StoreResult<i64>;
    /// Activates a pending account: the password the citizen chose, status active, the
    /// contact the code went to marked confirmed, a history row, `event` and the citizen's
    /// first session, in one transaction. Ok(false), with nothing written, if the account is
    /// not pending (any more).
    fn activate_pending(
        &self,
        subject_id: &str,
        password_hash: &str,
        confirmed_contact: &str,
        event: &AuditEvent,
        session: &SsoSession,
    ) -> StoreResult<bool>;
}
