//! The scope catalogue and which claims each scope releases.

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
        "phone" => &["phone_number", "phone_number_verified"],
        "address" => &["address"],
        _ => &[],
    }
}

pub fn is_known(scope: &str) -> bool {
    KNOWN_SCOPES.contains(&scope)
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
