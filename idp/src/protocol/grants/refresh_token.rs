//! refresh_token grant (RFC 6749 §6) with rotation on every use and family revocation on
//! reuse (RFC 9700 §4.14.2).

use super::{form_value, issue_refresh, TokenResponse};
use crate::audit::AuditEvent;
use crate::authn::transaction::AuthContext;
use crate::domain::{Client, GrantType};
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::params::Params;
use crate::protocol::tokens::{self, IdTokenInput};
use crate::state::AppState;
use crate::store::{AuditStore, GrantStore, RefreshTokenStore, RefreshUse, SubjectStore};

pub async fn exchange(
    state: &AppState,
    client: &Client,
    form: &Params,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::RefreshToken) {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client may not use this grant",
        ));
    }
    let value = form_value(form, "refresh_token")?
        .ok_or_else(|| OAuthError::invalid_request("refresh_token is missing"))?;
    let requested_scope = form_value(form, "scope")?.map(str::to_string);
    let hash = keys::sha256_b64url(value.as_bytes());
    let now = state.now();
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");

    // The client binding is checked before the token is spent, so another client cannot burn it.
    let h = hash.clone();
    let found = state
        .store
        .call(move |s| s.find_refresh(&h))
        .await?
        .ok_or_else(invalid)?;
    if found.client_id != client.id {
        return Err(invalid().with_detail("refresh token presented by another client"));
    }
    let h = hash.clone();
    let old = match state.store.call(move |s| s.use_refresh(&h, now)).await? {
        RefreshUse::Rotated(t) => t,
        RefreshUse::Invalid => return Err(invalid()),
        RefreshUse::AlreadyUsed(t) => {
            let grace = chrono::Duration::seconds(state.cfg.tokens.refresh_reuse_grace_secs as i64);
            let within_grace = t.used_at.is_some_and(|u| now - u <= grace);
            if !within_grace {
                revoke_family_for_reuse(state, &t.family_id, &t.client_id, &t.subject_id).await?;
            }
            return Err(invalid().with_detail("refresh token reused"));
        }
    };
    let scopes = match requested_scope {
        None => old.scopes.clone(),
        Some(raw) => {
            let asked = crate::protocol::scopes::parse_scope(&raw);
            if asked.iter().any(|s| !old.scopes.contains(s)) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidScope,
                    "scope exceeds the original grant",
                ));
            }
            asked
        }
    };
    let (sub, cid) = (old.subject_id.clone(), client.id.clone());
    let (subject, grant) = state
        .store
        .call(move |s| Ok((s.find_subject(&sub)?, s.find_grant(&sub, &cid)?)))
        .await?;
    let subject = subject.ok_or_else(invalid)?;
    // Consent withdrawn: the grant is gone, so are its refresh tokens.
    if grant.is_none() {
        return Err(invalid().with_detail("consent withdrawn"));
    }
    let auth = AuthContext {
        subject_id: subject.id.clone(),
        sid: old.sid.clone().unwrap_or_default(),
        auth_time: old.auth_time,
        acr: old.acr.clone(),
        amr: old.amr.clone(),
    };
    let keyset = state.keyring.snapshot();
    let scope = crate::protocol::scopes::join(&scopes);
    let ttl = state.cfg.tokens.access_token_ttl_secs;
    let access = tokens::mint_access(
        &keyset,
        &state.issuer,
        &client.id,
        &subject.id,
        &scope,
        Some(&auth),
        None,
        now,
        ttl,
    )?;
    let id_token = if scopes.iter().any(|s| s == "openid") {
        Some(tokens::mint_id_token(
            &keyset,
            &state.issuer,
            IdTokenInput {
                client_id: &client.id,
                alg: client.id_token_alg.as_deref(),
                auth: &auth,
                nonce: None,
                extra: Default::default(),
            },
            now,
            state.cfg.tokens.id_token_ttl_secs,
        )?)
    } else {
        None
    };
    let refresh = issue_refresh(
        state,
        &client.id,
        &auth,
        &scopes,
        old.family_id.clone(),
        now,
    )
    .await?;
    Ok(TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: ttl,
        scope,
        refresh_token: Some(refresh),
        id_token,
    })
}

async fn revoke_family_for_reuse(
    state: &AppState,
    family: &str,
    client_id: &str,
    subject_id: &str,
) -> Result<(), OAuthError> {
    let now = state.now();
    let family = family.to_string();
    let event = AuditEvent {
        at: now,
        kind: "token.refresh_reuse".into(),
        subject_id: Some(subject_id.to_string()),
        client_id: Some(client_id.to_string()),
        ip: None,
        detail: serde_json::json!({}),
    };
    state
        .store
        .call(move |s| {
            s.revoke_family(&family, now)?;
            s.append_audit(&event)
        })
        .await?;
    Ok(())
}
