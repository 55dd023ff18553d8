//! `idp users confirm|block|unblock|add-org|show|set-identifiers` and
//! `idp clients set-min-level`: operator actions on the person (issue 5). Each change writes
//! its audit event (with the operator) in the same transaction.

use clap::Subcommand;
use idp::audit::AuditEvent;
use idp::clock::{Clock, SystemClock};
use idp::domain::identifier::{normalize_login, Snils};
use idp::domain::person::{
    check_person_inn, AccountLevel, AccountStatus, ConfirmMethod, Confirmation, Ogrn, OrgRole,
};
use idp::domain::Subject;
use idp::startup::BoxError;
use idp::store::{ClientStore, PersonStore, SqlStore, StoreError, SubjectStore};

#[derive(Subcommand)]
pub enum PersonAction {
    /// Raise an account to confirmed: identity proven in person, by bank ID or by a
    /// qualified certificate. Needs a standard account (documents checked) first.
    Confirm {
        #[arg(long)]
        login: String,
        /// Who confirmed (operator id, service centre).
        #[arg(long)]
        by: String,
        /// in-person | bank | certificate
        #[arg(long)]
        method: String,
        /// Confirm even a simplified account (documents seen in person).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Block an account: sign-in is refused, sessions end, refresh tokens are revoked.
    Block {
        #[arg(long)]
        login: String,
        #[arg(long)]
        reason: Option<String>,
    },
    /// Unblock an account (sessions and tokens ended by the block stay ended).
    Unblock {
        #[arg(long)]
        login: String,
    },
    /// Add the person to an organisation (created on first use) with a role.
    AddOrg {
        #[arg(long)]
        login: String,
        /// OGRN (13 digits) or OGRNIP (15 digits), check digit verified.
        #[arg(long)]
        ogrn: String,
        #[arg(long)]
        name: String,
        /// representative | chief | employee
        #[arg(long, default_value = "employee")]
        role: String,
        #[arg(long)]
        json: bool,
    },
    /// Record the person's SNILS and/or INN (sealed; sign-in by them works afterwards).
    SetIdentifiers {
        #[arg(long)]
        login: String,
        #[arg(long)]
        snils: Option<String>,
        #[arg(long)]
        inn: Option<String>,
    },
    /// Add (or with --id replace) a contact: kind email | mobile | phone.
    AddContact {
        #[arg(long)]
        login: String,
        #[arg(long)]
        kind: String,
        #[arg(long)]
        value: String,
        #[arg(long)]
        id: Option<String>,
    },
    /// Add (or with --id replace) an address: kind registration | living.
    AddAddress {
        #[arg(long)]
        login: String,
        #[arg(long)]
        kind: String,
        /// The whole address on one line.
        #[arg(long)]
        text: String,
        #[arg(long)]
        zip: Option<String>,
        #[arg(long)]
        id: Option<String>,
    },
    /// Level, status, organisations and the last registry check of an account.
    Show {
        #[arg(long)]
        login: String,
        #[arg(long)]
        json: bool,
    },
}

fn subject(store: &SqlStore, login: &str) -> Result<Subject, BoxError> {
    store
        .find_subject_by_login(&normalize_login(login))?
        .ok_or_else(|| format!("no account with login `{login}`").into())
}

fn event(kind: &str, subject_id: &str, detail: serde_json::Value) -> AuditEvent {
    AuditEvent {
        at: SystemClock.now(),
        kind: kind.into(),
        subject_id: Some(subject_id.into()),
        client_id: None,
        ip: None,
        detail,
    }
}

/// `idp users add --pending`: an account an operator creates for a citizen (at a service
/// centre, or by import) that stays `pending_confirmation` until the citizen activates it at
/// `/activate` (a code to the contact on file, then a password of their own). It has no
/// usable password until then (a random one nobody knows), its contacts are unconfirmed, and
/// it cannot sign in or get tokens. The account, its status, history row and audit event
/// are one transaction.
pub fn add_pending(
    cfg: &idp::config::Config,
    store: &SqlStore,
    login: &str,
    mut profile: idp::domain::Profile,
) -> Result<Subject, BoxError> {
    use idp::domain::identifier::Identifier;
    use idp::store::PersonEditStore;
    let login = Identifier::parse(login).map_err(|e| {
        format!(
            "--login must be a phone, e-mail, SNILS or INN ({})",
            e.code()
        )
    })?;
    let login = login.as_str().to_string();
    // The contacts are confirmed by the activation code, not by the operator.
    profile.email_verified = false;
    profile.phone_number_verified = false;
    let now = SystemClock.now();
    let mut subject = Subject {
        id: uuid::Uuid::new_v4().to_string(),
        oid: 0,
        login,
        // A real hash of a random secret: a sign-in attempt costs the same as for any account.
        password_hash: idp::authn::password::PasswordHasher::new(&cfg.password)?
            .hash_blocking(&keys::random_token(32)?)?,
        profile,
        created_at: now,
        updated_at: now,
    };
    if subject.activation_contact().is_none() {
        return Err(
            "a pending account needs a phone or e-mail to send the activation code to \
             (as --login, --phone or --email)"
                .into(),
        );
    }
    let e = event(
        "user.created_pending",
        &subject.id,
        serde_json::json!({ "by": "cli" }),
    );
    subject.oid = match store.insert_pending_subject(&subject, &e) {
        Err(StoreError::Conflict) => {
            return Err(format!("an account with login `{}` already exists", subject.login).into())
        }
        other => other?,
    };
    Ok(subject)
}

pub fn run(store: &SqlStore, action: PersonAction) -> Result<(), BoxError> {
    match action {
        PersonAction::Confirm {
            login,
            by,
            method,
            force,
            json,
        } => {
            let s = subject(store, &login)?;
            let method = ConfirmMethod::parse(&method)
                .ok_or("--method must be in-person, bank or certificate")?;
            let by = by.trim();
            if by.is_empty() || by.len() > 200 {
                return Err("--by must name the operator".into());
            }
            let person = store.find_person(&s.id)?.ok_or("the account vanished")?;
            if person.level < AccountLevel::Standard && !force {
                return Err(
                    "the account is simplified: its documents must be checked first (or use --force after seeing them in person)"
                        .into(),
                );
            }
            let conf = Confirmation {
                by: by.to_string(),
                method,
                at: SystemClock.now(),
            };
            let e = event(
                "user.confirmed",
                &s.id,
                serde_json::json!({ "actor": format!("operator:{by}"), "method": method.as_str() }),
            );
            store.set_level(&s.id, AccountLevel::Confirmed, Some(&conf), &e)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "sub": s.id, "level": "confirmed", "method": method.as_str(), "by": by })
                );
            } else {
                println!("{}: confirmed ({}, by {by})", s.login, method.as_str());
            }
        }
        PersonAction::Block { login, reason } => {
            let s = subject(store, &login)?;
            let e = event(
                "user.blocked",
                &s.id,
                serde_json::json!({ "actor": "operator:cli", "reason": reason }),
            );
            let changed = store.set_status(&s.id, AccountStatus::Blocked, &e)?;
            println!(
                "{}: blocked{}",
                s.login,
                if changed { "" } else { " (already)" }
            );
        }
        PersonAction::Unblock { login } => {
            let s = subject(store, &login)?;
            let e = event(
                "user.unblocked",
                &s.id,
                serde_json::json!({ "actor": "operator:cli" }),
            );
            let changed = store.set_status(&s.id, AccountStatus::Active, &e)?;
            println!(
                "{}: active{}",
                s.login,
                if changed { "" } else { " (already)" }
            );
        }
        PersonAction::AddOrg {
            login,
            ogrn,
            name,
            role,
            json,
        } => {
            let s = subject(store, &login)?;
            let ogrn = Ogrn::parse(&ogrn).map_err(|e| format!("--ogrn: {e} ({})", e.code()))?;
            let role =
                OrgRole::parse(&role).ok_or("--role must be representative, chief or employee")?;
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 300 {
                return Err("--name must be 1..300 characters".into());
            }
            let e = event(
                "org.member_added",
                &s.id,
                serde_json::json!({ "actor": "operator:cli", "ogrn": ogrn.as_str(), "role": role.as_str() }),
            );
            let oid = store.add_membership(&s.id, &ogrn, name, role, &e)?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "org_oid": oid, "ogrn": ogrn.as_str(), "role": role.as_str() })
                );
            } else {
                println!("{}: {} in {name} (oid {oid})", s.login, role.as_str());
            }
        }
        PersonAction::SetIdentifiers { login, snils, inn } => {
            let s = subject(store, &login)?;
            let snils = snils
                .map(|x| Snils::parse(&x).map(|v| v.as_str().to_string()))
                .transpose()
                .map_err(|e| format!("--snils: {}", e.code()))?;
            let inn = inn
                .map(|x| check_person_inn(&x))
                .transpose()
                .map_err(|e| format!("--inn: {}", e.code()))?;
            let e = event(
                "person.identifiers_set",
                &s.id,
                serde_json::json!({ "actor": "operator:cli", "snils": snils.is_some(), "inn": inn.is_some() }),
            );
            match store.set_identifiers(&s.id, snils.as_deref(), inn.as_deref(), None, &e) {
                Err(StoreError::Conflict) => {
                    return Err("this SNILS or INN belongs to another account".into())
                }
                other => other?,
            }
            println!("{}: identifiers recorded", s.login);
        }
        PersonAction::AddContact {
            login,
            kind,
            value,
            id,
        } => {
            use idp::domain::identifier::{Email, Phone};
            use idp::domain::person::{Contact, ContactKind};
            let s = subject(store, &login)?;
            let kind = ContactKind::parse(&kind).ok_or("--kind must be email, mobile or phone")?;
            let value = match kind {
                ContactKind::Email => Email::parse(&value).map(|e| e.as_str().to_string()),
                _ => Phone::parse(&value).map(|p| p.as_str().to_string()),
            }
            .map_err(|e| format!("--value: {}", e.code()))?;
            let now = SystemClock.now();
            let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let c = Contact {
                id: id.clone(),
                kind,
                value,
                verified: false,
                created_at: now,
                updated_at: now,
            };
            let e = event(
                "person.contact_set",
                &s.id,
                serde_json::json!({ "actor": "operator:cli", "kind": kind.as_str(), "id": id }),
            );
            store.put_item(&s.id, &idp::store::PersonItem::Contact(c), &e)?;
            println!("{}: contact {id}", s.login);
        }
        PersonAction::AddAddress {
            login,
            kind,
            text,
            zip,
            id,
        } => {
            use idp::domain::person::{Address, AddressKind};
            let s = subject(store, &login)?;
            let kind = AddressKind::parse(&kind).ok_or("--kind must be registration or living")?;
            let text = text.trim();
            if text.is_empty() || text.chars().count() > 300 || text.chars().any(char::is_control) {
                return Err("--text must be 1..300 characters on one line".into());
            }
            if zip
                .as_deref()
                .is_some_and(|z| z.len() != 6 || !z.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err("--zip must be 6 digits".into());
            }
            let now = SystemClock.now();
            let id = id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let a = Address {
                id: id.clone(),
                kind,
                formatted: text.to_string(),
                zip,
                country: Some("RUS".into()),
                created_at: now,
                updated_at: now,
            };
            let e = event(
                "person.address_set",
                &s.id,
                serde_json::json!({ "actor": "operator:cli", "kind": kind.as_str(), "id": id }),
            );
            store.put_item(&s.id, &idp::store::PersonItem::Address(a), &e)?;
            println!("{}: address {id}", s.login);
        }
        PersonAction::Show { login, json } => {
            let s = subject(store, &login)?;
            let p = store.find_person(&s.id)?.ok_or("the account vanished")?;
            let v = store.latest_verification(&s.id)?;
            let out = serde_json::json!({
                "sub": s.id,
                "oid": s.oid,
                "level": p.level.as_str(),
                "status": p.status.as_str(),
                "trusted": p.level.trusted(),
                "has_snils": p.snils.is_some(),
                "has_inn": p.inn.is_some(),
                "documents": p.documents.iter().map(|d| d.kind.as_str()).collect::<Vec<_>>(),
                "organizations": p.organizations.iter().map(|m| serde_json::json!({
                    "oid": m.org_oid, "ogrn": m.ogrn.as_str(), "name": m.name, "role": m.role.as_str()
                })).collect::<Vec<_>>(),
                "confirmation": p.confirmation.as_ref().map(|c| serde_json::json!({
                    "by": c.by, "method": c.method.as_str(), "at": c.at.to_rfc3339()
                })),
                "verification": v.as_ref().map(|v| serde_json::json!({
                    "state": v.state.as_str(),
                    "reason": match &v.state {
                        idp::domain::person::VerificationState::Mismatch { reason } => Some(reason.as_str()),
                        _ => None,
                    },
                    "attempts": v.attempts,
                    "last_error": v.last_error,
                })),
            });
            if json {
                println!("{out}");
            } else {
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
        }
    }
    Ok(())
}

/// `idp clients set-min-level CLIENT_ID --level standard|confirmed|none`.
pub fn set_client_min_level(
    store: &SqlStore,
    client_id: &str,
    level: &str,
) -> Result<(), BoxError> {
    if store.find_client(client_id)?.is_none() {
        return Err(format!("no client `{client_id}`").into());
    }
    let level = match level {
        "none" | "simplified" => None,
        other => Some(
            AccountLevel::parse(other)
                .ok_or("--level must be none, simplified, standard or confirmed")?,
        ),
    };
    store.set_client_min_level(client_id, level)?;
    println!(
        "{client_id}: min_account_level = {}",
        level.map(|l| l.as_str()).unwrap_or("none")
    );
    Ok(())
}

/// `serve --demo`: the demo citizen gets a standard account (SNILS, INN, a checked passport,
/// addresses, an organisation); a second demo citizen stays simplified. Idempotent.
pub fn seed_demo_person(
    cfg: &idp::config::Config,
    store: &SqlStore,
    login: &str,
) -> Result<(), BoxError> {
    use idp::domain::person::{Address, AddressKind, Document, DocumentKind, VerifiedState};
    use idp::store::PersonItem;
    let s = subject(store, login)?;
    let p = store
        .find_person(&s.id)?
        .ok_or("the demo account vanished")?;
    if p.level == AccountLevel::Simplified {
        let now = SystemClock.now();
        let e = event("demo.seeded", &s.id, serde_json::json!({ "actor": "demo" }));
        match store.set_identifiers(
            &s.id,
            Some("11223344595"),
            Some("500100732259"),
            Some("г. Тверь"),
            &e,
        ) {
            Err(StoreError::Conflict) | Ok(()) => {}
            Err(other) => return Err(other.into()),
        }
        let passport = Document {
            id: "demo-passport".into(),
            kind: DocumentKind::Passport,
            series: Some("4508".into()),
            number: "123456".into(),
            issue_date: chrono::NaiveDate::from_ymd_opt(2005, 5, 20),
            issued_by: Some("ОВД Тверского района г. Москвы".into()),
            division_code: Some("770-001".into()),
            expiry_date: None,
            citizenship: Some("RUS".into()),
            verified: VerifiedState::Verified,
            created_at: now,
            updated_at: now,
        };
        store.put_item(&s.id, &PersonItem::Document(passport), &e)?;
        let address = Address {
            id: "demo-registration".into(),
            kind: AddressKind::Registration,
            formatted: "125009, Москва, ул. Тверская, д. 1, кв. 1".into(),
            zip: Some("125009".into()),
            country: Some("RUS".into()),
            created_at: now,
            updated_at: now,
        };
        store.put_item(&s.id, &PersonItem::Address(address), &e)?;
        let ogrn = Ogrn::parse("1027700132195").map_err(|e| e.to_string())?;
        store.add_membership(&s.id, &ogrn, "ПАО «Демо-банк»", OrgRole::Employee, &e)?;
        store.set_level(&s.id, AccountLevel::Standard, None, &e)?;
    }
    // A second citizen, simplified: sensitive scopes are withheld for her.
    if store
        .find_subject_by_login(&normalize_login(DEMO_SIMPLIFIED))?
        .is_none()
    {
        let profile = idp::domain::Profile {
            given_name: Some("Мария".into()),
            family_name: Some("Иванова".into()),
            email: Some(DEMO_SIMPLIFIED.into()),
            email_verified: true,
            ..Default::default()
        };
        crate::cli::create_user(
            cfg,
            store,
            crate::cli::NewUser {
                login: DEMO_SIMPLIFIED.into(),
                password: crate::demo::DEMO_PASSWORD.into(),
                profile,
            },
        )?;
    }
    Ok(())
}

/// The simplified demo citizen (same password as the standard one).
pub const DEMO_SIMPLIFIED: &str = "maria@example.ru";
