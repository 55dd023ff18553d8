//! The UserInfo endpoint (OIDC Core §5.3): claims by the token's scopes.

use serde_json::{Map, Value};

use super::claims;
use super::error::{ErrorCode, OAuthError};
use super::tokens::{self, revoked_key, AccessClaims};
use crate::state::AppState;
use crate::store::SubjectStore;

/// Checks a bearer access token: signature, expiry, and that it was not revoked.
pub async fn check_bearer(state: &AppState, token: &str) -> Result<AccessClaims, OAuthError> {
    let keyset = state.keyring.snapshot();
    let claims = tokens::check_access(&keyset, &state.issuer, token, state.now())?;
    if state.eph.get(&revoked_key(&claims.jti)).await?.is_some() {
        return Err(OAuthError::new(
            ErrorCode::InvalidToken,
            "the access token was revoked",
        ));
    }
    Ok(claims)
}

pub async fn userinfo(state: &AppState, token: &str) -> Result<Map<String, Value>, OAuthError> {
    let at = check_bearer(state, token).await?;
    let scopes: Vec<String> = at
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if !scopes.iter().any(|s| s == "openid") {
        return Err(OAuthError::new(
            ErrorCode::InvalidToken,
            "the access token does not allow userinfo",
        )
        .with_detail("insufficient_scope"));
    }
    let sub = at.sub.clone();
    let (subject, person) = state
        .store
        .call(move |s| {
            use crate::store::PersonStore;
            Ok(match s.find_subject(&sub)? {
                Some(subject) => {
                    let person = s.find_person(&subject.id)?;
                    Some((subject, person))
                }
                None => None,
            })
        })
        .await?
        .ok_or_else(|| OAuthError::new(ErrorCode::InvalidToken, "the account no longer exists"))?;
    // A blocked account's tokens stop working at once (issue 5).
    if person.as_ref().is_some_and(|p| !p.status.may_sign_in()) {
        return Err(
            OAuthError::new(ErrorCode::InvalidToken, "the account is blocked")
                .with_detail("account_blocked"),
        );
    }
    Ok(claims::release_person(
        &subject,
        person.as_ref(),
        &scopes,
        &at.uic.unwrap_or_default(),
    ))
}
