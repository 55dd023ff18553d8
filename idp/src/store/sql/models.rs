//! Database rows (`NewX` to insert, `XRow` as read) and their conversions to and from
//! domain types. Lists are JSON arrays in text columns; the profile is a versioned JSON blob.

use chrono::NaiveDateTime;
use diesel::{Insertable, Queryable, Selectable};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::schema::{audit_events, clients, grants, refresh_tokens, sessions, subjects};
use super::{from_db_time, to_db_time};
use crate::audit::AuditEvent;
use crate::domain::{
    Client, ClientAuthMethod, Grant, GrantType, Profile, RefreshToken, SsoSession, Subject,
};
use crate::store::StoreError;
use keys::Vault;

pub(super) fn to_json<T: Serialize + ?Sized>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("cannot serialise: {e}")))
}

fn from_json<T: DeserializeOwned>(s: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// The stored form of [`Profile`], versioned so later layouts (sealed fields) can be told apart.
#[derive(Serialize, Deserialize)]
#[serde(tag = "v")]
enum DbProfile {
    #[serde(rename = "1")]
    V1 { profile: Profile },
}

// ---- clients ----

#[derive(Insertable)]
#[diesel(table_name = clients)]
pub struct NewClient<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub secret_hash: Option<&'a str>,
    pub auth_method: &'static str,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub jwks: Option<String>,
    pub id_token_alg: Option<&'a str>,
    pub created_at: NaiveDateTime,
    pub min_acr: Option<&'a str>,
}

impl<'a> TryFrom<&'a Client> for NewClient<'a> {
    type Error = StoreError;
    fn try_from(c: &'a Client) -> Result<Self, StoreError> {
        let grant_types: Vec<&str> = c.grant_types.iter().map(|g| g.as_str()).collect();
        Ok(NewClient {
            id: &c.id,
            name: &c.name,
            secret_hash: c.secret_hash.as_deref(),
            auth_method: c.auth_method.as_str(),
            redirect_uris: to_json(&c.redirect_uris)?,
            post_logout_redirect_uris: to_json(&c.post_logout_redirect_uris)?,
            grant_types: to_json(&grant_types)?,
            scopes: to_json(&c.scopes)?,
            jwks: c.jwks.as_ref().map(to_json).transpose()?,
            id_token_alg: c.id_token_alg.as_deref(),
            created_at: to_db_time(c.created_at),
            min_acr: c.min_acr.as_deref(),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub name: String,
    pub secret_hash: Option<String>,
    pub auth_method: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub grant_types: String,
    pub scopes: String,
    pub jwks: Option<String>,
    pub id_token_alg: Option<String>,
    pub created_at: NaiveDateTime,
    pub min_acr: Option<String>,
}

impl TryFrom<ClientRow> for Client {
    type Error = StoreError;
    fn try_from(r: ClientRow) -> Result<Self, StoreError> {
        let auth_method = ClientAuthMethod::parse(&r.auth_method).ok_or_else(|| {
            StoreError::Corrupt(format!("client {}: auth method {}", r.id, r.auth_method))
        })?;
        let names: Vec<String> = from_json(&r.grant_types, "client grant_types")?;
        let grant_types = names
            .iter()
            .map(|n| {
                GrantType::parse(n)
                    .ok_or_else(|| StoreError::Corrupt(format!("client {}: grant type {n}", r.id)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Client {
            redirect_uris: from_json(&r.redirect_uris, "client redirect_uris")?,
            post_logout_redirect_uris: from_json(
                &r.post_logout_redirect_uris,
                "client post_logout_redirect_uris",
            )?,
            scopes: from_json(&r.scopes, "client scopes")?,
            jwks: r
                .jwks
                .as_deref()
                .map(|j| from_json(j, "client jwks"))
                .transpose()?,
            id: r.id,
            name: r.name,
            secret_hash: r.secret_hash,
            auth_method,
            grant_types,
            id_token_alg: r.id_token_alg,
            created_at: from_db_time(r.created_at),
            min_acr: r.min_acr,
        })
    }
}

// ---- subjects ----

#[derive(Insertable)]
#[diesel(table_name = subjects)]
pub struct NewSubject<'a> {
    pub id: &'a str,
    pub oid: i64,
    pub login_index: String,
    pub login_sealed: Vec<u8>,
    pub password_hash: &'a str,
    pub profile_sealed: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Blind index of a normalised login.
pub fn login_index(vault: &Vault, login: &str) -> String {
    vault.blind_index(&format!("login:{login}"))
}

fn seal(vault: &Vault, plain: &[u8], aad: &str) -> Result<Vec<u8>, StoreError> {
    vault
        .seal(plain, aad.as_bytes())
        .map_err(|e| StoreError::Sealing(e.to_string()))
}

fn open_text(vault: &Vault, sealed: &[u8], aad: &str) -> Result<String, StoreError> {
    let plain = vault
        .open(sealed, aad.as_bytes())
        .map_err(|e| StoreError::Sealing(format!("{aad}: {e}")))?;
    String::from_utf8(plain.expose().to_vec())
        .map_err(|_| StoreError::Corrupt(format!("{aad}: not UTF-8")))
}

impl<'a> NewSubject<'a> {
    /// The row for `s`, with the oid assigned by the store (the argument's is ignored); the
    /// login and profile sealed, bound to the subject id.
    pub fn new(s: &'a Subject, oid: i64, vault: &Vault) -> Result<Self, StoreError> {
        let profile = to_json(&DbProfile::V1 {
            profile: s.profile.clone(),
        })?;
        Ok(NewSubject {
            id: &s.id,
            oid,
            login_index: login_index(vault, &s.login),
            login_sealed: seal(
                vault,
                s.login.as_bytes(),
                &format!("subjects.login:{}", s.id),
            )?,
            password_hash: &s.password_hash,
            profile_sealed: seal(
                vault,
                profile.as_bytes(),
                &format!("subjects.profile:{}", s.id),
            )?,
            created_at: to_db_time(s.created_at),
            updated_at: to_db_time(s.updated_at),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = subjects)]
pub struct SubjectRow {
    pub id: String,
    pub oid: i64,
    pub login_sealed: Vec<u8>,
    pub password_hash: String,
    pub profile_sealed: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl SubjectRow {
    pub fn open(self, vault: &Vault) -> Result<Subject, StoreError> {
        let login = open_text(
            vault,
            &self.login_sealed,
            &format!("subjects.login:{}", self.id),
        )?;
        let profile = open_text(
            vault,
            &self.profile_sealed,
            &format!("subjects.profile:{}", self.id),
        )?;
        let DbProfile::V1 { profile } = from_json(&profile, "subject profile")?;
        Ok(Subject {
            id: self.id,
            oid: self.oid,
            login,
            password_hash: self.password_hash,
            profile,
            created_at: from_db_time(self.created_at),
            updated_at: from_db_time(self.updated_at),
        })
    }
}

/// The sealed profile column of subject `id` (for stores that update the profile).
pub(crate) fn seal_profile(
    vault: &Vault,
    id: &str,
    profile: &Profile,
) -> Result<Vec<u8>, StoreError> {
    let json = to_json(&DbProfile::V1 {
        profile: profile.clone(),
    })?;
    seal(vault, json.as_bytes(), &format!("subjects.profile:{id}"))
}

// ---- sessions ----

#[derive(Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub sid: &'a str,
    pub subject_id: &'a str,
    pub auth_time: NaiveDateTime,
    pub acr: &'a str,
    pub amr: String,
    pub remember: bool,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
}

impl<'a> TryFrom<&'a SsoSession> for NewSession<'a> {
    type Error = StoreError;
    fn try_from(s: &'a SsoSession) -> Result<Self, StoreError> {
        Ok(NewSession {
            id_hash: &s.id_hash,
            sid: &s.sid,
            subject_id: &s.subject_id,
            auth_time: to_db_time(s.auth_time),
            acr: &s.acr,
            amr: to_json(&s.amr)?,
            remember: s.remember,
            created_at: to_db_time(s.created_at),
            expires_at: to_db_time(s.expires_at),
            ended_at: s.ended_at.map(to_db_time),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id_hash: String,
    pub sid: String,
    pub subject_id: String,
    pub auth_time: NaiveDateTime,
    pub acr: String,
    pub amr: String,
    pub remember: bool,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
}

impl TryFrom<SessionRow> for SsoSession {
    type Error = StoreError;
    fn try_from(r: SessionRow) -> Result<Self, StoreError> {
        Ok(SsoSession {
            amr: from_json(&r.amr, "session amr")?,
            id_hash: r.id_hash,
            sid: r.sid,
            subject_id: r.subject_id,
            auth_time: from_db_time(r.auth_time),
            acr: r.acr,
            remember: r.remember,
            created_at: from_db_time(r.created_at),
            expires_at: from_db_time(r.expires_at),
            ended_at: r.ended_at.map(from_db_time),
        })
    }
}

// ---- grants ----

#[derive(Insertable)]
#[diesel(table_name = grants)]
pub struct NewGrant<'a> {
    pub subject_id: &'a str,
    pub client_id: &'a str,
    pub scopes: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl<'a> TryFrom<&'a Grant> for NewGrant<'a> {
    type Error = StoreError;
    fn try_from(g: &'a Grant) -> Result<Self, StoreError> {
        Ok(NewGrant {
            subject_id: &g.subject_id,
            client_id: &g.client_id,
            scopes: to_json(&g.scopes)?,
            created_at: to_db_time(g.created_at),
            updated_at: to_db_time(g.updated_at),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = grants)]
pub struct GrantRow {
    pub subject_id: String,
    pub client_id: String,
    pub scopes: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl TryFrom<GrantRow> for Grant {
    type Error = StoreError;
    fn try_from(r: GrantRow) -> Result<Self, StoreError> {
        Ok(Grant {
            scopes: from_json(&r.scopes, "grant scopes")?,
            subject_id: r.subject_id,
            client_id: r.client_id,
            created_at: from_db_time(r.created_at),
            updated_at: from_db_time(r.updated_at),
        })
    }
}

// ---- refresh tokens ----

#[derive(Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct NewRefreshToken<'a> {
    pub token_hash: &'a str,
    pub family_id: &'a str,
    pub client_id: &'a str,
    pub subject_id: &'a str,
    pub scopes: String,
    pub sid: Option<&'a str>,
    pub auth_time: NaiveDateTime,
    pub acr: &'a str,
    pub amr: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

impl<'a> TryFrom<&'a RefreshToken> for NewRefreshToken<'a> {
    type Error = StoreError;
    fn try_from(t: &'a RefreshToken) -> Result<Self, StoreError> {
        Ok(NewRefreshToken {
            token_hash: &t.token_hash,
            family_id: &t.family_id,
            client_id: &t.client_id,
            subject_id: &t.subject_id,
            scopes: to_json(&t.scopes)?,
            sid: t.sid.as_deref(),
            auth_time: to_db_time(t.auth_time),
            acr: &t.acr,
            amr: to_json(&t.amr)?,
            created_at: to_db_time(t.created_at),
            expires_at: to_db_time(t.expires_at),
            used_at: t.used_at.map(to_db_time),
            revoked_at: t.revoked_at.map(to_db_time),
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub token_hash: String,
    pub family_id: String,
    pub client_id: String,
    pub subject_id: String,
    pub scopes: String,
    pub sid: Option<String>,
    pub auth_time: NaiveDateTime,
    pub acr: String,
    pub amr: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
}

impl TryFrom<RefreshTokenRow> for RefreshToken {
    type Error = StoreError;
    fn try_from(r: RefreshTokenRow) -> Result<Self, StoreError> {
        Ok(RefreshToken {
            scopes: from_json(&r.scopes, "refresh token scopes")?,
            amr: from_json(&r.amr, "refresh token amr")?,
            token_hash: r.token_hash,
            family_id: r.family_id,
            client_id: r.client_id,
            subject_id: r.subject_id,
            sid: r.sid,
            auth_time: from_db_time(r.auth_time),
            acr: r.acr,
            created_at: from_db_time(r.created_at),
            expires_at: from_db_time(r.expires_at),
            used_at: r.used_at.map(from_db_time),
            revoked_at: r.revoked_at.map(from_db_time),
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
pub struct NewAuditEvent<'a> {
    pub at: NaiveDateTime,
    pub kind: &'a str,
    pub subject_id: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub detail: String,
}

impl<'a> TryFrom<&'a AuditEvent> for NewAuditEvent<'a> {
    type Error = StoreError;
    fn try_from(e: &'a AuditEvent) -> Result<Self, StoreError> {
        Ok(NewAuditEvent {
            at: to_db_time(e.at),
            kind: &e.kind,
            subject_id: e.subject_id.as_deref(),
            client_id: e.client_id.as_deref(),
            ip: e.ip.as_deref(),
            detail: to_json(&e.detail)?,
        })
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_events)]
pub struct AuditEventRow {
    pub id: i64,
    pub at: NaiveDateTime,
    pub kind: String,
    pub subject_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub detail: String,
}

impl TryFrom<AuditEventRow> for AuditEvent {
    type Error = StoreError;
    fn try_from(r: AuditEventRow) -> Result<Self, StoreError> {
        Ok(AuditEvent {
            detail: from_json(&r.detail, "audit detail")?,
            at: from_db_time(r.at),
            kind: r.kind,
            subject_id: r.subject_id,
            client_id: r.client_id,
            ip: r.ip,
        })
    }
}
