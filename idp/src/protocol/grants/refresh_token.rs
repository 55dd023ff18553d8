//! refresh_token grant (RFC 6749 §6) with rotation on every use and family revocation on
//! reuse (RFC 9700 §4.14.2).

use super::{form_value, TokenResponse};
use crate::audit::AuditEvent;
use crate::authn::transaction::AuthContext;
use crate::domain::{Client, GrantType};
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::params::Params;
use crate::protocol::tokens::{self, IdTokenInput};
use crate::state::AppState;
use crate::store::{AuditStore, RefreshTokenStore, Rotation, Successor, SuccessorScopes};

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
    // The refresh may narrow the scopes, never widen them (RFC 6749 §6).
    let narrowed_to = form_value(form, "scope")?.map(crate::protocol::scopes::parse_scope);
    let hash = keys::sha256_b64url(value.as_bytes());
    let now = state.now();
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");

    // One transaction: spend the token (only if it was issued to this client), check that
    // the subject and its consent still exist, store the successor.
    let next_value = keys::random_token(32).map_err(OAuthError::server)?;
    let successor = Successor {
        token_hash: keys::sha256_b64url(next_value.as_bytes()),
        created_at: now,
        expires_at: now + chrono::Duration::seconds(state.cfg.tokens.refresh_token_ttl_secs as i64),
        scopes: match &narrowed_to {
            Some(scopes) => SuccessorScopes::Narrowed(scopes.clone()),
            None => SuccessorScopes::Same,
        },
    };
    let rotation = state
        .store
        .rotate_refresh_queued(hash, client.id.clone(), now, successor)
        .await?;
    let old = match rotation {
        Rotation::Rotated(t) => t,
        Rotation::Invalid => return Err(invalid()),
        Rotation::OtherClient => {
            return Err(invalid().with_detail("refresh token presented by another client"))
        }
        Rotation::Withdrawn => return Err(invalid().with_detail("consent withdrawn")),
        Rotation::Declined => {
            return Err(OAuthError::new(
                ErrorCode::InvalidScope,
                "scope exceeds the original grant",
            ))
        }
        Rotation::AlreadyUsed(t) => {
            let grace = chrono::Duration::seconds(state.cfg.tokens.refresh_reuse_grace_secs as i64);
            let within_grace = t.used_at.is_some_and(|u| now - u <= grace);
            if !within_grace {
                revoke_family_for_reuse(state, &t.family_id, &t.client_id, &t.subject_id).await?;
            }
            return Err(invalid().with_detail("refresh token reused"));
        }
    };
    // The successor carries the narrowed scopes, each of which the store found among the
    // spent token's.
    let scopes = narrowed_to.unwrap_or_else(|| old.scopes.clone());
    let auth = AuthContext {
        subject_id: old.subject_id.clone(),
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
        &old.subject_id,
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
    Ok(TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: ttl,
        scope,
        refresh_token: Some(next_value),
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
