//! Subcommands other than argument parsing.

use std::path::Path;

use clap::Subcommand;
use idp::authn::password_policy;
use idp::clock::Clock;
use idp::config::Config;
use idp::domain::identifier::normalize_login;
use idp::domain::{Client, ClientAuthMethod, GrantType, Profile, Subject};
use idp::startup::{self, BoxError};
use idp::store::{ClientStore, StoreError, SubjectStore};

// Parsed once per command line; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum ClientAction {
    /// Register a relying portal; prints its id and (once) its secret.
    Add {
        #[arg(long)]
        name: String,
        /// Redirect URI (repeat for several); compared exactly. Needed for the
        /// authorization_code grant; a client-credentials-only client has none.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// client_secret_basic | client_secret_post | private_key_jwt | none
        #[arg(long, default_value = "client_secret_basic")]
        auth_method: String,
        /// authorization_code | refresh_token | client_credentials (repeat)
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// Scopes the client may request (repeat).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// ID token signing algorithm (`id_token_signed_response_alg`): ES256, EdDSA or RS256;
        /// default: the first of `keys.algorithms`.
        #[arg(long)]
        id_token_alg: Option<String>,
        /// JWK Set file with the client's public keys (private_key_jwt).
        #[arg(long)]
        jwks: Option<std::path::PathBuf>,
        /// Client id to use instead of a generated one.
        #[arg(long)]
        id: Option<String>,
        /// ESIA dialect: PEM certificate the client signs its request parameters with
        /// (RSA or ECDSA P-256). The client then authenticates only by signature
        /// (`esia_signature`) on the `/aas/oauth2/*` paths.
        #[arg(long)]
        esia_certificate: Option<std::path::PathBuf>,
        /// The weakest sign-in the client accepts: urn:propusk:acr:2 (two factors) or
        /// urn:propusk:acr:3 (passkey); weaker requests step up.
        #[arg(long)]
        min_acr: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List registered clients.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Remove a client and everything issued to it.
    Remove { client_id: String },
    /// The minimum account level the client requires (issue 5): none, standard, confirmed.
    SetMinLevel {
        client_id: String,
        #[arg(long)]
        level: String,
    },
    /// The weakest sign-in the client accepts (issue 4): an acr URN, or `none`.
    SetMinAcr {
        client_id: String,
        #[arg(long)]
        acr: String,
    },
}

// Parsed once per command line; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum UserAction {
    /// Create a citizen account.
    Add {
        /// Sign-in identifier: e-mail or phone.
        #[arg(long)]
        login: String,
        /// Required unless --pending.
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        given_name: Option<String>,
        #[arg(long)]
        family_name: Option<String>,
        #[arg(long)]
        middle_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        /// YYYY-MM-DD
        #[arg(long)]
        birthdate: Option<String>,
        /// male | female
        #[arg(long)]
        gender: Option<String>,
        #[arg(long)]
        address: Option<String>,
        /// The password is temporary: the first sign-in must replace it.
        #[arg(long)]
        temporary: bool,
        /// Create the account for a citizen who activates it at /activate (a code to the
        /// phone or e-mail on file, then their own password); no --password.
        #[arg(long, conflicts_with_all = ["password", "temporary"])]
        pending: bool,
        #[arg(long)]
        json: bool,
    },
    /// Give the account a temporary password (generated unless --password is given) that
    /// the next sign-in must replace; every session ends and every refresh token is revoked.
    ResetPassword {
        #[arg(long)]
        login: String,
        #[arg(long)]
        password: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List accounts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Start setting up an authenticator app: prints the secret and the otpauth URI. The
    /// app counts once `totp-confirm` accepts its first code.
    TotpEnroll {
        #[arg(long)]
        login: String,
        #[arg(long)]
        json: bool,
    },
    /// Confirm the authenticator app with a code it shows.
    TotpConfirm {
        #[arg(long)]
        login: String,
        #[arg(long)]
        code: String,
    },
    /// Issue ten new recovery codes (the old ones stop working); printed once.
    RecoveryCodes {
        #[arg(long)]
        login: String,
        #[arg(long)]
        json: bool,
    },
    /// Register a push device (the Propusk mobile app) for sign-in codes by push; the app
    /// itself uses `POST /account/push-devices`.
    AddPushDevice {
        #[arg(long)]
        login: String,
        /// android, ios or huawei.
        #[arg(long)]
        platform: String,
        /// The device token of the push service.
        #[arg(long)]
        token: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The person: confirm, block, unblock, add-org, set-identifiers, show (issue 5).
    #[command(flatten)]
    Person(crate::identity_cli::PersonAction),
}

fn load(config: Option<&Path>) -> Result<Config, BoxError> {
    Ok(Config::load(config)?)
}

fn open(cfg: &Config) -> Result<idp::store::SqlStore, BoxError> {
    let store = startup::open_store(cfg)?;
    store.migrate()?;
    Ok(store)
}

pub fn migrate(config: Option<&Path>) -> Result<(), BoxError> {
    let cfg = load(config)?;
    startup::open_store(&cfg)?.migrate()?;
    println!("migrations applied");
    Ok(())
}

/// `idp config password-capacity`: see `main.rs`.
pub fn password_capacity(config: Option<&Path>, seconds: f64, json: bool) -> Result<(), BoxError> {
    let cfg = load(config)?;
    let duration = std::time::Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero() && d.as_secs() <= 3600)
        .ok_or("--seconds must be more than 0 and at most 3600")?;
    let p = &cfg.password;
    let hasher = idp::authn::password::PasswordHasher::new(p)?;
    let c = hasher.capacity_blocking(duration)?;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "checks_per_sec": c.per_second(),
                "ms_per_check": c.ms_per_check(),
                "workers": c.workers,
                "checks": c.checks,
                "seconds": c.seconds,
                "memory_kib": p.memory_kib,
                "iterations": p.iterations,
                "parallelism": p.parallelism,
            })
        );
    } else {
        println!(
            "argon2id m={} KiB, t={}, p={} on {} workers: {:.1} checks/s ({:.1} ms per check, {} checks in {:.1} s)",
            p.memory_kib,
            p.iterations,
            p.parallelism,
            c.workers,
            c.per_second(),
            c.ms_per_check(),
            c.checks,
            c.seconds
        );
    }
    Ok(())
}

pub const DEFAULT_SCOPES: &[&str] = &[
    "openid",
    "profile",
    "email",
    "phone",
    "address",
    "offline_access",
];

pub struct NewClient {
    pub id: Option<String>,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub auth_method: String,
    pub grant_types: Vec<String>,
    pub scopes: Vec<String>,
    pub jwks: Option<serde_json::Value>,
    pub id_token_alg: Option<String>,
    pub min_acr: Option<String>,
}

/// An acr value this provider knows (`acr_values_supported`), for a client's minimum.
fn min_acr(a: &str) -> Result<&'static str, BoxError> {
    idp::authn::ACR_VALUES
        .iter()
        .find(|v| **v == a)
        .copied()
        .ok_or_else(|| {
            format!(
                "acr `{a}` is not one of {}",
                idp::authn::ACR_VALUES.join(", ")
            )
            .into()
        })
}

/// Validates and builds a client; returns it with its secret (when it has one).
pub fn build_client(n: NewClient) -> Result<(Client, Option<String>), BoxError> {
    let auth_method = ClientAuthMethod::parse(&n.auth_method)
        .ok_or_else(|| format!("unknown auth method `{}`", n.auth_method))?;
    let mut grant_types = Vec::new();
    let names = if n.grant_types.is_empty() {
        vec![
            "authorization_code".to_string(),
            "refresh_token".to_string(),
        ]
    } else {
        n.grant_types
    };
    for g in &names {
        grant_types.push(GrantType::parse(g).ok_or_else(|| format!("unknown grant type `{g}`"))?);
    }
    if n.redirect_uris.is_empty() && grant_types.contains(&GrantType::AuthorizationCode) {
        return Err("--redirect-uri is required for the authorization_code grant".into());
    }
    for u in n.redirect_uris.iter().chain(&n.post_logout_redirect_uris) {
        let parsed = url::Url::parse(u).map_err(|e| format!("redirect URI `{u}`: {e}"))?;
        if parsed.fragment().is_some() {
            return Err(format!("redirect URI `{u}` must not contain a fragment").into());
        }
    }
    if auth_method == ClientAuthMethod::PrivateKeyJwt && n.jwks.is_none() {
        return Err("private_key_jwt needs --jwks".into());
    }
    let scopes = if n.scopes.is_empty() {
        DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect()
    } else {
        n.scopes
    };
    let secret = match auth_method {
        ClientAuthMethod::ClientSecretBasic | ClientAuthMethod::ClientSecretPost => {
            Some(keys::random_token(32)?)
        }
        _ => None,
    };
    let client = Client {
        id: match n.id {
            Some(id) => id,
            None => uuid::Uuid::new_v4().to_string(),
        },
        name: n.name,
        secret_hash: secret.as_ref().map(|s| keys::sha256_b64url(s.as_bytes())),
        auth_method,
        redirect_uris: n.redirect_uris,
        post_logout_redirect_uris: n.post_logout_redirect_uris,
        grant_types,
        scopes,
        jwks: n.jwks,
        id_token_alg: n.id_token_alg,
        created_at: chrono::Utc::now(),
        min_acr: n
            .min_acr
            .as_deref()
            .map(min_acr)
            .transpose()?
            .map(str::to_string),
    };
    Ok((client, secret))
}

pub fn clients(config: Option<&Path>, action: ClientAction) -> Result<(), BoxError> {
    let cfg = load(config)?;
    let store = open(&cfg)?;
    match action {
        ClientAction::Add {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            auth_method,
            grant_types,
            scopes,
            id_token_alg,
            jwks,
            id,
            esia_certificate,
            min_acr,
            json,
        } => {
            // ESIA clients sign their parameters: no secret, their own auth method.
            let esia = match &esia_certificate {
                Some(p) => Some(idp::esia::registration::read_certificate(p)?),
                None => None,
            };
            let auth_method = match &esia {
                Some(_) => "esia_signature".to_string(),
                None => auth_method,
            };
            if let Some(a) = &id_token_alg {
                let algs = cfg.keys.algs()?;
                if !algs.iter().any(|x| x.as_str() == a) {
                    let names: Vec<&str> = algs.iter().map(|x| x.as_str()).collect();
                    return Err(format!(
                        "--id-token-alg `{a}` is not one of the configured keys.algorithms ({})",
                        names.join(", ")
                    )
                    .into());
                }
            }
            let jwks = match jwks {
                Some(p) => Some(serde_json::from_str(&std::fs::read_to_string(&p)?)?),
                None => None,
            };
            let (client, secret) = build_client(NewClient {
                id,
                name,
                redirect_uris,
                post_logout_redirect_uris,
                auth_method,
                grant_types,
                scopes,
                jwks,
                id_token_alg,
                min_acr,
            })?;
            match store.insert_client(&client) {
                Err(StoreError::Conflict) => {
                    return Err(format!("client `{}` already exists", client.id).into())
                }
                other => other?,
            }
            let certificate_hash = match &esia {
                Some(cert) => Some(idp::esia::registration::register(&store, &client, cert)?),
                None => None,
            };
            if json {
                let mut out =
                    serde_json::json!({ "client_id": client.id, "client_secret": secret });
                if let Some(h) = &certificate_hash {
                    out["client_certificate_hash"] = serde_json::Value::from(h.as_str());
                }
                println!("{out}");
            } else {
                println!("client_id:     {}", client.id);
                match secret {
                    Some(s) => println!("client_secret: {s}\n(shown once: store it now)"),
                    None => println!("client_secret: (none; {})", client.auth_method.as_str()),
                }
                if let Some(h) = &certificate_hash {
                    println!("client_certificate_hash: {h}");
                }
            }
        }
        ClientAction::List { json } => {
            let list = store.list_clients()?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|c| serde_json::json!({ "client_id": c.id, "name": c.name, "auth_method": c.auth_method, "redirect_uris": c.redirect_uris, "grant_types": c.grant_types, "scopes": c.scopes }))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for c in list {
                    println!(
                        "{}\t{}\t{}\t{}",
                        c.id,
                        c.name,
                        c.auth_method.as_str(),
                        c.redirect_uris.join(",")
                    );
                }
            }
        }
        ClientAction::Remove { client_id } => {
            if store.remove_client(&client_id)? {
                println!("removed {client_id}");
            } else {
                return Err(format!("no client `{client_id}`").into());
            }
        }
        ClientAction::SetMinLevel { client_id, level } => {
            crate::identity_cli::set_client_min_level(&store, &client_id, &level)?
        }
        ClientAction::SetMinAcr { client_id, acr } => {
            let acr = match acr.as_str() {
                "none" => None,
                a => Some(min_acr(a)?),
            };
            if !store.set_client_min_acr(&client_id, acr)? {
                return Err(format!("no client `{client_id}`").into());
            }
            println!("{client_id}: min_acr = {}", acr.unwrap_or("none"));
        }
    }
    Ok(())
}

pub struct NewUser {
    pub login: String,
    pub password: String,
    pub profile: Profile,
}

pub fn create_user(
    cfg: &Config,
    store: &idp::store::SqlStore,
    n: NewUser,
) -> Result<Subject, BoxError> {
    let login = idp::domain::identifier::Identifier::parse(&n.login).map_err(|e| {
        format!(
            "--login must be a phone, e-mail, SNILS or INN ({})",
            e.code()
        )
    })?;
    let birthdate = match &n.profile.birthdate {
        Some(b) => Some(
            chrono::NaiveDate::parse_from_str(b, "%Y-%m-%d")
                .map_err(|_| "birthdate must be YYYY-MM-DD")?,
        ),
        None => None,
    };
    let ctx = password_policy::PolicyContext {
        min_length: cfg.password.min_length,
        given_name: n.profile.given_name.as_deref(),
        family_name: n.profile.family_name.as_deref(),
        middle_name: n.profile.middle_name.as_deref(),
        birthdate,
        phone: n.profile.phone_number.as_deref(),
    };
    if let Err(violations) = password_policy::check(&n.password, &ctx) {
        let codes: Vec<&str> = violations.iter().map(|v| v.code()).collect();
        return Err(format!("password refused: {}", codes.join(", ")).into());
    }
    let hasher = idp::authn::password::PasswordHasher::new(&cfg.password)?;
    let now = chrono::Utc::now();
    let mut subject = Subject {
        id: uuid::Uuid::new_v4().to_string(),
        oid: 0,
        login: login.as_str().to_string(),
        password_hash: hasher.hash_blocking(&n.password)?,
        profile: n.profile,
        created_at: now,
        updated_at: now,
    };
    subject.oid = match store.insert_subject(&subject) {
        Err(StoreError::Conflict) => {
            return Err(format!("an account with login `{}` already exists", subject.login).into())
        }
        other => other?,
    };
    Ok(subject)
}

pub fn users(config: Option<&Path>, action: UserAction) -> Result<(), BoxError> {
    let cfg = load(config)?;
    let (store, _master) = startup::open_sealed_store(&cfg, idp::clock::SystemClock.now())?;
    match action {
        UserAction::Add {
            login,
            password,
            given_name,
            family_name,
            middle_name,
            email,
            phone,
            birthdate,
            gender,
            address,
            temporary,
            pending,
            json,
        } => {
            let profile = Profile {
                given_name,
                family_name,
                middle_name,
                birthdate,
                gender,
                email_verified: email.is_some(),
                email: email.map(|e| normalize_login(&e)),
                phone_number_verified: phone.is_some(),
                phone_number: phone.map(|p| normalize_login(&p)),
                address,
                locale: None,
            };
            let s = match (pending, password) {
                (true, _) => crate::identity_cli::add_pending(&cfg, &store, &login, profile)?,
                (false, Some(password)) => create_user(
                    &cfg,
                    &store,
                    NewUser {
                        login,
                        password,
                        profile,
                    },
                )?,
                (false, None) => return Err("--password is required (or --pending)".into()),
            };
            if temporary {
                crate::password_cli::mark_temporary(&store, &s)?;
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "sub": s.id, "oid": s.oid, "login": s.login })
                );
            } else {
                println!("sub: {}\noid: {}\nlogin: {}", s.id, s.oid, s.login);
            }
        }
        UserAction::ResetPassword {
            login,
            password,
            json,
        } => crate::password_cli::reset_password(&cfg, &store, &login, password, json)?,
        UserAction::TotpEnroll { login, json } => {
            crate::factors_cli::totp_enroll(&cfg, &store, &login, json)?
        }
        UserAction::TotpConfirm { login, code } => {
            crate::factors_cli::totp_confirm(&store, &login, &code)?
        }
        UserAction::RecoveryCodes { login, json } => {
            crate::factors_cli::recovery_codes(&store, &login, json)?
        }
        UserAction::AddPushDevice {
            login,
            platform,
            token,
            name,
            json,
        } => crate::push_cli::add_push_device(
            &store,
            &login,
            &platform,
            &token,
            name.as_deref(),
            json,
        )?,
        UserAction::Person(a) => crate::identity_cli::run(&store, a)?,
        UserAction::List { json } => {
            let list = store.list_subjects()?;
            if json {
                let rows: Vec<_> = list
                    .iter()
                    .map(|s| serde_json::json!({ "sub": s.id, "oid": s.oid, "login": s.login }))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for s in list {
                    println!("{}\t{}\t{}", s.oid, s.id, s.login);
                }
            }
        }
    }
    Ok(())
}

pub fn serve(config: Option<&Path>, listen: Option<String>, demo: bool) -> Result<(), BoxError> {
    let mut cfg = load(config)?;
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if demo {
        cfg.dev = true;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = std::net::TcpListener::bind(&cfg.listen)
            .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
        let store = startup::open_store(&cfg)?;
        if cfg.dev {
            let s2 = store.clone();
            tokio::task::spawn_blocking(move || s2.migrate()).await??;
        }
        let state = startup::build_state(cfg, store).await?;
        let demo_note = if demo {
            Some(crate::demo::seed(&state.cfg, &state.store)?)
        } else {
            None
        };
        startup::spawn_key_refresh(&state);
        startup::spawn_notify(&state)?;
        startup::spawn_registry(&state)?;
        tracing::info!(issuer = %state.issuer, "listening on {}", state.cfg.listen);
        println!(
            "Propusk is listening on http://{} (issuer {})",
            state.cfg.listen, state.issuer
        );
        if let Some(note) = demo_note {
            println!("{}", note.render(&state.issuer));
        }
        idp::http::serve(state, listener).await?;
        Ok::<(), BoxError>(())
    })
}
