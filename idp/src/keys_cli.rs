//! `idp keys ...`: signing keys, the master key and data keys.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use idp::clock::{Clock, SystemClock};
use idp::config::Config;
use idp::keyring::KeyringError;
use idp::startup::{self, BoxError};
use idp::store::{KeyChange, KeyStore};
use keys::{Alg, KeyState};

#[derive(Subcommand)]
pub enum KeyAction {
    /// List signing keys with their states and dates.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Start a rotation: a new key is published now and signs after `keys.publish_ahead_secs`.
    Rotate {
        /// Algorithm to rotate (repeat); default: every configured one.
        #[arg(long = "alg")]
        algs: Vec<String>,
        /// The key is compromised: the new key signs at once and the old one is removed from
        /// JWKS now, so tokens it signed stop verifying.
        #[arg(long)]
        emergency: bool,
    },
    /// Import a PKCS#8 PEM private key (P-256, Ed25519 or RSA) as the next key.
    Import {
        #[arg(long)]
        file: PathBuf,
    },
    /// Print public keys: the JWKS, or one key as PEM or as a self-signed X.509 certificate
    /// (for relying parties that take a certificate, such as legacy ESIA clients).
    ExportPublic {
        /// jwks | pem | certificate
        #[arg(long, default_value = "jwks")]
        format: String,
        /// The key to print (pem, certificate); default: the current key of `--alg`.
        #[arg(long)]
        kid: Option<String>,
        /// Algorithm whose current key to print; default: the first configured one.
        #[arg(long)]
        alg: Option<String>,
        /// Subject common name of the certificate; default: the issuer.
        #[arg(long)]
        common_name: Option<String>,
        /// Validity of the certificate in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Re-wrap every data key and re-seal every private signing key under the current
    /// (first) master key. Nodes keep serving; see docs/design/keys.md for the procedure.
    Rewrap,
    /// Print a new random master key in its text form (write it to a file with mode 0600).
    NewMaster,
}

fn parse_alg(a: &str) -> Result<Alg, BoxError> {
    Alg::parse(a).ok_or_else(|| format!("unknown algorithm `{a}` (ES256, EdDSA, RS256)").into())
}

fn describe(changes: &[KeyChange]) {
    for c in changes {
        match c {
            KeyChange::Insert(k) => println!("created {} {} ({})", k.kid, k.alg, k.state),
            KeyChange::Activate { kid } => println!("activated {kid}"),
            KeyChange::Retire { kid } => println!("retired {kid}"),
            KeyChange::Remove { kid } => println!("removed {kid}"),
            KeyChange::Reseal { kid, .. } => println!("resealed {kid}"),
        }
    }
    if changes.is_empty() {
        println!("nothing to do");
    }
}

pub fn run(config: Option<&Path>, action: KeyAction) -> Result<(), BoxError> {
    if let KeyAction::NewMaster = action {
        println!("{}", keys::MasterKey::generate()?.encode());
        return Ok(());
    }
    let cfg = Config::load(config)?;
    let now = SystemClock.now();
    let (store, master) = startup::open_sealed_store(&cfg, now)?;
    if let KeyAction::Rewrap = action {
        let n = idp::vault::rewrap(&store, &master, now)?;
        println!(
            "{n} key(s) re-sealed under master key {}",
            master.current_id()
        );
        return Ok(());
    }
    let ring = startup::open_keyring(&cfg, &store, master, now)?;
    match action {
        KeyAction::List { json } => list(&store, json),
        KeyAction::Rotate { algs, emergency } => {
            let algs = if algs.is_empty() {
                cfg.keys.algs()?
            } else {
                algs.iter()
                    .map(|a| parse_alg(a))
                    .collect::<Result<_, _>>()?
            };
            describe(&ring.rotate_now(&store, now, &algs, emergency)?);
            Ok(())
        }
        KeyAction::Import { file } => {
            let pem =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            let key = keys::SigningKey::from_pkcs8_pem(&pem).map_err(|e| {
                format!(
                    "{}: {e} (expected a PKCS#8 `PRIVATE KEY` PEM)",
                    file.display()
                )
            })?;
            match ring.import(&store, now, &key) {
                Err(KeyringError::Store(idp::store::StoreError::Conflict)) => {
                    Err(format!("key {} is already known", key.kid()).into())
                }
                other => {
                    describe(&other?);
                    Ok(())
                }
            }
        }
        KeyAction::ExportPublic {
            format,
            kid,
            alg,
            common_name,
            days,
        } => {
            let set = ring.snapshot();
            if format == "jwks" {
                println!("{}", String::from_utf8_lossy(&set.jwks_bytes()));
                return Ok(());
            }
            let kid = match (kid, &alg) {
                (Some(kid), _) => kid,
                (None, Some(a)) => {
                    let a = parse_alg(a)?;
                    set.current_for(Some(a.as_str()))
                        .filter(|k| k.alg() == a)
                        .ok_or_else(|| format!("no current {a} key (is it in keys.algorithms?)"))?
                        .kid()
                        .to_string()
                }
                (None, None) => set.current().ok_or("no current key")?.kid().to_string(),
            };
            let key = ring.private_key(&store, &kid)?;
            match format.as_str() {
                "pem" => print!("{}", key.public_key_pem()?),
                "certificate" => {
                    let cn = common_name.unwrap_or_else(|| cfg.issuer());
                    let from = now.timestamp();
                    let to = from + i64::from(days.max(1)) * 86_400;
                    print!("{}", key.self_signed_certificate_pem(&cn, from, to)?);
                }
                other => {
                    return Err(format!("unknown format `{other}` (jwks, pem, certificate)").into())
                }
            }
            Ok(())
        }
        KeyAction::Rewrap | KeyAction::NewMaster => Ok(()),
    }
}

fn list(store: &idp::store::SqlStore, json: bool) -> Result<(), BoxError> {
    let keys = store.list_keys()?;
    let t = |d: Option<chrono::DateTime<chrono::Utc>>| d.map(|d| d.to_rfc3339());
    if json {
        let rows: Vec<_> = keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kid": k.kid, "alg": k.alg, "state": k.state,
                    "created_at": k.created_at.to_rfc3339(),
                    "activated_at": t(k.activated_at),
                    "retired_at": t(k.retired_at),
                    "removed_at": t(k.removed_at),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    for k in &keys {
        let published = KeyState::parse(&k.state).is_some_and(KeyState::is_published);
        println!(
            "{:<44} {:<6} {:<8} created {}{}",
            k.kid,
            k.alg,
            k.state,
            k.created_at.format("%Y-%m-%d %H:%M:%S"),
            if published { "" } else { " (not published)" }
        );
    }
    Ok(())
}
