//! authorization_code grant (RFC 6749 §4.1.3) with PKCE (RFC 7636 §4.6).

use super::{form_value, new_refresh, TokenResponse};
use crate::domain::{Client, GrantType};
use crate::protocol::claims;
use crate::protocol::code::{self, CodeData, Taken};
use crate::protocol::error::OAuthError;
use crate::protocol::params::Params;
use crate::protocol::tokens::{self, IdTokenInput};
use crate::state::AppState;
use crate::store::{RefreshTokenStore, SubjectStore};

pub async fn exchange(
    state: &AppState,
    client: &Client,
    form: &Params,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(OAuthError::new(
            crate::protocol::error::ErrorCode::UnauthorizedClient,
            "the client may not use this grant",
        ));
    }
    let code =
        form_value(form, "code")?.ok_or_else(|| OAuthError::invalid_request("code is missing"))?;
    let verifier = form_value(form, "code_verifier")?
        .ok_or_else(|| OAuthError::invalid_request("code_verifier is missing (PKCE)"))?;
    let redirect_uri = form_value(form, "redirect_uri")?;
    let now = state.now();

    let ttl = state.cfg.tokens.access_token_ttl_secs;
    let Some(Taken {
        raw,
        stamp,
        family,
        marker,
    }) = code::take(state.eph.as_ref(), client, code, now, ttl).await?
    else {
        code::revoke_after_reuse(state, client, code, now, serde_json::json!({})).await?;
        return Err(OAuthError::invalid_grant(
            "the code is invalid, expired or already used",
        ));
    };
    let issued = issue(
        state,
        client,
        &raw,
        verifier,
        redirect_uri,
        stamp,
        family,
        now,
    )
    .await;
    if issued.is_err() {
        // Nothing reached the client: the marker would describe tokens nobody holds.
        state.eph.delete(&marker).await?;
    }
    issued
}

/// Checks the taken code against the request and issues the tokens: the access token
/// under `stamp`, a refresh token of the new `family` when the client may refresh.
#[allow(clippy::too_many_arguments)]
async fn issue(
    state: &AppState,
    client: &Client,
    raw: &[u8],
    verifier: &str,
    redirect_uri: Option<&str>,
    stamp: tokens::AccessStamp,
    family: Option<String>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<TokenResponse, OAuthError> {
    let data: CodeData = serde_json::from_slice(raw).map_err(OAuthError::server)?;
    if data.client_id != client.id {
        return Err(OAuthError::invalid_grant(
            "the code was issued to another client",
        ));
    }
    if redirect_uri.is_some_and(|r| r != data.redirect_uri) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    check_verifier(verifier, &data.code_challenge)?;

    // The refresh token is stored in the same store call that reads the subject.
    let refresh = match family {
        Some(family) => Some(new_refresh(
            state,
            &client.id,
            &data.auth,
            &data.scopes,
            family,
            now,
        )?),
        None => None,
    };
    let sub = data.auth.subject_id.clone();
    let row = refresh.as_ref().map(|(_, r)| r.clone());
    let openid = data.scopes.iter().any(|s| s == "openid");
    let extra = claims::requested(data.claims.as_ref(), "id_token");
    // Only claims asked for by name reach the ID token (besides `sub`); the subject's data
    // and the person's records (documents, level; issue 5) are read only for them.
    let needs_claims = openid && !extra.is_empty();
    // One store call, one statement on the usual path: the refresh token's foreign keys
    // check that the account is still there, and the token is written with the refresh
    // tokens that arrive meanwhile (the task waits without holding a thread).
    let holder = match row {
        Some(row) if !needs_claims => state.store.issue_refresh_queued(row).await?.then_some(None),
        row => {
            state
                .store
                .call(move |s| {
                    let Some(subject) = s.find_subject(&sub)? else {
                        return Ok(None);
                    };
                    if !needs_claims {
                        return Ok(Some(None));
                    }
                    let person = crate::store::PersonStore::find_person(s, &sub)?;
                    if let Some(row) = &row {
                        s.insert_refresh(row)?;
                    }
                    Ok(Some(Some((subject, person))))
                })
                .await?
        }
    }
    .ok_or_else(|| OAuthError::invalid_grant("the account no longer exists"))?;
    let keyset = state.keyring.snapshot();
    let scope = crate::protocol::scopes::join(&data.scopes);
    let userinfo_claims = claims::requested(data.claims.as_ref(), "userinfo");
    let access = tokens::mint_access_stamped(
        stamp,
        &keyset,
        &state.issuer,
        &client.id,
        &data.auth.subject_id,
        &scope,
        Some(&data.auth),
        (!userinfo_claims.is_empty()).then_some(userinfo_claims),
        now,
    )?;
    let id_token = if openid {
        let mut released = match &holder {
            Some((subject, person)) => {
                claims::release_requested(subject, person.as_ref(), &data.scopes, &extra)
            }
            None => Default::default(),
        };
        released.remove("sub");
        Some(tokens::mint_id_token(
            &keyset,
            &state.issuer,
            IdTokenInput {
                client_id: &client.id,
                alg: client.id_token_alg.as_deref(),
                auth: &data.auth,
                nonce: data.nonce.as_deref(),
                extra: released,
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
        expires_in: state.cfg.tokens.access_token_ttl_secs,
        scope,
        refresh_token: refresh.map(|(value, _)| value),
        id_token,
    })
}

/// RFC 7636 §4.6: BASE64URL(SHA256(code_verifier)) == code_challenge.
fn check_verifier(verifier: &str, challenge: &str) -> Result<(), OAuthError> {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !well_formed {
        return Err(OAuthError::invalid_grant("code_verifier is malformed"));
    }
    let computed = keys::sha256_b64url(verifier.as_bytes());
    if !keys::constant_time_eq(computed.as_bytes(), challenge.as_bytes()) {
        return Err(OAuthError::invalid_grant(
            "code_verifier does not match the code_challenge",
        ));
    }
    Ok(())
}
