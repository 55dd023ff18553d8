//! Durable state: traits by aggregate, implemented once over diesel for Postgres and SQLite
//! (`sql` module). Methods are synchronous; async callers go through [`SqlStore::call`].

use chrono::{DateTime, Utc};

use crate::audit::AuditEvent;
use crate::domain::person::{AccountLevel, Person};
use crate::domain::{Client, Credential, Grant, RefreshToken, SsoSession, Subject};

pub mod client_cache;
pub mod person;
pub mod push;
pub mod sql;
pub use client_cache::ClientCache;
pub use person::{
    ContactChange, ContactOutcome, PersonEditStore, PersonItem, PersonStore, VerificationEffect,
};
pub use push::{PushDevice, PushDeviceStore, PushPlatform, PushToken};
pub use sql::SqlStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint was violated (duplicate id, login, ...).
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Db(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Sealed data could not be sealed or opened (wrong master key, corrupt ciphertext).
    #[error("sealed data: {0}")]
    Sealing(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

pub trait ClientStore {
    fn insert_client(&self, c: &Client) -> StoreResult<()>;
    fn find_client(&self, id: &str) -> StoreResult<Option<Client>>;
    fn list_clients(&self) -> StoreResult<Vec<Client>>;
    /// Removes the client and everything issued to it (grants, refresh tokens). Ok(false) if absent.
    fn remove_client(&self, id: &str) -> StoreResult<bool>;
    /// Sets (or with `None` clears) the weakest sign-in the client accepts. Ok(false) if absent.
    fn set_client_min_acr(&self, id: &str, acr: Option<&str>) -> StoreResult<bool>;
}

pub trait SubjectStore {
    /// Inserts a subject; `oid` of the argument is ignored and a fresh one is assigned and returned.
    fn insert_subject(&self, s: &Subject) -> StoreResult<i64>;
    fn find_subject(&self, id: &str) -> StoreResult<Option<Subject>>;
    fn find_subject_by_login(&self, login: &str) -> StoreResult<Option<Subject>>;
    fn list_subjects(&self) -> StoreResult<Vec<Subject>>;
}

/// A live session as the authorization endpoint sees it for one client: everything an
/// SSO sign-in needs from the database before its code is issued.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionAtClient {
    pub session: SsoSession,
    /// The session person's grant to the client.
    pub grant: Option<Grant>,
    /// The session person's level and status, as [`PersonStore::find_person_standing`]
    /// gives them (`None`: the subject is gone).
    pub standing: Option<Person>,
    /// The client's minimum account level, as [`PersonStore::client_min_level`] gives it.
    pub client_min_level: Option<AccountLevel>,
}

/// What the authorization endpoint decides on for a subject who has just signed in at a
/// client: [`SessionAtClient`] without the session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubjectAtClient {
    /// The subject's grant to the client.
    pub grant: Option<Grant>,
    /// The subject's person's level and status, as [`PersonStore::find_person_standing`]
    /// gives them (`None`: the subject is gone).
    pub standing: Option<Person>,
    /// The client's minimum account level, as [`PersonStore::client_min_level`] gives it.
    pub client_min_level: Option<AccountLevel>,
}

/// What a sign-in decides on once it knows who is signing in, read in one query by
/// [`SessionStore::find_signin_at`]: the subject at the client, the factors they have set
/// up, and whether their password must be changed first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SigninAtClient {
    pub at: SubjectAtClient,
    /// What [`SigninState::password_must_change`] says.
    pub password_must_change: bool,
    /// A confirmed authenticator app (TOTP).
    pub totp: bool,
    /// A security key (a WebAuthn second factor).
    pub security_key: bool,
    /// A passkey.
    pub passkey: bool,
}

pub trait SessionStore {
    fn insert_session(&self, s: &SsoSession) -> StoreResult<()>;
    /// A sign-in, in one transaction: ends the session `replaces` (the browser's previous
    /// one, if live) at `s.created_at`, stores `s` and appends `event`. Nothing is written
    /// if any of it fails.
    fn open_session(
        &self,
        s: &SsoSession,
        replaces: Option<&str>,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// A session by cookie hash, only while not ended and not expired at `now`.
    fn find_live_session(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<SsoSession>>;
    /// The live session of [`find_live_session`](Self::find_live_session) with what the
    /// authorization endpoint decides on for `client_id`, read in one query.
    fn find_live_session_at(
        &self,
        id_hash: &str,
        now: DateTime<Utc>,
        client_id: &str,
    ) -> StoreResult<Option<SessionAtClient>>;
    /// [`find_live_session_at`](Self::find_live_session_at) for a subject who is signing
    /// in: its grant to `client_id`, its standing and the client's minimum level, with its
    /// factors and sign-in state, in one query (all defaults when the subject is gone).
    fn find_signin_at(&self, subject_id: &str, client_id: &str) -> StoreResult<SigninAtClient>;
    fn find_session_by_sid(&self, sid: &str) -> StoreResult<Option<SsoSession>>;
    /// Marks the session ended. Ok(false) if it was already ended or absent.
    fn end_session(&self, sid: &str, now: DateTime<Utc>) -> StoreResult<bool>;
}

pub trait CredentialStore {
    /// Stores a credential (the TOTP secret sealed, a recovery code as given: its hash),
    /// with `event` in the same transaction.
    fn insert_credential(&self, c: &Credential, event: &AuditEvent) -> StoreResult<()>;
    /// A subject's credentials, oldest first, secrets opened.
    fn list_credentials(&self, subject_id: &str) -> StoreResult<Vec<Credential>>;
    /// Marks an unconfirmed TOTP credential confirmed at `step` and removes the subject's
    /// other TOTP credentials (one app at a time), with `event`. False if it was not pending.
    fn confirm_totp(&self, id: &str, step: i64, event: &AuditEvent) -> StoreResult<bool>;
    /// Records that a TOTP code of time `step` was accepted: true only if `step` is later
    /// than any accepted before (a conditional UPDATE, so a replay loses even when racing).
    fn use_totp_step(&self, id: &str, step: i64) -> StoreResult<bool>;
    /// Spends the subject's unused recovery code with this hash; false if there is none.
    fn use_recovery_code(
        &self,
        subject_id: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Replaces the subject's recovery codes (spent or not) with new ones, with `event`, in
    /// one transaction.
    fn replace_recovery_codes(
        &self,
        subject_id: &str,
        codes: &[Credential],
        event: &AuditEvent,
    ) -> StoreResult<()>;
}

pub trait GrantStore {
    fn find_grant(&self, subject_id: &str, client_id: &str) -> StoreResult<Option<Grant>>;
    /// Inserts or replaces the grant of (subject, client).
    fn upsert_grant(&self, g: &Grant) -> StoreResult<()>;
}

/// Result of [`RefreshTokenStore::rotate_refresh`]. Only `Rotated` changed anything.
#[derive(Debug, Clone, PartialEq)]
pub enum Rotation {
    /// The token was spent and its successor stored, in one transaction. Carries the spent token.
    Rotated(RefreshToken),
    /// The token had already been exchanged (at its `used_at`): a possible replay.
    AlreadyUsed(RefreshToken),
    /// The token was issued to another client; it is left as it was.
    OtherClient,
    /// The subject or its grant to the client is gone (consent withdrawn).
    Withdrawn,
    /// The successor asked for a scope beyond the spent token's ([`Successor::of`]).
    Declined,
    /// Unknown, expired or revoked.
    Invalid,
}

/// What a rotation stores in place of the token it spends: a copy of it (family, client,
/// subject, authentication) with a new hash and lifetime, carrying the scopes `scopes` says.
/// It is data rather than a callback so that Postgres can build the successor in the same
/// statement that spends the old token (`store/sql/rotation.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Successor {
    /// SHA-256 (base64url) of the new token's value.
    pub token_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub scopes: SuccessorScopes,
}

/// The scopes of a successor.
#[derive(Debug, Clone, PartialEq)]
pub enum SuccessorScopes {
    /// The spent token's.
    Same,
    /// These, each of which must be among the spent token's (the refresh grant may narrow,
    /// never widen: RFC 6749 §6).
    Narrowed(Vec<String>),
    /// The spent token's, provided each of these is among them (an ESIA refresh names the
    /// scopes it wants; the grant keeps its own).
    Within(Vec<String>),
}

impl Successor {
    /// The successor of `spent`, or `None` when a scope asked for is not among the spent
    /// token's (the rotation is then `Declined`).
    pub fn of(&self, spent: &RefreshToken) -> Option<RefreshToken> {
        if !self.asked().iter().all(|s| spent.scopes.contains(s)) {
            return None;
        }
        Some(RefreshToken {
            token_hash: self.token_hash.clone(),
            scopes: match &self.scopes {
                SuccessorScopes::Narrowed(scopes) => scopes.clone(),
                SuccessorScopes::Same | SuccessorScopes::Within(_) => spent.scopes.clone(),
            },
            created_at: self.created_at,
            expires_at: self.expires_at,
            used_at: None,
            revoked_at: None,
            ..spent.clone()
        })
    }

    /// The scopes the spent token must hold for the rotation to go ahead.
    pub fn asked(&self) -> &[String] {
        match &self.scopes {
            SuccessorScopes::Same => &[],
            SuccessorScopes::Narrowed(scopes) | SuccessorScopes::Within(scopes) => scopes,
        }
    }
}

pub trait RefreshTokenStore {
    fn insert_refresh(&self, t: &RefreshToken) -> StoreResult<()>;
    /// Stores a new refresh token unless its subject or client no longer exists, which is
    /// Ok(false) and stores nothing. The foreign keys are the check, so the code exchange
    /// needs no read before it.
    fn issue_refresh(&self, t: RefreshToken) -> StoreResult<bool>;
    /// The refresh grant in one transaction: spends the live token `token_hash` of
    /// `client_id` (a conditional UPDATE, so two concurrent callers cannot both rotate),
    /// checks that its subject and grant still exist, and stores `successor.of(spent)`.
    /// Anything but `Rotated` leaves the database as it was.
    fn rotate_refresh(
        &self,
        token_hash: &str,
        client_id: &str,
        now: DateTime<Utc>,
        successor: Successor,
    ) -> StoreResult<Rotation>;
    fn find_refresh(&self, token_hash: &str) -> StoreResult<Option<RefreshToken>>;
    /// Revokes every token of the family. Returns how many were revoked.
    fn revoke_family(&self, family_id: &str, now: DateTime<Utc>) -> StoreResult<usize>;
    /// Revokes all refresh tokens of (subject, client).
    fn revoke_for_client(
        &self,
        subject_id: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<usize>;
}

/// A signing key as persisted: the private part sealed under the master key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    /// next | current | retired | removed (`keys::KeyState`)
    pub state: String,
    /// Empty once the key is removed.
    pub private_sealed: Vec<u8>,
    pub public_jwk: String,
    pub created_at: DateTime<Utc>,
    pub activated_at: Option<DateTime<Utc>>,
    pub retired_at: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
}

/// One change of the signing-key set; see [`KeyStore::change_keys`].
#[derive(Debug, Clone, PartialEq)]
pub enum KeyChange {
    Insert(StoredKey),
    /// The key becomes `current`.
    Activate {
        kid: String,
    },
    /// The key becomes `retired`.
    Retire {
        kid: String,
    },
    /// The key becomes `removed` and its private part is deleted.
    Remove {
        kid: String,
    },
    /// The private part, sealed again (under another master key).
    Reseal {
        kid: String,
        private_sealed: Vec<u8>,
    },
}

/// A data key of the envelope encryption, wrapped under the master key.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredDataKey {
    pub id: String,
    /// `data` (seals personal data) or `index` (keys blind indexes).
    pub purpose: String,
    pub wrapped: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// One change of the data keys; see [`KeyStore::change_data_keys`].
#[derive(Debug, Clone, PartialEq)]
pub enum DataKeyChange {
    Insert(StoredDataKey),
    /// The same key, wrapped under another master key.
    Rewrap {
        id: String,
        wrapped: Vec<u8>,
    },
}

/// Decides changes from the rows read under the lock.
pub type Decide<'a, Row, Change> = &'a mut dyn FnMut(&[Row]) -> StoreResult<Vec<Change>>;

pub trait KeyStore {
    /// Every signing key, oldest first.
    fn list_keys(&self) -> StoreResult<Vec<StoredKey>>;
    /// Serialised across nodes by a lock row: reads the keys, asks `decide` for changes and
    /// applies them, each with a `key.*` audit event naming `reason`, in one transaction
    /// (nothing is half-applied). Returns the changes applied.
    fn change_keys(
        &self,
        now: DateTime<Utc>,
        reason: &str,
        decide: Decide<'_, StoredKey, KeyChange>,
    ) -> StoreResult<Vec<KeyChange>>;
    /// Every data key, oldest first.
    fn list_data_keys(&self) -> StoreResult<Vec<StoredDataKey>>;
    /// Like [`KeyStore::change_keys`], for data keys (`data_key.*` audit events).
    fn change_data_keys(
        &self,
        now: DateTime<Utc>,
        reason: &str,
        decide: Decide<'_, StoredDataKey, DataKeyChange>,
    ) -> StoreResult<Vec<DataKeyChange>>;
}

pub trait AuditStore {
    fn append_audit(&self, e: &AuditEvent) -> StoreResult<()>;
    fn list_audit(&self, limit: i64) -> StoreResult<Vec<AuditEvent>>;
}

/// Sign-in state of a person (issue 4): a temporary password, the last second factor used.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SigninState {
    /// The password was set by an operator: it must be changed before anything else.
    pub password_must_change: bool,
    /// The second factor used last (`totp`, `sms`, `voice`, `email`, ...), offered first.
    pub last_factor: Option<String>,
}

/// A new password and what comes with it, written in one transaction by
/// [`SigninStore::set_password`].
#[derive(Debug)]
pub struct PasswordChange<'a> {
    pub subject_id: &'a str,
    /// argon2id PHC string of the new password.
    pub password_hash: &'a str,
    /// Whether the new password is temporary (must be changed at the next sign-in).
    pub must_change: bool,
    /// The session to keep (the one that changed the password); every other live SSO
    /// session of the person ends, and the refresh tokens not issued in the kept session are
    /// revoked. `None`: all of them.
    pub keep_sid: Option<&'a str>,
    pub event: &'a AuditEvent,
    /// "Your password was changed", queued in the same transaction.
    pub alert: Option<&'a crate::notify::NewMessage>,
    pub now: DateTime<Utc>,
}

/// What a password change ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PasswordChanged {
    pub sessions_ended: usize,
    pub refresh_tokens_revoked: usize,
}

pub trait SigninStore {
    /// The person's sign-in state (defaults when nothing was recorded).
    fn signin_state(&self, subject_id: &str) -> StoreResult<SigninState>;
    /// Records the second factor used last.
    fn set_last_factor(
        &self,
        subject_id: &str,
        factor: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Replaces the password, sets or clears "must change", ends sessions, revokes refresh
    /// tokens, appends the audit event and queues the alert, in one transaction.
    /// `NotFound` if the subject does not exist.
    fn set_password(&self, change: &PasswordChange<'_>) -> StoreResult<PasswordChanged>;
    /// Replaces the indexed confirmed contacts (phone, e-mail; normalised) of a person.
    fn index_contacts(&self, subject_id: &str, contacts: &[String]) -> StoreResult<()>;
    /// The people with this confirmed contact (normalised), the one whose login it is first.
    fn find_subjects_by_contact(&self, contact: &str) -> StoreResult<Vec<Subject>>;
}

/// Which factor [`WebauthnStore::remove_factor`] removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactorRef {
    /// A TOTP credential (authenticator app) by id.
    Totp(String),
    /// All recovery codes of the subject.
    RecoveryCodes,
    /// A passkey or security key by id.
    Webauthn(String),
}

/// Passkeys and security keys (WebAuthn), and removal of any factor from the security page.
pub trait WebauthnStore {
    /// The subject's WebAuthn user handle; `fresh` is stored and returned if it has none yet.
    fn webauthn_handle(&self, subject_id: &str, fresh: &str) -> StoreResult<String>;
    /// The subject of a user handle.
    fn subject_of_handle(&self, handle: &str) -> StoreResult<Option<String>>;
    /// Stores a new credential with `event` in the same transaction (`Conflict` if the
    /// authenticator's credential id is already registered).
    fn insert_webauthn(
        &self,
        c: &crate::domain::credential::WebauthnCredential,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    /// A subject's passkeys and security keys, oldest first.
    fn list_webauthn(
        &self,
        subject_id: &str,
    ) -> StoreResult<Vec<crate::domain::credential::WebauthnCredential>>;
    /// A credential by the authenticator's credential id (base64url).
    fn find_webauthn(
        &self,
        cred_id: &str,
    ) -> StoreResult<Option<crate::domain::credential::WebauthnCredential>>;
    /// Records a successful use: the counter moves from `seen` to `counter` and `data` is
    /// replaced, only if the stored counter is still `seen` (a conditional UPDATE, so of two
    /// uses racing with one counter only one wins). False if it lost.
    fn use_webauthn(
        &self,
        id: &str,
        seen: i64,
        counter: i64,
        data: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<bool>;
    /// Removes a factor of `subject_id` with `event` in the same transaction; false if there
    /// was nothing to remove.
    fn remove_factor(
        &self,
        subject_id: &str,
        factor: &FactorRef,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
}

/// ESIA dialect: the certificates clients sign their request parameters with.
pub trait EsiaClientStore {
    /// Registers (or replaces) the client's certificate, with `event`, in one transaction.
    fn put_esia_certificate(
        &self,
        c: &crate::domain::EsiaCertificate,
        event: &AuditEvent,
    ) -> StoreResult<()>;
    fn find_esia_certificate(
        &self,
        client_id: &str,
    ) -> StoreResult<Option<crate::domain::EsiaCertificate>>;
}
