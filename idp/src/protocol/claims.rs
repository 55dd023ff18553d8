//! Personal data released as claims: by scope, plus claims requested individually with the
//! `claims` parameter (OIDC Core §5.5). Nothing outside those is released.

use serde_json::{json, Map, Value};

use super::scopes;
use crate::domain::Subject;

/// All claims we can state about a subject, by claim name.
fn claim_value(s: &Subject, name: &str) -> Option<Value> {
    let p = &s.profile;
    let v = match name {
        "name" => {
            let parts: Vec<&str> = [&p.family_name, &p.given_name, &p.middle_name]
                .into_iter()
                .filter_map(|x| x.as_deref())
                .collect();
            if parts.is_empty() {
                return None;
            }
            json!(parts.join(" "))
        }
        "given_name" => json!(p.given_name.as_ref()?),
        "family_name" => json!(p.family_name.as_ref()?),
        "middle_name" => json!(p.middle_name.as_ref()?),
        "birthdate" => json!(p.birthdate.as_ref()?),
        "gender" => json!(p.gender.as_ref()?),
        "locale" => json!(p.locale.as_ref()?),
        "updated_at" => json!(s.updated_at.timestamp()),
        "email" => json!(p.email.as_ref()?),
        "email_verified" => {
            p.email.as_ref()?;
            json!(p.email_verified)
        }
        "phone_number" => json!(p.phone_number.as_ref()?),
        "phone_number_verified" => {
            p.phone_number.as_ref()?;
            json!(p.phone_number_verified)
        }
        "address" => json!({ "formatted": p.address.as_ref()? }),
        _ => return None,
    };
    Some(v)
}

/// Names requested in `claims.<member>` of the claims parameter.
pub fn requested(claims: Option<&Value>, member: &str) -> Vec<String> {
    claims
        .and_then(|c| c.get(member))
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Claims for the userinfo response or the ID token.
pub fn release(s: &Subject, scopes: &[String], individually: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("sub".into(), json!(s.id));
    let by_scope = scopes
        .iter()
        .flat_map(|sc| scopes::claims_of(sc).iter().map(|c| c.to_string()));
    for name in by_scope.chain(individually.iter().cloned()) {
        if out.contains_key(&name) {
            continue;
        }
        if let Some(v) = claim_value(s, &name) {
            out.insert(name, v);
        }
    }
    out
}
