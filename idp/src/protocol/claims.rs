//! Personal data released as claims: by scope, plus claims requested individually with the
//! `claims` parameter (OIDC Core §5.5). Nothing outside those is released, and a claim of a
//! sensitive scope (`snils`, `id_doc`, ...) only under that scope. `account_level` and
//! `trusted` are stated whenever the person is known.

use serde_json::{json, Map, Value};

use super::scopes;
use crate::domain::identifier::Snils;
use crate::domain::person::{Document, DocumentKind, Person};
use crate::domain::Subject;

fn document_json(d: &Document) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!(d.kind.esia_type()));
    if let Some(s) = &d.series {
        m.insert("series".into(), json!(s));
    }
    m.insert("number".into(), json!(d.number));
    if let Some(x) = d.issue_date {
        m.insert("issue_date".into(), json!(x.format("%Y-%m-%d").to_string()));
    }
    if let Some(x) = &d.issued_by {
        m.insert("issued_by".into(), json!(x));
    }
    if let Some(x) = &d.division_code {
        m.insert("division_code".into(), json!(x));
    }
    if let Some(x) = d.expiry_date {
        m.insert(
            "expiry_date".into(),
            json!(x.format("%Y-%m-%d").to_string()),
        );
    }
    if let Some(x) = &d.citizenship {
        m.insert("citizenship".into(), json!(x));
    }
    m.insert(
        "verified".into(),
        json!(d.verified == crate::domain::person::VerifiedState::Verified),
    );
    Value::Object(m)
}

fn documents_of(p: &Person, kind: DocumentKind) -> Option<Value> {
    let docs: Vec<Value> = p
        .documents
        .iter()
        .filter(|d| d.kind == kind)
        .map(document_json)
        .collect();
    (!docs.is_empty()).then(|| json!(docs))
}

/// The person's contacts: the recorded collection, plus the sign-in e-mail and phone of the
/// profile when the collection does not hold them.
fn contacts_of(s: &Subject, p: Option<&Person>) -> Option<Value> {
    let mut out: Vec<Value> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    if let Some(p) = p {
        for c in &p.contacts {
            seen.push(c.value.clone());
            out.push(json!({"type": c.kind.esia_type(), "value": c.value, "verified": c.verified}));
        }
    }
    let pr = &s.profile;
    if let Some(e) = pr.email.as_ref().filter(|e| !seen.contains(e)) {
        out.push(json!({"type": "EML", "value": e, "verified": pr.email_verified}));
    }
    if let Some(m) = pr.phone_number.as_ref().filter(|m| !seen.contains(m)) {
        out.push(json!({"type": "MBT", "value": m, "verified": pr.phone_number_verified}));
    }
    (!out.is_empty()).then(|| json!(out))
}

/// All claims we can state about a subject, by claim name.
fn claim_value(s: &Subject, person: Option<&Person>, name: &str) -> Option<Value> {
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
        "address" => {
            let formatted = p.address.clone().or_else(|| {
                person.and_then(|x| x.addresses.first().map(|a| a.formatted.clone()))
            })?;
            json!({ "formatted": formatted })
        }
        "contacts" => contacts_of(s, person)?,
        "account_level" => json!(person?.level.as_str()),
        "trusted" => json!(person?.level.trusted()),
        _ => return person_claim(person?, name),
    };
    Some(v)
}

fn person_claim(p: &Person, name: &str) -> Option<Value> {
    Some(match name {
        "birthplace" => json!(p.birth_place.as_ref()?),
        "snils" => {
            let s = p.snils.as_ref()?;
            json!(Snils::parse(s)
                .map(|x| x.formatted())
                .unwrap_or_else(|_| s.clone()))
        }
        "inn" => json!(p.inn.as_ref()?),
        "id_doc" => document_json(p.passport()?),
        "addresses" => {
            if p.addresses.is_empty() {
                return None;
            }
            json!(p
                .addresses
                .iter()
                .map(|a| json!({
                    "type": a.kind.esia_type(),
                    "formatted": a.formatted,
                    "zip": a.zip,
                    "country": a.country,
                }))
                .collect::<Vec<_>>())
        }
        "usr_org" => json!(p
            .organizations
            .iter()
            .map(|m| json!({
                "oid": m.org_oid,
                "ogrn": m.ogrn.as_str(),
                "name": m.name,
                "role": m.role.as_str(),
                "chief": m.role == crate::domain::person::OrgRole::Chief,
            }))
            .collect::<Vec<_>>()),
        "medical_doc" => documents_of(p, DocumentKind::Medical)?,
        "drivers_licence_doc" => documents_of(p, DocumentKind::DriversLicence)?,
        "foreign_passport_doc" => documents_of(p, DocumentKind::ForeignPassport)?,
        "military_doc" => documents_of(p, DocumentKind::Military)?,
        "birth_cert_doc" => documents_of(p, DocumentKind::BirthCertificate)?,
        _ => return None,
    })
}

/// Names requested in `claims.<member>` of the claims parameter.
pub fn requested(claims: Option<&Value>, member: &str) -> Vec<String> {
    claims
        .and_then(|c| c.get(member))
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

/// Claims for the userinfo response or the ID token, without the person's records (name,
/// birth date, contacts of the profile only).
pub fn release(s: &Subject, scopes: &[String], individually: &[String]) -> Map<String, Value> {
    release_person(s, None, scopes, individually)
}

/// Claims for the userinfo response or the ID token. `scopes` are the granted scopes;
/// `individually` the names of the `claims` parameter — a claim of a sensitive scope among
/// them is released only if that scope was granted too.
/// Claims answered from the subject's own row and the person's level alone; any other
/// claim needs the person's records (documents, contacts, addresses, organisations).
const FROM_STANDING: &[&str] = &[
    "sub",
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
    "account_level",
    "trusted",
];

/// Whether releasing these scopes and individually requested claims needs the person's
/// records, or the level and status suffice (`PersonStore::find_person_standing`).
pub fn needs_records(scopes: &[String], individually: &[String]) -> bool {
    scopes
        .iter()
        .flat_map(|sc| scopes::claims_of(sc).iter().copied())
        .chain(individually.iter().map(String::as_str))
        .any(|c| !FROM_STANDING.contains(&c))
}

pub fn release_person(
    s: &Subject,
    person: Option<&Person>,
    scopes: &[String],
    individually: &[String],
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("sub".into(), json!(s.id));
    let by_scope = scopes
        .iter()
        .flat_map(|sc| scopes::claims_of(sc).iter().map(|c| c.to_string()));
    let single = individually
        .iter()
        .filter(|c| scopes::guarding_scope(c).is_none_or(|g| scopes.iter().any(|s| s == g)))
        .cloned();
    let always = ["account_level", "trusted"].into_iter().map(str::to_string);
    for name in by_scope.chain(single).chain(always) {
        if out.contains_key(&name) {
            continue;
        }
        if let Some(v) = claim_value(s, person, &name) {
            out.insert(name, v);
        }
    }
    out
}

/// Claims of the ID token: only those requested with `claims.id_token` (OIDC Core §5.5), a
/// sensitive one only if its scope was granted; `account_level` and `trusted` when asked for.
pub fn release_requested(
    s: &Subject,
    person: Option<&Person>,
    granted: &[String],
    individually: &[String],
) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("sub".into(), json!(s.id));
    for name in individually {
        let allowed = scopes::guarding_scope(name).is_none_or(|g| granted.iter().any(|s| s == g));
        if !allowed || out.contains_key(name) {
            continue;
        }
        if let Some(v) = claim_value(s, person, name) {
            out.insert(name.clone(), v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::domain::person::{AccountLevel, Ogrn, OrgRole, VerifiedState};
    use crate::domain::Profile;

    fn subject() -> Subject {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap();
        Subject {
            id: "sub-1".into(),
            oid: 1000000001,
            login: "ivan@example.ru".into(),
            password_hash: String::new(),
            profile: Profile {
                given_name: Some("Иван".into()),
                family_name: Some("Петров".into()),
                email: Some("ivan@example.ru".into()),
                email_verified: true,
                ..Profile::default()
            },
            created_at: t,
            updated_at: t,
        }
    }

    fn person() -> Person {
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap();
        let mut p = Person::new("sub-1", t);
        p.level = AccountLevel::Standard;
        p.snils = Some("11223344595".into());
        p.inn = Some("500100732259".into());
        p.birth_place = Some("г. Тверь".into());
        p.documents.push(Document {
            id: "d1".into(),
            kind: DocumentKind::Passport,
            series: Some("4508".into()),
            number: "123456".into(),
            issue_date: None,
            issued_by: None,
            division_code: Some("770-001".into()),
            expiry_date: None,
            citizenship: Some("RUS".into()),
            verified: VerifiedState::Verified,
            created_at: t,
            updated_at: t,
        });
        p.organizations.push(crate::domain::person::Membership {
            org_oid: 7,
            ogrn: Ogrn::parse("1027700132195").unwrap(),
            name: "ПАО Сбербанк".into(),
            role: OrgRole::Chief,
            since: t,
        });
        p
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn sensitive_claims_only_under_their_scope() {
        let (s, p) = (subject(), person());
        let out = release_person(
            &s,
            Some(&p),
            &v(&["openid", "snils", "id_doc", "usr_org"]),
            &[],
        );
        assert_eq!(out["snils"], "112-233-445 95");
        assert_eq!(out["id_doc"]["series"], "4508");
        assert_eq!(out["id_doc"]["type"], "RF_PASSPORT");
        assert_eq!(out["usr_org"][0]["ogrn"], "1027700132195");
        assert_eq!(out["usr_org"][0]["role"], "chief");
        assert_eq!(out["account_level"], "standard");
        assert_eq!(out["trusted"], false);
        assert!(out.get("inn").is_none());
        // Asking for `inn` in the claims parameter without the scope releases nothing.
        let out = release_person(&s, Some(&p), &v(&["openid"]), &v(&["inn", "email"]));
        assert!(out.get("inn").is_none());
        assert_eq!(out["email"], "ivan@example.ru");
        let out = release_person(&s, Some(&p), &v(&["openid", "inn"]), &v(&["inn"]));
        assert_eq!(out["inn"], "500100732259");
    }

    #[test]
    fn contacts_include_the_profile_email_once() {
        let out = release_person(&subject(), Some(&person()), &v(&["contacts"]), &[]);
        assert_eq!(out["contacts"][0]["type"], "EML");
        assert_eq!(out["contacts"].as_array().unwrap().len(), 1);
        // Without the person: the old behaviour, no level claims.
        let out = release(&subject(), &v(&["fullname"]), &[]);
        assert_eq!(out["name"], "Петров Иван");
        assert!(out.get("account_level").is_none());
    }

    #[test]
    fn level_and_status_suffice_exactly_where_needs_records_says_so() {
        let full = person();
        let mut standing = Person::new(&full.subject_id, full.updated_at);
        standing.level = full.level;
        standing.status = full.status;
        let s = subject();
        let mut light = 0;
        for scope in scopes::KNOWN_SCOPES {
            let granted = vec!["openid".to_string(), scope.to_string()];
            if needs_records(&granted, &[]) {
                continue;
            }
            light += 1;
            assert_eq!(
                release_person(&s, Some(&standing), &granted, &[]),
                release_person(&s, Some(&full), &granted, &[]),
                "{scope}"
            );
        }
        assert!(
            light >= 5,
            "profile, email, phone, fullname, birthdate, ..."
        );
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(needs_records(&v(&["openid", "snils"]), &[]));
        assert!(needs_records(&v(&["openid", "usr_org"]), &[]));
        assert!(needs_records(&v(&["openid"]), &v(&["id_doc"])));
        assert!(!needs_records(&v(&["openid", "profile", "email"]), &[]));
    }
}
