//! `/rs/prns/{oid}` and its collections: the person as ESIA's REST API shows it, with ESIA
//! field names, releasing only what the access token's scopes allow.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Map, Value};

use super::errors::EsiaCode;
use super::tokens::{parse_bound_scope, token_oid};
use crate::domain::identifier::Snils;
use crate::domain::person::{AccountStatus, Document, Person, VerifiedState};
use crate::domain::Subject;
use crate::keyring::KeySet;
use crate::protocol::tokens::revoked_key;
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::{PersonStore, SubjectStore};

/// Collections under `/rs/prns/{oid}/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Collection {
    Contacts,
    Addresses,
    Documents,
    Roles,
    Organizations,
}

impl Collection {
    /// From a path segment (`ctts`) or an `embed` name (`contacts`).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ctts" | "contacts" => Self::Contacts,
            "addrs" | "addresses" => Self::Addresses,
            "docs" | "documents" => Self::Documents,
            "roles" => Self::Roles,
            "orgs" | "organizations" => Self::Organizations,
            _ => return None,
        })
    }
    pub fn path(self) -> &'static str {
        match self {
            Self::Contacts => "ctts",
            Self::Addresses => "addrs",
            Self::Documents => "docs",
            Self::Roles => "roles",
            Self::Organizations => "orgs",
        }
    }
    /// The member name of the embedded collection in the person object.
    pub fn member(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Addresses => "addresses",
            Self::Documents => "documents",
            Self::Roles => "roles",
            Self::Organizations => "organizations",
        }
    }
    /// Whether any of `scopes` opens this collection.
    fn allowed(self, scopes: &[String]) -> bool {
        let has = |n: &str| scopes.iter().any(|s| s == n);
        match self {
            Self::Contacts => has("contacts") || has("email") || has("mobile") || has("phone"),
            Self::Addresses => has("addresses") || has("address"),
            Self::Documents => scopes.iter().any(|s| s.ends_with("_doc")),
            Self::Roles | Self::Organizations => has("usr_org"),
        }
    }
}

/// Who the token speaks for and what it opens.
#[derive(Debug, Clone, PartialEq)]
pub struct Access {
    pub subject: Subject,
    /// What is held beyond the sign-in profile (level, identifiers, collections).
    pub person: Person,
    /// Scope names, with the `?oid=` binding removed.
    pub scopes: Vec<String>,
}

/// Whether the account is confirmed (`trusted`, `urn:esia:sbj:is_tru`).
pub fn is_trusted(person: Option<&Person>) -> bool {
    person.is_some_and(|p| p.level.trusted())
}

fn bad_token() -> OAuthError {
    EsiaCode::BadToken.error("the access token is missing, invalid or expired")
}

fn forbidden() -> OAuthError {
    EsiaCode::Forbidden.error("the access token does not give access to this resource")
}

/// Verifies a Bearer access token (ESIA-shaped or standard): signature by a published key,
/// `typ: at+jwt`, `iss` one of ours, unexpired.
pub fn check_token(
    keys: &KeySet,
    issuers: &[&str],
    token: &str,
    now: DateTime<Utc>,
) -> Result<Value, OAuthError> {
    if token.len() > 8192 {
        return Err(bad_token());
    }
    let header = keys::decode_header(token).map_err(|_| bad_token())?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(bad_token());
    }
    let claims = keys::verify_jws(token, keys.verifying()).map_err(|_| bad_token())?;
    let iss_ok = claims
        .get("iss")
        .and_then(Value::as_str)
        .is_some_and(|i| issuers.contains(&i));
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if !iss_ok || exp <= now.timestamp() {
        return Err(bad_token());
    }
    Ok(claims)
}

/// The token's subject and scopes, if it may read person `oid`. Another person's oid is
/// ESIA-007019 (403).
pub async fn access(state: &AppState, token: &str, oid: i64) -> Result<Access, OAuthError> {
    let keyset = state.keyring.snapshot();
    let issuers = [
        state.issuer.as_ref(),
        state.cfg.esia.issuer_or(&state.issuer),
    ];
    let claims = check_token(&keyset, &issuers, token, state.now())?;
    let jti = claims.get("jti").and_then(Value::as_str).unwrap_or("");
    if jti.is_empty() || state.eph.get(&revoked_key(jti)).await?.is_some() {
        return Err(bad_token());
    }
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .ok_or_else(bad_token)?
        .to_string();
    let bound = parse_bound_scope(claims.get("scope").and_then(Value::as_str).unwrap_or(""));
    // An ESIA token names its person; every bound scope must name the same one.
    if let Some(t) = token_oid(&claims) {
        if t != oid {
            return Err(forbidden().with_detail("token for another oid"));
        }
    }
    if bound.iter().any(|(_, o)| o.is_some_and(|o| o != oid)) {
        return Err(forbidden().with_detail("scope bound to another oid"));
    }
    let now = state.now();
    let (subject, person) = state
        .store
        .call(move |s| Ok((s.find_subject(&sub)?, s.find_person(&sub)?)))
        .await?;
    let subject = subject.ok_or_else(bad_token)?;
    if subject.oid != oid {
        return Err(forbidden().with_detail("token for another oid"));
    }
    let person = person.unwrap_or_else(|| Person::new(&subject.id, now));
    // A blocked account's tokens stop working.
    if !person.status.may_sign_in() {
        return Err(bad_token().with_detail("account is not active"));
    }
    Ok(Access {
        subject,
        person,
        scopes: bound.into_iter().map(|(n, _)| n).collect(),
    })
}

/// `1990-05-17` -> `17.05.1990`.
fn esia_date(iso: &str) -> Option<String> {
    NaiveDate::parse_from_str(iso, "%Y-%m-%d")
        .ok()
        .map(|d| d.format("%d.%m.%Y").to_string())
}

fn esia_date_of(d: NaiveDate) -> String {
    d.format("%d.%m.%Y").to_string()
}

fn esia_status(s: AccountStatus) -> &'static str {
    match s {
        AccountStatus::Active => "REGISTERED",
        AccountStatus::Blocked => "BLOCKED",
        AccountStatus::PendingConfirmation => "NOT_CONFIRMED",
    }
}

fn esia_gender(g: &str) -> Option<&'static str> {
    match g.to_ascii_lowercase().as_str() {
        "male" | "m" => Some("M"),
        "female" | "f" => Some("F"),
        _ => None,
    }
}

/// Which collections `embed=(contacts.elements,addresses)` asks for, and whether their
/// elements are inlined. Unknown names are ignored.
pub fn parse_embed(raw: Option<&str>) -> Vec<(Collection, bool)> {
    let Some(raw) = raw else {
        return Vec::new();
    };
    raw.trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .split(',')
        .filter_map(|item| {
            let item = item.trim();
            let (name, elements) = match item.split_once('.') {
                Some((n, "elements")) => (n, true),
                Some(_) => return None,
                None => (item, false),
            };
            Collection::parse(name).map(|c| (c, elements))
        })
        .collect()
}

/// Whether `embed=(elements)` asks to inline a collection's elements.
pub fn embeds_elements(raw: Option<&str>) -> bool {
    raw.is_some_and(|r| {
        r.trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .any(|i| i.trim() == "elements")
    })
}

/// The person object: ESIA field names, only what the scopes allow; `embed` collections
/// the scopes do not open are left out.
pub fn person(a: &Access, base: &str, embed: &[(Collection, bool)]) -> Value {
    let p = &a.subject.profile;
    let has = |n: &str| a.scopes.iter().any(|s| s == n);
    let mut out = Map::new();
    out.insert("stateFacts".into(), json!(["EntityRoot"]));
    if has("fullname") {
        if let Some(v) = &p.given_name {
            out.insert("firstName".into(), json!(v));
        }
        if let Some(v) = &p.family_name {
            out.insert("lastName".into(), json!(v));
        }
        if let Some(v) = &p.middle_name {
            out.insert("middleName".into(), json!(v));
        }
    }
    if has("birthdate") {
        if let Some(d) = p.birthdate.as_deref().and_then(esia_date) {
            out.insert("birthDate".into(), json!(d));
        }
    }
    if has("gender") {
        if let Some(g) = p.gender.as_deref().and_then(esia_gender) {
            out.insert("gender".into(), json!(g));
        }
    }
    let person = &a.person;
    if has("birthplace") {
        if let Some(v) = &person.birth_place {
            out.insert("birthPlace".into(), json!(v));
        }
    }
    if has("snils") {
        if let Some(v) = &person.snils {
            let shown = Snils::parse(v)
                .map(|x| x.formatted())
                .unwrap_or_else(|_| v.clone());
            out.insert("snils".into(), json!(shown));
        }
    }
    if has("inn") {
        if let Some(v) = &person.inn {
            out.insert("inn".into(), json!(v));
        }
    }
    if has("id_doc") {
        if let Some(v) = &person.citizenship {
            out.insert("citizenship".into(), json!(v));
        }
        if let Some(d) = person.passport() {
            out.insert("rIdDoc".into(), json!(d.id));
        }
    }
    out.insert("trusted".into(), json!(person.level.trusted()));
    out.insert("verifying".into(), json!(false));
    out.insert("status".into(), json!(esia_status(person.status)));
    out.insert("updatedOn".into(), json!(a.subject.updated_at.timestamp()));
    for (c, elements) in embed {
        if c.allowed(&a.scopes) {
            out.insert(c.member().into(), collection_value(a, *c, base, *elements));
        }
    }
    Value::Object(out)
}

/// A collection, or ESIA-007019 when the scopes do not open it.
pub fn collection(
    a: &Access,
    c: Collection,
    base: &str,
    inline: bool,
) -> Result<Value, OAuthError> {
    if !c.allowed(&a.scopes) {
        return Err(forbidden().with_detail(format!("no scope for {}", c.path())));
    }
    Ok(collection_value(a, c, base, inline))
}

/// One element of a collection by its id.
pub fn element(a: &Access, c: Collection, id: &str) -> Result<Option<Value>, OAuthError> {
    if !c.allowed(&a.scopes) {
        return Err(forbidden().with_detail(format!("no scope for {}", c.path())));
    }
    Ok(elements(a, c)
        .into_iter()
        .find(|e| e.get("id").and_then(Value::as_str) == Some(id)))
}

fn collection_value(a: &Access, c: Collection, base: &str, inline: bool) -> Value {
    let items = elements(a, c);
    let size = items.len();
    let list: Vec<Value> = if inline {
        items
    } else {
        items
            .iter()
            .filter_map(|e| e.get("id").and_then(Value::as_str))
            .map(|id| {
                json!(format!(
                    "{base}/rs/prns/{}/{}/{id}",
                    a.subject.oid,
                    c.path()
                ))
            })
            .collect()
    };
    json!({ "stateFacts": ["hasSize"], "size": size, "elements": list })
}

/// The elements the scopes allow.
fn elements(a: &Access, c: Collection) -> Vec<Value> {
    let p = &a.subject.profile;
    let person = &a.person;
    let has = |n: &str| a.scopes.iter().any(|s| s == n);
    let vrf = |v: bool| if v { "VERIFIED" } else { "NOT_VERIFIED" };
    let contact = |id: &str, typ: &str, value: &str, verified: bool| {
        json!({
            "stateFacts": ["Identifiable"], "id": id, "type": typ,
            "vrfStu": vrf(verified), "value": value,
        })
    };
    let contact_allowed = |typ: &str| {
        has("contacts")
            || match typ {
                "EML" => has("email"),
                "MBT" => has("mobile") || has("phone"),
                _ => false,
            }
    };
    match c {
        Collection::Contacts => {
            // The recorded contacts, then the sign-in phone and e-mail of the profile when
            // the collection does not hold them.
            let mut out = Vec::new();
            let mut seen: Vec<&str> = Vec::new();
            for k in &person.contacts {
                seen.push(&k.value);
                let typ = k.kind.esia_type();
                if contact_allowed(typ) {
                    out.push(contact(&k.id, typ, &k.value, k.verified));
                }
            }
            if let Some(v) = p.phone_number.as_deref().filter(|v| !seen.contains(v)) {
                if contact_allowed("MBT") {
                    out.push(contact("mbt", "MBT", v, p.phone_number_verified));
                }
            }
            if let Some(v) = p.email.as_deref().filter(|v| !seen.contains(v)) {
                if contact_allowed("EML") {
                    out.push(contact("eml", "EML", v, p.email_verified));
                }
            }
            out
        }
        Collection::Addresses => {
            let mut out: Vec<Value> = person
                .addresses
                .iter()
                .map(|x| {
                    json!({
                        "stateFacts": ["Identifiable"], "id": x.id, "type": x.kind.esia_type(),
                        "addressStr": x.formatted, "zipCode": x.zip, "countryId": x.country,
                    })
                })
                .collect();
            if let Some(v) = p
                .address
                .as_deref()
                .filter(|v| !person.addresses.iter().any(|x| x.formatted == *v))
            {
                out.push(json!({
                    "stateFacts": ["Identifiable"], "id": "plv", "type": "PLV",
                    "addressStr": v,
                }));
            }
            out
        }
        Collection::Documents => person
            .documents
            .iter()
            .filter(|d| has(d.kind.scope()))
            .map(document)
            .collect(),
        Collection::Roles | Collection::Organizations => person
            .organizations
            .iter()
            .map(|m| {
                json!({
                    "stateFacts": ["Identifiable"], "id": m.org_oid.to_string(), "oid": m.org_oid,
                    "fullName": m.name, "ogrn": m.ogrn.as_str(), "type": "LEGAL",
                    "chief": m.role == crate::domain::person::OrgRole::Chief,
                    "role": m.role.as_str(), "active": true,
                })
            })
            .collect(),
    }
}

/// A document in ESIA field names (dates `dd.mm.yyyy`).
fn document(d: &Document) -> Value {
    let mut m = Map::new();
    m.insert("stateFacts".into(), json!(["Identifiable"]));
    m.insert("id".into(), json!(d.id));
    m.insert("type".into(), json!(d.kind.esia_type()));
    let vrf = match d.verified {
        VerifiedState::Verified => "VERIFIED",
        VerifiedState::Pending => "VERIFYING",
        VerifiedState::NotVerified => "NOT_VERIFIED",
    };
    m.insert("vrfStu".into(), json!(vrf));
    if let Some(v) = &d.series {
        m.insert("series".into(), json!(v));
    }
    m.insert("number".into(), json!(d.number));
    if let Some(v) = d.issue_date {
        m.insert("issueDate".into(), json!(esia_date_of(v)));
    }
    if let Some(v) = &d.issued_by {
        m.insert("issuedBy".into(), json!(v));
    }
    if let Some(v) = &d.division_code {
        m.insert("issueId".into(), json!(v));
    }
    if let Some(v) = d.expiry_date {
        m.insert("expiryDate".into(), json!(esia_date_of(v)));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Profile;

    fn access(scopes: &[&str]) -> Access {
        let t = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Access {
            subject: Subject {
                id: "u".into(),
                oid: 1000000001,
                login: "ivan@example.ru".into(),
                password_hash: String::new(),
                profile: Profile {
                    given_name: Some("Иван".into()),
                    family_name: Some("Петров".into()),
                    birthdate: Some("1990-05-17".into()),
                    gender: Some("male".into()),
                    email: Some("ivan@example.ru".into()),
                    email_verified: true,
                    phone_number: Some("+79001234567".into()),
                    address: Some("Moscow".into()),
                    ..Default::default()
                },
                created_at: t,
                updated_at: t,
            },
            person: Person::new("u", t),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn person_releases_only_scoped_fields() {
        let p = person(&access(&["openid"]), "https://id", &[]);
        assert!(p.get("firstName").is_none());
        assert!(p.get("birthDate").is_none());
        assert_eq!(p["trusted"], false);
        let p = person(
            &access(&["openid", "fullname", "birthdate", "gender"]),
            "https://id",
            &[],
        );
        assert_eq!(p["firstName"], "Иван");
        assert_eq!(p["lastName"], "Петров");
        assert_eq!(p["birthDate"], "17.05.1990");
        assert_eq!(p["gender"], "M");
    }

    #[test]
    fn collections_and_embedding() {
        let a = access(&["openid", "email"]);
        let c = collection(&a, Collection::Contacts, "https://id", false).unwrap();
        assert_eq!(c["stateFacts"], json!(["hasSize"]));
        assert_eq!(c["size"], 1);
        assert_eq!(c["elements"][0], "https://id/rs/prns/1000000001/ctts/eml");
        let c = collection(&a, Collection::Contacts, "https://id", true).unwrap();
        assert_eq!(c["elements"][0]["type"], "EML");
        assert_eq!(c["elements"][0]["vrfStu"], "VERIFIED");
        assert!(collection(&a, Collection::Addresses, "https://id", true).is_err());
        let embed = parse_embed(Some("(contacts.elements,addresses.elements,bogus)"));
        assert_eq!(
            embed,
            vec![(Collection::Contacts, true), (Collection::Addresses, true)]
        );
        let p = person(&a, "https://id", &embed);
        assert_eq!(p["contacts"]["elements"][0]["value"], "ivan@example.ru");
        assert!(p.get("addresses").is_none());
        assert!(embeds_elements(Some("(elements)")));
        assert!(!embeds_elements(None));
    }
}
