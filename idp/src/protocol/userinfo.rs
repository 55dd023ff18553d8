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

/// The scopes of an access token that release data of the person with `oid`. An ESIA token
/// binds each personal-data scope to its person (`fullname?oid=1000123`, esia-profile.md
/// "Tokens"): a scope bound to that person counts as the bare name, a scope bound to anyone
/// else (or with an unreadable oid) releases nothing. Unbound scopes count as they are.
pub fn scopes_for(scope: &str, oid: i64) -> Vec<String> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .filter_map(|s| match s.split_once("?oid=") {
            Some((name, bound)) => (bound.parse::<i64>() == Ok(oid)).then(|| name.to_string()),
            None => Some(s.to_string()),
        })
        .collect()
}

/// [`check_bearer`], also accepting the tokens of the ESIA profile when `[esia] issuer`
/// differs from the provider's (they are access tokens of this provider too).
async fn check_bearer_any_profile(
    state: &AppState,
    token: &str,
) -> Result<AccessClaims, OAuthError> {
    let first = check_bearer(state, token).await;
    let esia_issuer = state.cfg.esia.issuer_or(&state.issuer);
    match first {
        Err(e) if state.cfg.esia.enabled && esia_issuer != state.issuer.as_ref() => {
            let keyset = state.keyring.snapshot();
            let claims =
                tokens::check_access(&keyset, esia_issuer, token, state.now()).map_err(|_| e)?;
            if state.eph.get(&revoked_key(&claims.jti)).await?.is_some() {
                return Err(OAuthError::new(
                    ErrorCode::InvalidToken,
                    "the access token was revoked",
                ));
            }
            Ok(claims)
        }
        other => other,
    }
}

pub async fn userinfo(state: &AppState, token: &str) -> Result<Map<String, Value>, OAuthError> {
    let at = check_bearer_any_profile(state, token).await?;
    if !at
        .scope
        .split(' ')
        .any(|s| s == "openid" || s.starts_with("openid?oid="))
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidToken,
            "the access token does not allow userinfo",
        )
        .with_detail("insufficient_scope"));
    }
    let sub = at.sub.clone();
    let individually = at.uic.clone().unwrap_or_default();
    // Scopes bound to another person release nothing, so they need no records either.
    let records = claims::needs_records(
        &at.scope
            .split(' ')
            .map(|s| s.split('?').next().unwrap_or(s).to_string())
            .collect::<Vec<_>>(),
        &individually,
    );
    let (subject, person) = state
        .store
        .call(move |s| {
            use crate::store::PersonStore;
            if !records {
                // The standing alone: one statement with the subject.
                return Ok(s
                    .find_subject_standing(&sub)?
                    .map(|(subject, person)| (subject, Some(person))));
            }
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
    let scopes = scopes_for(&at.scope, subject.oid);
    Ok(claims::release_person(
        &subject,
        person.as_ref(),
        &scopes,
        &individually,
    ))
}

#[cfg(test)]
mod tests {
    use super::scopes_for;

    #[test]
    fn esia_bound_scopes_release_only_for_their_person() {
        let mine = scopes_for("openid fullname?oid=1000123 email?oid=1000123", 1000123);
        assert_eq!(mine, ["openid", "fullname", "email"]);
        // Bound to another person, or to nobody readable: nothing of it is released.
        let other = scopes_for("openid fullname?oid=1000999 snils?oid=x email", 1000123);
        assert_eq!(other, ["openid", "email"]);
        // A plain (standard) scope list is unchanged.
        assert_eq!(scopes_for("openid  profile", 5), ["openid", "profile"]);
    }
}
