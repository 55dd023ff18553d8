//! Signing-key lifecycle across nodes, per-client ID token algorithms, public key export and
//! the master key: rotation, rewrap and the errors an operator sees.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::browser::{Authz, Browser};
use super::harness::{
    b64url_decode, check_token_response, for_each_backend, for_each_backend_with, jwks_kids,
    jwt_parts, verify_es256, ClientSpec, Idp, Node,
};

/// A fast schedule: nodes re-read keys every second, a new key is published 3 s before it
/// signs, tokens live 30 s and retired keys are kept 31 s.
const FAST: &[(&str, &str)] = &[
    ("IDP_KEYS__ALGORITHMS", "ES256"),
    // The ESIA profile (on by default) keeps an RS256 key too; these tests count one key.
    ("IDP_ESIA__ENABLED", "false"),
    ("IDP_KEYS__REFRESH_INTERVAL_SECS", "1"),
    ("IDP_KEYS__JWKS_MAX_AGE_SECS", "1"),
    ("IDP_KEYS__PUBLISH_AHEAD_SECS", "3"),
    ("IDP_KEYS__RETIRE_KEEP_SECS", "31"),
    ("IDP_TOKENS__ACCESS_TOKEN_TTL_SECS", "30"),
    ("IDP_TOKENS__ID_TOKEN_TTL_SECS", "30"),
];

async fn jwks_at(idp: &Idp, base: &str) -> Value {
    let r = idp.http.get(format!("{base}/jwks")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.json().await.unwrap()
}

/// A client_credentials access token from the node at `base`.
async fn token_at(idp: &Idp, base: &str, client: &super::harness::TestClient) -> String {
    let r = idp
        .http
        .post(format!("{base}/token"))
        .basic_auth(&client.id, client.secret.as_deref())
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let r = super::harness::HttpResp::read(r).await;
    let j = check_token_response(&r, "client_credentials");
    j["access_token"].as_str().unwrap().to_string()
}

fn kid_of(jwt: &str) -> String {
    jwt_parts(jwt).0["kid"].as_str().unwrap().to_string()
}

async fn cc_client(idp: &Idp) -> super::harness::TestClient {
    idp.add_client(ClientSpec {
        grant_types: &["client_credentials"],
        ..ClientSpec::default()
    })
    .await
}

async fn keys_json(idp: &Idp) -> Vec<Value> {
    let out = idp.cli(&["keys", "list", "--json"]).await;
    serde_json::from_str::<Value>(out.trim())
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn states(keys: &[Value]) -> Vec<(String, String)> {
    keys.iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_string(),
                k["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Polls `check` every 200 ms until it returns `Some`, for at most `secs`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn keys_two_nodes_agree_and_rotate_with_publish_ahead() {
    for_each_backend_with(FAST, |idp| async move {
        let node: Node = idp.start_node().await;
        let client = cc_client(&idp).await;
        let (a, b) = (idp.base.clone(), node.base.clone());

        // Both nodes publish the same single key and sign with it; a token from one node
        // verifies with the other's JWKS.
        let (ja, jb) = (jwks_at(&idp, &a).await, jwks_at(&idp, &b).await);
        assert_eq!(jwks_kids(&ja), jwks_kids(&jb));
        assert_eq!(jwks_kids(&ja).len(), 1, "{ja}");
        let old = jwks_kids(&ja).into_iter().next().unwrap();
        let t = token_at(&idp, &a, &client).await;
        assert_eq!(kid_of(&t), old);
        verify_es256(&t, &jb);

        // An operator starts a rotation: the new key is published first...
        let out = idp.cli(&["keys", "rotate", "--alg", "ES256"]).await;
        assert!(out.contains("created"), "{out}");
        let keys = keys_json(&idp).await;
        let new = states(&keys)
            .into_iter()
            .find(|(_, s)| s == "next")
            .map(|(k, _)| k)
            .unwrap_or_else(|| panic!("no next key: {keys:?}"));

        // ...and no token signed with it reaches anyone before both nodes publish it.
        let mut published: BTreeSet<String> = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            for base in [&a, &b] {
                if jwks_kids(&jwks_at(&idp, base).await).contains(new.as_str()) {
                    published.insert(base.clone());
                }
            }
            let ta = token_at(&idp, &a, &client).await;
            let tb = token_at(&idp, &b, &client).await;
            for t in [&ta, &tb] {
                if kid_of(t) == new {
                    assert_eq!(
                        published.len(),
                        2,
                        "a token was signed with {new} before both nodes published it"
                    );
                }
            }
            if kid_of(&ta) == new && kid_of(&tb) == new {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "both nodes sign with the new key"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // The old key is retired but still published: its tokens keep verifying.
        for base in [&a, &b] {
            let kids = jwks_kids(&jwks_at(&idp, base).await);
            assert!(
                kids.contains(old.as_str()) && kids.contains(new.as_str()),
                "{kids:?}"
            );
        }
        verify_es256(&t, &jwks_at(&idp, &b).await);
        let r = idp.introspect(&client, &t).await;
        assert_eq!(
            r.json()["active"],
            true,
            "a token of the retired key is still accepted"
        );
        let st = states(&keys_json(&idp).await);
        assert!(st.contains(&(old.clone(), "retired".into())), "{st:?}");
        assert!(st.contains(&(new.clone(), "current".into())), "{st:?}");
        assert_eq!(
            st.iter().filter(|(_, s)| s == "current").count(),
            1,
            "{st:?}"
        );
        drop(node);
    })
    .await;
}

#[tokio::test]
async fn keys_emergency_rotation_drops_the_old_key_everywhere() {
    for_each_backend_with(FAST, |idp| async move {
        let node = idp.start_node().await;
        let client = cc_client(&idp).await;
        let old_token = token_at(&idp, &idp.base, &client).await;
        let old = kid_of(&old_token);

        let out = idp
            .cli(&["keys", "rotate", "--alg", "ES256", "--emergency"])
            .await;
        assert!(out.contains("removed") && out.contains("created"), "{out}");
        for base in [idp.base.clone(), node.base.clone()] {
            eventually(15, "the compromised key leaves JWKS", || {
                let (idp, base, old) = (&idp, &base, &old);
                async move {
                    let kids = jwks_kids(&jwks_at(idp, base).await);
                    (!kids.contains(old.as_str()) && kids.len() == 1).then_some(())
                }
            })
            .await;
            assert_ne!(kid_of(&token_at(&idp, &base, &client).await), old);
        }
        // Tokens of the removed key are refused.
        let r = idp.introspect(&client, &old_token).await;
        assert_eq!(r.json()["active"], false, "{}", r.body);
    })
    .await;
}

/// Verifies a compact JWS with the JWK of its `kid`, whatever the algorithm.
fn verify_any(jwt: &str, jwks: &Value) -> (String, Value) {
    let (h, p) = jwt_parts(jwt);
    let alg = h["alg"].as_str().unwrap().to_string();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == h["kid"])
        .unwrap_or_else(|| panic!("kid {} not in {jwks}", h["kid"]))
        .clone();
    let (input, sig) = jwt.rsplit_once('.').unwrap();
    let sig = b64url_decode(sig);
    let f = |k: &str| b64url_decode(jwk[k].as_str().unwrap());
    let ok = match alg.as_str() {
        "RS256" => ring::signature::RsaPublicKeyComponents {
            n: f("n"),
            e: f("e"),
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            input.as_bytes(),
            &sig,
        )
        .is_ok(),
        "EdDSA" => {
            assert_eq!(jwk["crv"], "Ed25519");
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, f("x"))
                .verify(input.as_bytes(), &sig)
                .is_ok()
        }
        "ES256" => {
            verify_es256(jwt, jwks);
            true
        }
        other => panic!("unexpected alg {other}"),
    };
    assert!(ok, "{alg} signature does not verify");
    assert_eq!(jwk["alg"], alg.as_str(), "{jwk}");
    (alg, p)
}

#[tokio::test]
async fn keys_id_token_alg_per_client() {
    for_each_backend(|idp| async move {
        let d = idp.discovery().await;
        assert_eq!(
            d["id_token_signing_alg_values_supported"],
            serde_json::json!(["ES256", "EdDSA", "RS256"])
        );
        let jwks = idp.jwks().await;
        assert_eq!(jwks_kids(&jwks).len(), 3, "one key per algorithm: {jwks}");

        for alg in ["RS256", "EdDSA"] {
            let client = idp
                .add_client(ClientSpec {
                    id_token_alg: Some(alg),
                    ..ClientSpec::default()
                })
                .await;
            let a = Authz::new(&client);
            let cb = Browser::new(&idp).login_flow(&idp, &a).await;
            let r = idp
                .exchange_code(&client, cb.code(), &a.verifier, a.redirect_uri())
                .await;
            let j = check_token_response(&r, "authorization_code");
            let id_token = j["id_token"].as_str().unwrap();
            let (got, claims) = verify_any(id_token, &jwks);
            assert_eq!(got, alg);
            assert_eq!(claims["aud"], client.id.as_str());
            assert_eq!(claims["nonce"], a.get("nonce").unwrap());
            // Access tokens are signed with the default algorithm.
            let at = j["access_token"].as_str().unwrap();
            assert_eq!(verify_any(at, &jwks).0, "ES256");
        }

        let (ok, _, err) = idp
            .cli_with(
                &[],
                &[
                    "clients",
                    "add",
                    "--name",
                    "x",
                    "--redirect-uri",
                    "https://rp.example/cb",
                    "--id-token-alg",
                    "HS256",
                ],
            )
            .await;
        assert!(!ok && err.contains("HS256"), "{err}");
    })
    .await;
}

fn openssl(args: &[&str], input: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl is installed (scripts/ensure-services.sh)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn keys_export_public_pem_and_certificate() {
    for_each_backend(|idp| async move {
        let jwks: Value =
            serde_json::from_str(idp.cli(&["keys", "export-public"]).await.trim()).unwrap();
        assert_eq!(jwks_kids(&jwks), jwks_kids(&idp.jwks().await));

        let pem = idp
            .cli(&["keys", "export-public", "--format", "pem", "--alg", "RS256"])
            .await;
        let cert = idp
            .cli(&[
                "keys",
                "export-public",
                "--format",
                "certificate",
                "--alg",
                "RS256",
                "--common-name",
                "Propusk test",
                "--days",
                "30",
            ])
            .await;
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
        // An independent parser sees the same public key, the subject and a self-signature.
        let from_cert = openssl(&["x509", "-noout", "-pubkey"], &cert);
        assert_eq!(from_cert.trim(), pem.trim());
        let subject = openssl(&["x509", "-noout", "-subject"], &cert);
        assert!(subject.contains("Propusk test"), "{subject}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.pem");
        std::fs::write(&path, &cert).unwrap();
        let verified = openssl(
            &[
                "verify",
                "-CAfile",
                path.to_str().unwrap(),
                path.to_str().unwrap(),
            ],
            "",
        );
        assert!(verified.contains("OK"), "{verified}");
        // The RSA modulus matches the RS256 key in JWKS.
        let modulus = openssl(&["rsa", "-pubin", "-noout", "-modulus"], &pem);
        let hex = modulus.trim().trim_start_matches("Modulus=").to_lowercase();
        let jwk_n: Vec<String> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|k| k["alg"] == "RS256")
            .map(|k| {
                b64url_decode(k["n"].as_str().unwrap())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect();
        assert!(
            jwk_n.contains(&hex),
            "modulus of the exported key is not in JWKS"
        );
    })
    .await;
}

#[tokio::test]
async fn keys_master_key_rotation_and_errors() {
    for_each_backend(|idp| async move {
        let old = std::fs::read_to_string(idp.data_dir().join("master.key"))
            .unwrap()
            .trim()
            .to_string();
        let new = idp.cli(&["keys", "new-master"]).await.trim().to_string();
        assert_ne!(old, new);
        let list = |key: String| {
            let idp = &idp;
            async move {
                idp.cli_with(&[("IDP_MASTER_KEY", &key)], &["users", "list", "--json"])
                    .await
            }
        };

        // Only the new key, before rewrap: refused, naming the missing key.
        let (ok, _, err) = list(new.clone()).await;
        assert!(!ok, "data keys wrapped under the old key must not open");
        assert!(err.contains("not configured"), "{err}");

        // New first, old second: rewrap, while the running node keeps serving.
        let both = format!("{new}\n{old}");
        let (ok, out, err) = idp
            .cli_with(&[("IDP_MASTER_KEY", &both)], &["keys", "rewrap"])
            .await;
        assert!(ok, "{err}");
        assert!(out.contains("re-sealed"), "{out}");
        assert!(idp.jwks().await["keys"].is_array());

        // From now on the new key alone opens everything; the old one alone does not.
        let (ok, out, err) = list(new.clone()).await;
        assert!(ok, "{err}");
        assert!(out.contains(&idp.user.login), "{out}");
        let (ok, _, err) = list(old.clone()).await;
        assert!(!ok && err.contains("master key"), "{err}");
        // And a second rewrap has nothing left to do.
        let (ok, out, _) = idp
            .cli_with(&[("IDP_MASTER_KEY", &new)], &["keys", "rewrap"])
            .await;
        assert!(ok && out.starts_with("0 key(s)"), "{out}");

        // A truncated key and a missing key outside dev mode: named errors.
        let (ok, _, err) = list(new[..20].to_string()).await;
        assert!(!ok && err.contains("invalid master key"), "{err}");
        let (ok, _, err) = idp
            .cli_with(
                &[("IDP_DEV", "false"), ("IDP_MASTER_KEY", "")],
                &["users", "list"],
            )
            .await;
        assert!(!ok, "no master key outside dev mode must be refused");
        assert!(
            err.contains("no master key") && err.contains("idp keys new-master"),
            "{err}"
        );
    })
    .await;
}
