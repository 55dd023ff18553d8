//! The scope catalogue (OIDC Core §5.4 and the ESIA names of `esia-profile.md`), which claims
//! each scope releases, and the decisions by account level: which requested scopes a person
//! of a given level may grant, and which are withheld and why.

use crate::domain::person::AccountLevel;

/// Scopes this provider knows. Unknown scope values in a request are ignored (OIDC Core §3.1.2.1).
pub const KNOWN_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "phone",
    "address",
    "offline_access",
    "fullname",
    "birthdate",
    "gender",
    "birthplace",
    "snils",
    "inn",
    "id_doc",
    "mobile",
    "contacts",
    "addresses",
    "usr_org",
    "medical_doc",
    "drivers_licence_doc",
    "foreign_passport_doc",
    "military_doc",
    "birth_cert_doc",
    // The citizen's mobile app: registering a push device for sign-in codes
    // (`POST /account/push-devices`); approve it only for that app.
    "propusk:push",
    // A bank confirming its customers' accounts (`POST /api/v1/confirmations`); approve it
    // only for banks.
    "propusk:confirm",
];

/// Scopes that release personal numbers or documents: the consent page gives each its own
/// line, marked, and they need the level `[identity] scope_min_level` sets (standard by default).
pub const SENSITIVE_SCOPES: &[&str] = &[
    "snils",
    "inn",
    "id_doc",
    "medical_doc",
    "drivers_licence_doc",
    "foreign_passport_doc",
    "military_doc",
    "birth_cert_doc",
];

/// Claims listed in discovery.
pub const CLAIMS_SUPPORTED: &[&str] = &[
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "azp",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "birthdate",
    "gender",
    "locale",
    "updated_at",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
    "address",
    "birthplace",
    "snils",
    "inn",
    "id_doc",
    "contacts",
    "addresses",
    "usr_org",
    "medical_doc",
    "drivers_licence_doc",
    "foreign_passport_doc",
    "military_doc",
    "birth_cert_doc",
    "account_level",
    "trusted",
];

/// Claims released by a scope (OIDC Core §5.4, plus the ESIA-style names).
pub fn claims_of(scope: &str) -> &'static [&'static str] {
    match scope {
        "profile" => &[
            "name",
            "given_name",
            "family_name",
            "middle_name",
            "birthdate",
            "gender",
            "locale",
            "updated_at",
        ],
        "fullname" => &["name", "given_name", "family_name", "middle_name"],
        "birthdate" => &["birthdate"],
        "gender" => &["gender"],
        "email" => &["email", "email_verified"],
        "phone" | "mobile" => &["phone_number", "phone_number_verified"],
        "address" => &["address"],
        "birthplace" => &["birthplace"],
        "snils" => &["snils"],
        "inn" => &["inn"],
        "id_doc" => &["id_doc"],
        "contacts" => &["contacts"],
        "addresses" => &["addresses"],
        "usr_org" => &["usr_org"],
        "medical_doc" => &["medical_doc"],
        "drivers_licence_doc" => &["drivers_licence_doc"],
        "foreign_passport_doc" => &["foreign_passport_doc"],
        "military_doc" => &["military_doc"],
        "birth_cert_doc" => &["birth_cert_doc"],
        _ => &[],
    }
}

/// The sensitive scope a claim belongs to: such a claim is released only under that scope,
/// never by naming it alone in the `claims` parameter.
pub fn guarding_scope(claim: &str) -> Option<&'static str> {
    SENSITIVE_SCOPES
        .iter()
        .copied()
        .find(|s| claims_of(s).contains(&claim))
}

pub fn is_known(scope: &str) -> bool {
    KNOWN_SCOPES.contains(&scope)
}

pub fn is_sensitive(scope: &str) -> bool {
    SENSITIVE_SCOPES.contains(&scope)
}

/// Splits a scope string, drops unknown values and duplicates, keeps a stable order.
pub fn parse_scope(raw: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in raw.split(' ').filter(|s| !s.is_empty()) {
        if is_known(s) && !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out.sort_by_key(|s| KNOWN_SCOPES.iter().position(|k| k == s));
    out
}

pub fn join(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// A requested scope the person's account level is too low for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withheld {
    pub scope: String,
    /// The level the scope needs.
    pub needs: AccountLevel,
}

/// Requested scopes split by what the person's level allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelDecision {
    /// May be granted (still subject to consent).
    pub allowed: Vec<String>,
    /// Withheld: named on the consent page with the level they need, never granted.
    pub withheld: Vec<Withheld>,
}

/// Splits `requested` by `level`; `min_level` gives each scope's minimum level.
pub fn by_level(
    requested: &[String],
    level: AccountLevel,
    min_level: impl Fn(&str) -> AccountLevel,
) -> LevelDecision {
    let mut allowed = Vec::new();
    let mut withheld = Vec::new();
    for s in requested {
        let needs = min_level(s);
        if level >= needs {
            allowed.push(s.clone());
        } else {
            withheld.push(Withheld {
                scope: s.clone(),
                needs,
            });
        }
    }
    LevelDecision { allowed, withheld }
}

/// Whether a person of `level` may use a client that requires `client_min` (client setting
/// `min_account_level`).
pub fn meets_client_level(client_min: Option<AccountLevel>, level: AccountLevel) -> bool {
    client_min.is_none_or(|m| level >= m)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn default_min(s: &str) -> AccountLevel {
        if is_sensitive(s) {
            AccountLevel::Standard
        } else {
            AccountLevel::Simplified
        }
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn every_esia_scope_is_known_and_releases_claims() {
        for s in KNOWN_SCOPES {
            if !matches!(
                *s,
                "openid" | "offline_access" | "propusk:push" | "propusk:confirm"
            ) {
                assert!(!claims_of(s).is_empty(), "{s} releases nothing");
            }
        }
        for s in SENSITIVE_SCOPES {
            assert!(is_known(s));
            for c in claims_of(s) {
                assert!(CLAIMS_SUPPORTED.contains(c), "{c}");
                assert_eq!(guarding_scope(c), Some(*s));
            }
        }
        assert_eq!(guarding_scope("email"), None);
        assert_eq!(
            parse_scope("snils openid bogus fullname snils"),
            v(&["openid", "fullname", "snils"])
        );
    }

    #[test]
    fn a_simplified_account_has_sensitive_scopes_withheld() {
        let req = v(&["openid", "fullname", "snils", "id_doc", "usr_org"]);
        let d = by_level(&req, AccountLevel::Simplified, default_min);
        assert_eq!(d.allowed, v(&["openid", "fullname", "usr_org"]));
        assert_eq!(
            d.withheld,
            vec![
                Withheld {
                    scope: "snils".into(),
                    needs: AccountLevel::Standard
                },
                Withheld {
                    scope: "id_doc".into(),
                    needs: AccountLevel::Standard
                },
            ]
        );
        for l in [AccountLevel::Standard, AccountLevel::Confirmed] {
            let d = by_level(&req, l, default_min);
            assert_eq!(d.allowed, req);
            assert!(d.withheld.is_empty());
        }
        // A scope configured to need a confirmed account.
        let d = by_level(&v(&["inn"]), AccountLevel::Standard, |_| {
            AccountLevel::Confirmed
        });
        assert_eq!(d.withheld[0].needs, AccountLevel::Confirmed);
    }

    #[test]
    fn client_minimum_level() {
        assert!(meets_client_level(None, AccountLevel::Simplified));
        assert!(!meets_client_level(
            Some(AccountLevel::Standard),
            AccountLevel::Simplified
        ));
        assert!(meets_client_level(
            Some(AccountLevel::Standard),
            AccountLevel::Standard
        ));
        assert!(meets_client_level(
            Some(AccountLevel::Standard),
            AccountLevel::Confirmed
        ));
        assert!(!meets_client_level(
            Some(AccountLevel::Confirmed),
            AccountLevel::Standard
        ));
    }
}
