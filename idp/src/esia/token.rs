//! `/aas/oauth2/te` and `/aas/oauth2/v3/te`: the token endpoint of the ESIA dialect.
//! The client is authenticated by its signed parameters; the code (or refresh token) is the
//! provider's own, and the tokens are ESIA-shaped (see [`super::tokens`]).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::authorize::OFFLINE_SCOPE;
use super::errors::EsiaCode;
use super::signature::{legacy_string, repair_timestamp, v3_te_string};
use super::tokens::{self as shape, EsiaTokenInput};
use super::{check_signature, param, required, Flavor, SignedRequest};
use crate::audit::AuditEvent;
use crate::authn::transaction::AuthContext;
use crate::domain::{Client, ClientAuthMethod, EsiaCertificate, GrantType, Subject};
use crate::protocol::code::{self, CodeData, Taken};
use crate::protocol::params::Params;
use crate::protocol::tokens::AccessStamp;
use crate::protocol::{scopes, OAuthError};
use crate::state::AppState;
use crate::store::{
    AuditStore, ClientStore, EsiaClientStore, PersonStore, RefreshTokenStore, Rotation,
    SubjectStore, Successor, SuccessorScopes,
};

/// The ESIA token response.
#[derive(Debug, Serialize)]
pub struct EsiaTokenResponse {
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    /// The `state` of the token request, echoed.
    pub state: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The grant of an ESIA token request.
enum EsiaGrant<'a> {
    Code {
        code: &'a str,
        redirect_uri: &'a str,
        verifier: Option<&'a str>,
    },
    Refresh {
        token: &'a str,
    },
}

/// A client of the ESIA dialect: registered with a certificate.
pub async fn find_client(
    state: &AppState,
    client_id: &str,
) -> Result<Option<(Client, EsiaCertificate)>, OAuthError> {
    if client_id.is_empty() || client_id.len() > 256 {
        return Ok(None);
    }
    let id = client_id.to_string();
    let found = state
        .store
        .call(move |s| Ok((s.find_client(&id)?, s.find_esia_certificate(&id)?)))
        .await?;
    Ok(match found {
        (Some(c), Some(cert)) if c.auth_method == ClientAuthMethod::EsiaSignature => {
            Some((c, cert))
        }
        _ => None,
    })
}

/// Authenticates the client and exchanges the grant. Returns the client id (once known) with
/// the outcome, for the audit trail.
pub async fn exchange(
    state: &AppState,
    flavor: Flavor,
    form: &Params,
) -> (Option<String>, Result<EsiaTokenResponse, OAuthError>) {
    let client_id = match required(form, "client_id") {
        Ok(c) => c.to_string(),
        Err(e) => return (None, Err(e)),
    };
    let res = exchange_for(state, flavor, form, &client_id).await;
    (Some(client_id), res)
}

async fn exchange_for(
    state: &AppState,
    flavor: Flavor,
    form: &Params,
    client_id: &str,
) -> Result<EsiaTokenResponse, OAuthError> {
    let (client, cert) = find_client(state, client_id).await?.ok_or_else(|| {
        EsiaCode::UnknownClient.error("unknown client_id or no registered certificate")
    })?;
    let grant_type = required(form, "grant_type")?;
    let secret = required(form, "client_secret")?;
    let req_state = required(form, "state")?;
    let scope = required(form, "scope")?;
    let timestamp = repair_timestamp(required(form, "timestamp")?);
    if let Some(t) = param(form, "token_type")? {
        if t != "Bearer" {
            return Err(EsiaCode::BadParameter.error("token_type must be Bearer"));
        }
    }
    if req_state.len() > 512 {
        return Err(EsiaCode::BadParameter.error("state is too long"));
    }
    let grant = match grant_type {
        "authorization_code" => EsiaGrant::Code {
            code: required(form, "code")?,
            redirect_uri: required(form, "redirect_uri")?,
            verifier: param(form, "code_verifier")?,
        },
        "refresh_token" => EsiaGrant::Refresh {
            token: required(form, "refresh_token")?,
        },
        _ => return Err(EsiaCode::BadGrantType.error("unsupported grant_type")),
    };
    let certificate_hash = match flavor {
        Flavor::Legacy => param(form, "client_certificate_hash")?,
        Flavor::Current => Some(required(form, "client_certificate_hash")?),
    };
    let signed = match (flavor, &grant) {
        (Flavor::Legacy, _) => legacy_string(scope, &timestamp, client_id, req_state),
        (
            Flavor::Current,
            EsiaGrant::Code {
                code, redirect_uri, ..
            },
        ) => v3_te_string(client_id, scope, &timestamp, req_state, redirect_uri, code),
        // A refresh on v3: the refresh token takes the place of the code.
        (Flavor::Current, EsiaGrant::Refresh { token }) => {
            let redirect_uri = required(form, "redirect_uri")?;
            v3_te_string(client_id, scope, &timestamp, req_state, redirect_uri, token)
        }
    };
    let now = state.now();
    // Certificate parsing and CMS verification take about a millisecond: off the async
    // workers.
    let (secret, certificate_hash) = (secret.to_string(), certificate_hash.map(str::to_string));
    let skew = state.cfg.esia.timestamp_skew_secs;
    tokio::task::spawn_blocking(move || {
        check_signature(
            &SignedRequest {
                flavor,
                signed,
                secret: &secret,
                certificate_hash: certificate_hash.as_deref(),
                timestamp: &timestamp,
            },
            &cert,
            now,
            skew,
        )
    })
    .await
    .map_err(OAuthError::server)??;
    let asked = scopes::parse_scope(scope);
    match grant {
        EsiaGrant::Code {
            code,
            redirect_uri,
            verifier,
        } => {
            redeem_code(
                state,
                &client,
                code,
                redirect_uri,
                verifier,
                &asked,
                req_state,
                now,
            )
            .await
        }
        EsiaGrant::Refresh { token } => {
            refresh(state, &client, token, &asked, req_state, now).await
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn redeem_code(
    state: &AppState,
    client: &Client,
    code: &str,
    redirect_uri: &str,
    verifier: Option<&str>,
    asked: &[String],
    req_state: &str,
    now: DateTime<Utc>,
) -> Result<EsiaTokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(EsiaCode::BadGrantType.error("the client may not use this grant"));
    }
    let bad_code =
        || EsiaCode::BadGrant.error("the authorization code is invalid, expired or already used");
    let ttl = state.cfg.tokens.access_token_ttl_secs;
    let Some(Taken {
        raw,
        stamp,
        family,
        marker,
    }) = code::take(state.eph.as_ref(), client, code, now, ttl).await?
    else {
        let dialect = serde_json::json!({ "dialect": "esia" });
        code::revoke_after_reuse(state, client, code, now, dialect).await?;
        return Err(bad_code());
    };
    let redeemed = CodeRedemption {
        raw: &raw,
        redirect_uri,
        verifier,
        asked,
        req_state,
        stamp,
        family,
        now,
    };
    let issued = issue(state, client, redeemed).await;
    if issued.is_err() {
        // Nothing reached the client: the marker would describe tokens nobody holds.
        state.eph.delete(&marker).await?;
    }
    issued
}

/// A taken code and the request that presented it.
struct CodeRedemption<'a> {
    raw: &'a [u8],
    redirect_uri: &'a str,
    verifier: Option<&'a str>,
    asked: &'a [String],
    req_state: &'a str,
    /// The access token's id and expiry, recorded with the spent code.
    stamp: AccessStamp,
    /// The refresh token family recorded with the spent code, when the client may refresh.
    family: Option<String>,
    now: DateTime<Utc>,
}

/// Checks the taken code against the request and issues the tokens.
async fn issue(
    state: &AppState,
    client: &Client,
    r: CodeRedemption<'_>,
) -> Result<EsiaTokenResponse, OAuthError> {
    let bad_code =
        || EsiaCode::BadGrant.error("the authorization code is invalid, expired or already used");
    let data: CodeData = serde_json::from_slice(r.raw).map_err(OAuthError::server)?;
    if data.client_id != client.id {
        return Err(bad_code().with_detail("the code was issued to another client"));
    }
    if data.redirect_uri != r.redirect_uri {
        return Err(bad_code().with_detail("redirect_uri does not match the authorization request"));
    }
    // PKCE, when the authorization request had a challenge (RFC 7636 §4.6).
    if !data.code_challenge.is_empty() {
        let v = r
            .verifier
            .ok_or_else(|| EsiaCode::missing("code_verifier"))?;
        let computed = keys::sha256_b64url(v.as_bytes());
        if !keys::constant_time_eq(computed.as_bytes(), data.code_challenge.as_bytes()) {
            return Err(bad_code().with_detail("code_verifier does not match"));
        }
    }
    check_scope(r.asked, &data.scopes)?;
    let offline = data.scopes.iter().any(|s| s == OFFLINE_SCOPE);
    let refresh = match r.family.filter(|_| offline) {
        Some(family) => Some(crate::protocol::grants::new_refresh(
            state,
            &client.id,
            &data.auth,
            &data.scopes,
            family,
            r.now,
        )?),
        None => None,
    };
    let sub = data.auth.subject_id.clone();
    let row = refresh.as_ref().map(|(_, r)| r.clone());
    // The refresh token is stored in the same call that finds the subject.
    // A blocked account gets nothing, and nothing is stored for it.
    let (subject, person) = state
        .store
        .call(move |s| {
            let subject = s.find_subject(&sub)?;
            let person = s.find_person(&sub)?;
            let active = person.as_ref().is_none_or(|p| p.status.may_sign_in());
            if let (Some(_), Some(row), true) = (&subject, &row, active) {
                s.insert_refresh(row)?;
            }
            Ok((subject, person))
        })
        .await?;
    let subject = subject.ok_or_else(|| bad_code().with_detail("the account no longer exists"))?;
    if person.as_ref().is_some_and(|p| !p.status.may_sign_in()) {
        return Err(bad_code().with_detail("the account is not active"));
    }
    let trusted = super::prns::is_trusted(person.as_ref());
    let resp = mint(
        state,
        client,
        &subject,
        &data.scopes,
        &data.auth,
        r.req_state,
        trusted,
        r.stamp,
        r.now,
    )?;
    Ok(EsiaTokenResponse {
        refresh_token: refresh.map(|(v, _)| v),
        ..resp
    })
}

/// The scopes of a token request must be among those authorized (`offline_access` aside).
fn check_scope(asked: &[String], granted: &[String]) -> Result<(), OAuthError> {
    match asked.iter().find(|s| !granted.contains(s)) {
        Some(s) => Err(EsiaCode::BadScope.error(&format!("scope `{s}` was not authorized"))),
        None => Ok(()),
    }
}

async fn refresh(
    state: &AppState,
    client: &Client,
    token: &str,
    asked: &[String],
    req_state: &str,
    now: DateTime<Utc>,
) -> Result<EsiaTokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(EsiaCode::BadGrantType.error("the client may not use this grant"));
    }
    let invalid = || EsiaCode::BadGrant.error("the refresh token is invalid, expired or revoked");
    let hash = keys::sha256_b64url(token.as_bytes());
    let next_value = keys::random_token(32).map_err(OAuthError::server)?;
    // A refresh cannot widen the grant: every scope asked for must be the spent token's.
    let successor = Successor {
        token_hash: keys::sha256_b64url(next_value.as_bytes()),
        created_at: now,
        expires_at: now + chrono::Duration::seconds(state.cfg.tokens.refresh_token_ttl_secs as i64),
        scopes: SuccessorScopes::Within(asked.to_vec()),
    };
    let rotation = state
        .store
        .rotate_refresh_queued(hash, client.id.clone(), now, successor)
        .await?;
    let old = match rotation {
        Rotation::Rotated(t) => t,
        Rotation::Declined => {
            return Err(EsiaCode::BadScope.error("scope exceeds the original grant"))
        }
        Rotation::AlreadyUsed(t) => {
            let grace = chrono::Duration::seconds(state.cfg.tokens.refresh_reuse_grace_secs as i64);
            let within_grace = t.used_at.is_some_and(|u| now - u <= grace);
            if !within_grace {
                let (family, event) = (
                    t.family_id.clone(),
                    audit(now, "token.refresh_reuse", Some(&t.subject_id), &client.id),
                );
                state
                    .store
                    .call(move |s| {
                        s.revoke_family(&family, now)?;
                        s.append_audit(&event)
                    })
                    .await?;
            }
            return Err(invalid().with_detail("refresh token reused"));
        }
        Rotation::OtherClient => return Err(invalid().with_detail("issued to another client")),
        Rotation::Withdrawn => return Err(invalid().with_detail("consent withdrawn")),
        Rotation::Invalid => return Err(invalid()),
    };
    let sub = old.subject_id.clone();
    let (subject, person) = state
        .store
        .call(move |s| Ok((s.find_subject(&sub)?, s.find_person(&sub)?)))
        .await?;
    let subject = subject.ok_or_else(invalid)?;
    if person.as_ref().is_some_and(|p| !p.status.may_sign_in()) {
        return Err(invalid().with_detail("the account is not active"));
    }
    let trusted = super::prns::is_trusted(person.as_ref());
    let auth = AuthContext {
        subject_id: old.subject_id.clone(),
        sid: old.sid.clone().unwrap_or_default(),
        auth_time: old.auth_time,
        acr: old.acr.clone(),
        amr: old.amr.clone(),
    };
    let stamp = AccessStamp::new(now, state.cfg.tokens.access_token_ttl_secs)?;
    let resp = mint(
        state,
        client,
        &subject,
        &old.scopes,
        &auth,
        req_state,
        trusted,
        stamp,
        now,
    )?;
    Ok(EsiaTokenResponse {
        refresh_token: Some(next_value),
        ..resp
    })
}

/// ESIA-shaped access and ID tokens (the ID token only with `openid`).
#[allow(clippy::too_many_arguments)]
fn mint(
    state: &AppState,
    client: &Client,
    subject: &Subject,
    scopes: &[String],
    auth: &AuthContext,
    req_state: &str,
    trusted: bool,
    stamp: AccessStamp,
    now: DateTime<Utc>,
) -> Result<EsiaTokenResponse, OAuthError> {
    let keyset = state.keyring.snapshot();
    let input = EsiaTokenInput {
        esia_issuer: state.cfg.esia.issuer_or(&state.issuer),
        provider_issuer: &state.issuer,
        client_id: &client.id,
        subject,
        scopes,
        auth,
        trusted,
    };
    let ttl = state.cfg.tokens.access_token_ttl_secs;
    let access = shape::mint_access(&keyset, &input, stamp, now)?;
    let id_token = if scopes.iter().any(|s| s == "openid") {
        Some(shape::mint_id_token(
            &keyset,
            &input,
            now,
            state.cfg.tokens.id_token_ttl_secs,
        )?)
    } else {
        None
    };
    Ok(EsiaTokenResponse {
        access_token: access.token,
        id_token,
        state: req_state.to_string(),
        token_type: "Bearer",
        expires_in: ttl,
        refresh_token: None,
    })
}

fn audit(now: DateTime<Utc>, kind: &str, subject: Option<&str>, client_id: &str) -> AuditEvent {
    AuditEvent {
        at: now,
        kind: kind.into(),
        subject_id: subject.map(str::to_string),
        client_id: Some(client_id.to_string()),
        ip: None,
        detail: serde_json::json!({ "dialect": "esia" }),
    }
}
