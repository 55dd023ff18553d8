//! Authorization codes: 256-bit random, stored by hash in the ephemeral store, taken once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::authorize::AuthRequest;
use super::error::OAuthError;
use super::tokens::{self, AccessStamp};
use crate::audit::AuditEvent;
use crate::authn::transaction::AuthContext;
use crate::domain::{Client, GrantType};
use crate::ephemeral::Ephemeral;
use crate::state::AppState;
use crate::store::{AuditStore, RefreshTokenStore};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeData {
    pub v: u8,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub auth: AuthContext,
    pub claims: Option<serde_json::Value>,
}

/// What the first redemption of a code issued, kept so a replay can revoke it
/// (RFC 6749 §4.1.2, RFC 9700 §4.14). One is held per sign-in for an hour at least, in
/// Redis or, on the embedded default, in the process, so it is stored as one short line
/// ([`SpentCode::encode`]): 74 bytes for a portal id of 14 characters, where its JSON took
/// 134.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SpentCode {
    pub client_id: String,
    pub access_jti: String,
    pub access_exp: i64,
    pub refresh_family: Option<String>,
}

/// The first field of a stored [`SpentCode`]: its form's version.
const SPENT_V1: &str = "s1";

impl SpentCode {
    /// `s1 <access_exp> <access_jti> <refresh_family or -> <client_id>`. The ids are
    /// base64url (no spaces, never `-` alone); the client id, whatever it holds, comes last.
    pub fn encode(&self) -> Vec<u8> {
        let family = self.refresh_family.as_deref().unwrap_or("-");
        format!(
            "{SPENT_V1} {} {} {family} {}",
            self.access_exp, self.access_jti, self.client_id
        )
        .into_bytes()
    }

    /// Reads [`SpentCode::encode`]'s form, or the JSON that earlier versions stored (a
    /// record outlives a rolling upgrade in Redis). `None` for anything else.
    pub fn decode(raw: &[u8]) -> Option<SpentCode> {
        if raw.first() == Some(&b'{') {
            return serde_json::from_slice(raw).ok();
        }
        let line = std::str::from_utf8(raw).ok()?;
        let mut fields = line.splitn(5, ' ');
        if fields.next()? != SPENT_V1 {
            return None;
        }
        let access_exp = fields.next()?.parse().ok()?;
        let access_jti = fields.next().filter(|j| !j.is_empty())?.to_string();
        let refresh_family = match fields.next()? {
            "" => return None,
            "-" => None,
            f => Some(f.to_string()),
        };
        let client_id = fields.next().filter(|c| !c.is_empty())?.to_string();
        Some(SpentCode {
            client_id,
            access_jti,
            access_exp,
            refresh_family,
        })
    }
}

/// The record of `code`'s first redemption, when `client` redeemed it; `None` when there is
/// none (never redeemed, or kept no longer), it cannot be read, or another client redeemed
/// it (a replay by another client revokes nothing of the first's).
async fn spent_by(
    eph: &dyn Ephemeral,
    client: &Client,
    code: &str,
) -> Result<Option<SpentCode>, OAuthError> {
    let Some(raw) = eph.get(&spent_key(code)).await? else {
        return Ok(None);
    };
    Ok(SpentCode::decode(&raw).filter(|s| s.client_id == client.id))
}

pub fn code_key(code: &str) -> String {
    format!("code:{}", keys::sha256_b64url(code.as_bytes()))
}

pub fn spent_key(code: &str) -> String {
    format!("spent:{}", keys::sha256_b64url(code.as_bytes()))
}

/// A replayed code: revokes what its first use issued (RFC 6749 §4.1.2, RFC 9700 §4.14): the
/// access token until it expires, and the refresh family. Records a `token.code_reuse`
/// event whose detail is `detail` (an object: what the caller's dialect adds) with
/// `refresh_family_revoked`. Nothing when no record of `client`'s first use is held
/// ([`spent_by`]).
pub async fn revoke_after_reuse(
    state: &AppState,
    client: &Client,
    code: &str,
    now: chrono::DateTime<chrono::Utc>,
    mut detail: serde_json::Value,
) -> Result<(), OAuthError> {
    let Some(spent) = spent_by(state.eph.as_ref(), client, code).await? else {
        return Ok(());
    };
    let left = (spent.access_exp - now.timestamp()).max(1) as u64;
    state
        .eph
        .put(
            &tokens::revoked_key(&spent.access_jti),
            b"1",
            Duration::from_secs(left),
        )
        .await?;
    let family = spent.refresh_family;
    if let Some(d) = detail.as_object_mut() {
        d.insert("refresh_family_revoked".into(), family.is_some().into());
    }
    let event = AuditEvent {
        at: now,
        kind: "token.code_reuse".into(),
        subject_id: None,
        client_id: Some(client.id.clone()),
        ip: None,
        detail,
    };
    state
        .store
        .call(move |s| {
            if let Some(f) = &family {
                s.revoke_family(f, now)?;
            }
            s.append_audit(&event)
        })
        .await?;
    Ok(())
}

/// A code taken for an exchange, with what the exchange will issue, chosen before the take
/// and recorded (as a [`SpentCode`]) in the same atomic step that took the code: a replay
/// arriving at any moment after the take finds the record and revokes what this exchange
/// issues.
pub struct Taken {
    /// The code's contents ([`CodeData`] as JSON).
    pub raw: Vec<u8>,
    /// The access token's id and expiry.
    pub stamp: AccessStamp,
    /// The refresh token family, when the client may refresh.
    pub family: Option<String>,
    /// The record's key: an exchange that fails after the take removes it, since nothing
    /// it describes reached the client.
    pub marker: String,
}

/// Takes `code` for `client`'s exchange and records its use; `None` when the code is
/// unknown, expired or already taken (then the caller looks for the record of its first
/// use).
pub async fn take(
    eph: &dyn Ephemeral,
    client: &Client,
    code: &str,
    now: chrono::DateTime<chrono::Utc>,
    access_ttl_secs: u64,
) -> Result<Option<Taken>, OAuthError> {
    let stamp = AccessStamp::new(now, access_ttl_secs)?;
    let family = if client.allows_grant(GrantType::RefreshToken) {
        Some(tokens::new_id()?)
    } else {
        None
    };
    let spent = SpentCode {
        client_id: client.id.clone(),
        access_jti: stamp.jti.clone(),
        access_exp: stamp.exp,
        refresh_family: family.clone(),
    };
    let spent = spent.encode();
    // Kept at least as long as the access token lives, and an hour at least.
    let keep = Duration::from_secs(access_ttl_secs.max(3600));
    let marker = spent_key(code);
    let raw = eph
        .take_and_mark(&code_key(code), &marker, &spent, keep)
        .await?;
    Ok(raw.map(|raw| Taken {
        raw,
        stamp,
        family,
        marker,
    }))
}

/// Issues a code for `req`.
pub async fn issue(
    eph: &dyn Ephemeral,
    req: &AuthRequest,
    auth: &AuthContext,
    ttl_secs: u64,
) -> Result<String, OAuthError> {
    let (code, bytes) = new_code(req, auth)?;
    eph.put(&code_key(&code), &bytes, Duration::from_secs(ttl_secs))
        .await?;
    Ok(code)
}

/// What a code's storing is tied to, checked in the same atomic step
/// ([`issue_tied`]).
pub enum Tie<'a> {
    /// A key that must be live, given a new TTL (a session's idle period:
    /// [`Ephemeral::touch_and_put`]).
    WhileLive(&'a str, Duration),
    /// A key taken (removed) in the same step, which must have been there (a login
    /// transaction's end: [`Ephemeral::take_and_mark`]).
    Taking(&'a str),
}

/// [`issue`] tied to another key; `None`, and no code, when that key was not there.
pub async fn issue_tied(
    eph: &dyn Ephemeral,
    tie: Tie<'_>,
    req: &AuthRequest,
    auth: &AuthContext,
    ttl_secs: u64,
) -> Result<Option<String>, OAuthError> {
    let (code, bytes) = new_code(req, auth)?;
    let (key, ttl) = (code_key(&code), Duration::from_secs(ttl_secs));
    let stored = match tie {
        Tie::WhileLive(live, live_ttl) => {
            eph.touch_and_put(live, live_ttl, &key, &bytes, ttl).await?
        }
        Tie::Taking(ended) => eph.take_and_mark(ended, &key, &bytes, ttl).await?.is_some(),
    };
    Ok(stored.then_some(code))
}

/// A new code and what it stands for, as stored.
fn new_code(req: &AuthRequest, auth: &AuthContext) -> Result<(String, Vec<u8>), OAuthError> {
    let code = keys::random_token(32).map_err(OAuthError::server)?;
    let data = CodeData {
        v: 1,
        client_id: req.client_id.clone(),
        redirect_uri: req.target.redirect_uri.clone(),
        scopes: req.scopes.clone(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        auth: auth.clone(),
        claims: req.claims.clone(),
    };
    let bytes = serde_json::to_vec(&data).map_err(OAuthError::server)?;
    Ok((code, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spent(family: Option<&str>, client: &str) -> SpentCode {
        SpentCode {
            client_id: client.into(),
            access_jti: "Xq3v9-Ab_cdEfGhIjKlMnO".into(),
            access_exp: 1_795_000_000,
            refresh_family: family.map(Into::into),
        }
    }

    #[test]
    fn a_spent_code_reads_back_as_written() {
        for s in [
            spent(Some("p0O-iU_yT4rEwQaS2dFgHj"), "portal-1"),
            spent(None, "portal-1"),
            // Whatever a client id holds comes back, spaces and dashes included.
            spent(Some("f"), "a portal - with spaces"),
            spent(None, "-"),
        ] {
            assert_eq!(SpentCode::decode(&s.encode()), Some(s));
        }
    }

    #[test]
    fn a_spent_code_is_a_short_line() {
        let s = spent(Some("p0O-iU_yT4rEwQaS2dFgHj"), "bench-portal-1");
        let line = s.encode();
        assert_eq!(
            line,
            b"s1 1795000000 Xq3v9-Ab_cdEfGhIjKlMnO p0O-iU_yT4rEwQaS2dFgHj bench-portal-1".to_vec()
        );
        assert_eq!(line.len(), 74);
        let json = serde_json::json!({
            "client_id": s.client_id,
            "access_jti": s.access_jti,
            "access_exp": s.access_exp,
            "refresh_family": s.refresh_family,
        });
        assert_eq!(json.to_string().len(), 134, "as earlier versions stored it");
    }

    #[test]
    fn a_record_stored_as_json_by_an_earlier_version_is_still_read() {
        let json = br#"{"client_id":"portal-1","access_jti":"j1","access_exp":1795000000,"refresh_family":"f1"}"#;
        assert_eq!(
            SpentCode::decode(json),
            Some(SpentCode {
                client_id: "portal-1".into(),
                access_jti: "j1".into(),
                access_exp: 1_795_000_000,
                refresh_family: Some("f1".into()),
            })
        );
        let no_family =
            br#"{"client_id":"portal-1","access_jti":"j1","access_exp":1,"refresh_family":null}"#;
        assert_eq!(
            SpentCode::decode(no_family).map(|s| s.refresh_family),
            Some(None)
        );
    }

    #[test]
    fn anything_else_is_no_record() {
        for junk in [
            &b""[..],
            b"s1",
            b"s1 1795000000 j f",
            b"s1 1795000000 j f ",
            b"s1 soon j f portal",
            b"s1 1795000000  f portal",
            b"s1 1795000000 j  portal",
            b"s2 1795000000 j f portal",
            b"{not json",
            b"\xff\xfe",
        ] {
            assert_eq!(
                SpentCode::decode(junk),
                None,
                "{:?}",
                String::from_utf8_lossy(junk)
            );
        }
    }
}
