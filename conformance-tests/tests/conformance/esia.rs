//! The ESIA dialect, driven the way existing ESIA client libraries drive it: parameters
//! signed with `openssl smime` (detached CMS, legacy `/ac` + `/te`) or `openssl dgst` (raw,
//! `/v2/ac` + `/v3/te`), the key and certificate made with `openssl req`, the client
//! registered with `idp clients add --esia-certificate`.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use super::browser::{redirect_to, Browser, Page};
use super::harness::{
    for_each_backend, for_each_backend_with, random_b64, HttpResp, Idp, BIRTHDATE, EMAIL,
    FAMILY_NAME, GIVEN_NAME, POST_LOGOUT_URI, REDIRECT_URI,
};

/// The issuer ESIA itself uses (with the trailing slash).
const ESIA_ISSUER: &str = "http://esia.gosuslugi.ru/";

const SCOPES: &[&str] = &[
    "openid",
    "fullname",
    "birthdate",
    "gender",
    "email",
    "offline_access",
];

fn run(cmd: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(cmd).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[derive(Clone, Copy, PartialEq)]
enum KeyKind {
    Rsa,
    Ec,
}

/// A key pair and a self-signed certificate made by the openssl CLI.
struct Signer {
    _dir: tempfile::TempDir,
    key: PathBuf,
    cert: PathBuf,
}

impl Signer {
    fn new(kind: KeyKind, cn: &str) -> Signer {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        let newkey: &[&str] = match kind {
            KeyKind::Rsa => &["-newkey", "rsa:2048"],
            KeyKind::Ec => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
        };
        let mut args = vec!["req", "-x509", "-nodes", "-sha256", "-days", "30"];
        args.extend_from_slice(newkey);
        let subj = format!("/CN={cn}");
        args.extend([
            "-subj",
            subj.as_str(),
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]);
        run("openssl", &args);
        Signer {
            _dir: dir,
            key,
            cert,
        }
    }

    fn data_file(&self, data: &str) -> PathBuf {
        let p = self._dir.path().join(format!("data-{}", random_b64(6)));
        std::fs::write(&p, data).unwrap();
        p
    }

    /// As the legacy libraries: `openssl smime -sign -binary -outform DER -noattr`, detached.
    fn cms(&self, data: &str) -> String {
        let input = self.data_file(data);
        let der = run(
            "openssl",
            &[
                "smime",
                "-sign",
                "-md",
                "sha256",
                "-binary",
                "-noattr",
                "-outform",
                "DER",
                "-signer",
                self.cert.to_str().unwrap(),
                "-inkey",
                self.key.to_str().unwrap(),
                "-in",
                input.to_str().unwrap(),
            ],
        );
        URL_SAFE_NO_PAD.encode(der)
    }

    /// As the current libraries: `openssl dgst -sha256 -sign key`, base64url.
    fn raw(&self, data: &str) -> String {
        let input = self.data_file(data);
        let sig = run(
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-sign",
                self.key.to_str().unwrap(),
                input.to_str().unwrap(),
            ],
        );
        URL_SAFE_NO_PAD.encode(sig)
    }

    /// Hex SHA-256 of the DER certificate, computed independently.
    fn hash(&self) -> String {
        let der = run(
            "openssl",
            &[
                "x509",
                "-in",
                self.cert.to_str().unwrap(),
                "-outform",
                "DER",
            ],
        );
        use sha2::Digest;
        sha2::Sha256::digest(der)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// `YYYY.MM.DD HH:MM:SS +0000`, `offset_secs` from now.
fn timestamp(offset_secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = format!("@{}", now + offset_secs);
    let out = run("date", &["-u", "-d", &at, "+%Y.%m.%d %H:%M:%S +0000"]);
    String::from_utf8(out).unwrap().trim().to_string()
}

fn uuid() -> String {
    let h = super::harness::random_hex(16);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

async fn register(idp: &Idp, signer: &Signer) -> String {
    let mut args = vec![
        "clients",
        "add",
        "--name",
        "ESIA portal",
        "--redirect-uri",
        REDIRECT_URI,
        "--post-logout-redirect-uri",
        POST_LOGOUT_URI,
        "--esia-certificate",
        signer.cert.to_str().unwrap(),
        "--json",
    ];
    for s in SCOPES {
        args.extend(["--scope", s]);
    }
    let out = idp.cli(&args).await;
    let j: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert!(
        j["client_secret"].is_null(),
        "an ESIA client has no secret: {j}"
    );
    assert_eq!(
        j["client_certificate_hash"].as_str().unwrap(),
        signer.hash(),
        "client_certificate_hash is the hex SHA-256 of the DER certificate"
    );
    j["client_id"].as_str().unwrap().to_string()
}

async fn user_oid(idp: &Idp) -> i64 {
    let out = idp.cli(&["users", "list", "--json"]).await;
    let j: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    j.as_array()
        .unwrap()
        .iter()
        .find(|u| u["sub"] == idp.user.sub.as_str())
        .and_then(|u| u["oid"].as_i64())
        .unwrap()
}

/// An authorization request of the given flavour, signed as the libraries sign it.
struct Ac {
    params: Vec<(String, String)>,
    state: String,
}

impl Ac {
    fn legacy(client_id: &str, signer: &Signer, scope: &str, ts: &str) -> Ac {
        let state = uuid();
        let secret = signer.cms(&format!("{scope}{ts}{client_id}{state}"));
        Ac::with(client_id, scope, ts, &state, secret)
    }

    fn v2(client_id: &str, signer: &Signer, scope: &str, ts: &str, hash: &str) -> Ac {
        let state = uuid();
        let secret = signer.raw(&format!("{client_id}{scope}{ts}{state}{REDIRECT_URI}"));
        Ac::with(client_id, scope, ts, &state, secret).set("client_certificate_hash", hash)
    }

    fn with(client_id: &str, scope: &str, ts: &str, state: &str, secret: String) -> Ac {
        let params = [
            ("client_id", client_id),
            ("client_secret", &secret),
            ("redirect_uri", REDIRECT_URI),
            ("scope", scope),
            ("response_type", "code"),
            ("state", state),
            ("timestamp", ts),
            ("access_type", "online"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Ac {
            params,
            state: state.to_string(),
        }
    }

    fn set(mut self, k: &str, v: &str) -> Ac {
        self.params.retain(|(n, _)| n != k);
        self.params.push((k.into(), v.into()));
        self
    }

    fn remove(mut self, k: &str) -> Ac {
        self.params.retain(|(n, _)| n != k);
        self
    }

    fn url(&self, idp: &Idp, path: &str) -> String {
        let mut u = url::Url::parse(&idp.url(path)).unwrap();
        u.query_pairs_mut().extend_pairs(&self.params);
        u.to_string()
    }
}

/// Asserts a redirect to the client with `error` and an ESIA code, `state` echoed.
fn assert_esia_redirect(page: &Page, ac: &Ac, code: &str) {
    let cb = redirect_to(page, REDIRECT_URI);
    let desc = cb.get("error_description").unwrap_or_default();
    assert!(
        desc.starts_with(&format!("{code}:")),
        "expected {code}, got error={:?} error_description={desc:?}",
        cb.get("error")
    );
    assert_eq!(
        cb.get("state"),
        Some(ac.state.as_str()),
        "state must be echoed"
    );
    assert!(cb.get("code").is_none());
}

fn assert_esia_json(r: &HttpResp, status: u16, code: &str) {
    assert_eq!(r.status, status, "expected {status} {code}: {}", r.body);
    let j = r.json();
    let d = j["error_description"].as_str().unwrap_or_default();
    assert!(
        d.starts_with(&format!("{code}:")),
        "expected {code}: {}",
        r.body
    );
    assert!(j["error"].is_string());
}

/// A token request of the given flavour.
#[allow(clippy::too_many_arguments)]
fn te_form(
    client_id: &str,
    signer: &Signer,
    current: bool,
    scope: &str,
    ts: &str,
    code: &str,
    hash: &str,
) -> (Vec<(String, String)>, String) {
    let state = uuid();
    let secret = if current {
        signer.raw(&format!(
            "{client_id}{scope}{ts}{state}{REDIRECT_URI}{code}"
        ))
    } else {
        signer.cms(&format!("{scope}{ts}{client_id}{state}"))
    };
    let mut form: Vec<(String, String)> = [
        ("client_id", client_id),
        ("code", code),
        ("grant_type", "authorization_code"),
        ("client_secret", &secret),
        ("state", &state),
        ("redirect_uri", REDIRECT_URI),
        ("scope", scope),
        ("timestamp", ts),
        ("token_type", "Bearer"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if current {
        form.push(("client_certificate_hash".into(), hash.into()));
    }
    (form, state)
}

async fn post(idp: &Idp, path: &str, form: &[(String, String)]) -> HttpResp {
    HttpResp::read(
        idp.http
            .post(idp.url(path))
            .form(form)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn get_bearer(idp: &Idp, path: &str, token: Option<&str>) -> HttpResp {
    let mut r = idp.http.get(idp.url(path));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    HttpResp::read(r.send().await.unwrap()).await
}

fn jwt_parts(jwt: &str) -> (Value, Value) {
    let p: Vec<&str> = jwt.split('.').collect();
    assert_eq!(p.len(), 3, "{jwt}");
    let dec = |s: &str| serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (dec(p[0]), dec(p[1]))
}

/// Verifies an RS256 JWT with the PEM public key exported by `idp keys export-public`.
async fn verify_rs256(idp: &Idp, jwt: &str) {
    let pem = idp
        .cli(&["keys", "export-public", "--format", "pem", "--alg", "RS256"])
        .await;
    let dir = tempfile::tempdir().unwrap();
    let (pub_path, sig_path, data_path) = (
        dir.path().join("pub.pem"),
        dir.path().join("sig"),
        dir.path().join("data"),
    );
    std::fs::write(&pub_path, pem).unwrap();
    let (signing_input, sig) = jwt.rsplit_once('.').unwrap();
    std::fs::write(&sig_path, URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
    std::fs::write(&data_path, signing_input).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let out = Command::new("openssl")
        .args([
            "dgst",
            "-sha256",
            "-verify",
            &s(&pub_path),
            "-signature",
            &s(&sig_path),
            &s(&data_path),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the token does not verify with the exported RS256 key: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn esia_birthdate() -> String {
    let p: Vec<&str> = BIRTHDATE.split('-').collect();
    format!("{}.{}.{}", p[2], p[1], p[0])
}

/// Legacy paths with RSA + CMS: authorization page, sign-in, code, token exchange with the
/// state echoed and a refresh token for access_type=offline, the ID token verified with the
/// exported RS256 key, /rs/prns with and without the scopes, refresh, ESIA logout.
#[tokio::test]
async fn esia_legacy_cms_round_trip() {
    for_each_backend(|mut idp| async move {
        let signer = Signer::new(KeyKind::Rsa, "esia-portal");
        let client_id = register(&idp, &signer).await;
        let oid = user_oid(&idp).await;
        let scope = "openid fullname birthdate";
        let ac = Ac::legacy(&client_id, &signer, scope, &timestamp(0)).set("access_type", "offline");
        let browser = Browser::new(&idp);
        let page = browser.navigate(&ac.url(&idp, "/aas/oauth2/ac")).await;
        assert!(page.is_login_page(), "expected the sign-in page: {}", page.describe());
        let page = browser.sign_in(page, &idp.user.login, &idp.user.password).await;
        let cb = redirect_to(&page, REDIRECT_URI);
        assert_eq!(cb.get("state"), Some(ac.state.as_str()));
        let code = cb.code().to_string();

        // Token exchange at /aas/oauth2/te, signed with a new state.
        let (form, state2) = te_form(&client_id, &signer, false, scope, &timestamp(0), &code, "");
        let r = post(&idp, "/aas/oauth2/te", &form).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
        let t = r.json();
        assert_eq!(t["state"], state2.as_str(), "the token response echoes the new state");
        assert_eq!(t["token_type"], "Bearer");
        assert!(t["expires_in"].as_u64().unwrap() > 0);
        let refresh = t["refresh_token"].as_str().expect("access_type=offline gives a refresh token");

        // ID token: ESIA shape, RS256, verifiable with the exported public key.
        let id_token = t["id_token"].as_str().unwrap();
        let (h, c) = jwt_parts(id_token);
        assert_eq!(h["alg"], "RS256");
        verify_rs256(&idp, id_token).await;
        assert_eq!(c["sub"].as_i64(), Some(oid), "sub is the numeric oid: {c}");
        assert_eq!(c["aud"], client_id.as_str());
        assert_eq!(c["iss"], idp.base.as_str());
        assert_eq!(c["amr"], "PWD", "amr is a string: {c}");
        assert_eq!(c["urn:esia:amd"], "PWD");
        assert!(c["urn:esia:sid"].is_string());
        let sbj = &c["urn:esia:sbj"];
        assert_eq!(sbj["urn:esia:sbj:typ"], "P");
        assert_eq!(sbj["urn:esia:sbj:oid"].as_i64(), Some(oid));
        assert_eq!(sbj["urn:esia:sbj:nam"], format!("OID.{oid}"));
        assert_eq!(sbj["urn:esia:sbj:is_tru"], false);

        // Access token: scopes bound to the oid.
        let access = t["access_token"].as_str().unwrap();
        let (h, a) = jwt_parts(access);
        assert_eq!(h["alg"], "RS256");
        verify_rs256(&idp, access).await;
        assert_eq!(
            a["scope"],
            format!("openid fullname?oid={oid} birthdate?oid={oid} offline_access")
        );
        assert_eq!(a["urn:esia:sbj_id"].as_i64(), Some(oid));
        assert_eq!(a["client_id"], client_id.as_str());
        assert_eq!(a["urn:esia:sid"], c["urn:esia:sid"]);

        // /rs/prns: the fields the scopes allow, in ESIA names.
        let r = get_bearer(&idp, &format!("/rs/prns/{oid}"), Some(access)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let p = r.json();
        assert_eq!(p["firstName"], GIVEN_NAME);
        assert_eq!(p["lastName"], FAMILY_NAME);
        assert_eq!(p["birthDate"], esia_birthdate());
        assert!(p.get("gender").is_none(), "gender was not asked for: {p}");
        assert_eq!(p["trusted"], false);
        // Contacts need a contact scope; another oid is never served.
        let r = get_bearer(&idp, &format!("/rs/prns/{oid}/ctts"), Some(access)).await;
        assert_esia_json(&r, 403, "ESIA-007019");
        let r = get_bearer(&idp, &format!("/rs/prns/{}", oid + 1), Some(access)).await;
        assert_esia_json(&r, 403, "ESIA-007019");
        let r = get_bearer(&idp, &format!("/rs/prns/{oid}"), None).await;
        assert_esia_json(&r, 401, "ESIA-007020");
        let r = get_bearer(&idp, &format!("/rs/prns/{oid}"), Some("not.a.token")).await;
        assert_esia_json(&r, 401, "ESIA-007020");

        // Refresh at /aas/oauth2/te (rotated; the old one is spent).
        let ts = timestamp(0);
        let st = uuid();
        let secret = signer.cms(&format!("{scope}{ts}{client_id}{st}"));
        let form: Vec<(String, String)> = [
            ("client_id", client_id.as_str()),
            ("refresh_token", refresh),
            ("grant_type", "refresh_token"),
            ("client_secret", &secret),
            ("state", &st),
            ("redirect_uri", REDIRECT_URI),
            ("scope", scope),
            ("timestamp", &ts),
            ("token_type", "Bearer"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let r = post(&idp, "/aas/oauth2/te", &form).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let t2 = r.json();
        assert_eq!(t2["state"], st.as_str());
        assert_ne!(t2["refresh_token"].as_str().unwrap(), refresh);
        assert!(t2["id_token"].is_string());

        // The code is single-use; a replay revokes what it issued (the refresh family and
        // the first access token).
        let (form, _) = te_form(&client_id, &signer, false, scope, &timestamp(0), &code, "");
        assert_esia_json(&post(&idp, "/aas/oauth2/te", &form).await, 400, "ESIA-007011");
        let r = get_bearer(&idp, &format!("/rs/prns/{oid}"), Some(access)).await;
        assert_esia_json(&r, 401, "ESIA-007020");
        let ts = timestamp(0);
        let st = uuid();
        let secret = signer.cms(&format!("{scope}{ts}{client_id}{st}"));
        let rotated = t2["refresh_token"].as_str().unwrap();
        let form: Vec<(String, String)> = [
            ("client_id", client_id.as_str()),
            ("refresh_token", rotated),
            ("grant_type", "refresh_token"),
            ("client_secret", &secret),
            ("state", &st),
            ("scope", scope),
            ("timestamp", &ts),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_esia_json(&post(&idp, "/aas/oauth2/te", &form).await, 400, "ESIA-007011");

        // ESIA logout: back to a registered URL, the session is over.
        let logout = format!(
            "/idp/ext/Logout?client_id={client_id}&redirect_url={}",
            url::form_urlencoded::byte_serialize(POST_LOGOUT_URI.as_bytes()).collect::<String>()
        );
        let page = browser.get(&idp.url(&logout)).await;
        assert_eq!(page.status, 303, "{}", page.describe());
        assert_eq!(page.location().unwrap().as_str(), POST_LOGOUT_URI);
        let again = Ac::legacy(&client_id, &signer, scope, &timestamp(0));
        let page = browser.navigate(&again.url(&idp, "/aas/oauth2/ac")).await;
        assert!(page.is_login_page(), "signed out: {}", page.describe());
        // Not a registered URL: a page, no redirect.
        let page = browser
            .get(&idp.url(&format!(
                "/idp/ext/Logout?client_id={client_id}&redirect_url=https%3A%2F%2Fattacker.example.net%2F"
            )))
            .await;
        assert_eq!(page.status, 400);
        assert!(page.body.contains("ESIA-007005"), "{}", page.describe());
        idp.assert_alive("the ESIA round trip").await;
    })
    .await;
}

/// Current paths with ECDSA P-256 raw signatures + client_certificate_hash + PKCE:
/// online access gives no refresh token; contacts with the email scope; `[esia] issuer`.
#[tokio::test]
async fn esia_v2_v3_ecdsa_round_trip() {
    for_each_backend_with(&[("IDP_ESIA__ISSUER", ESIA_ISSUER)], |mut idp| async move {
        let signer = Signer::new(KeyKind::Ec, "esia-portal-ec");
        let client_id = register(&idp, &signer).await;
        let hash = signer.hash();
        let oid = user_oid(&idp).await;
        let scope = "openid fullname email";
        let verifier = random_b64(32);
        let challenge = {
            use sha2::Digest;
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
        };
        let ac = Ac::v2(&client_id, &signer, scope, &timestamp(0), &hash)
            .set("code_challenge", &challenge)
            .set("code_challenge_method", "S256");
        let browser = Browser::new(&idp);
        let page = browser.navigate(&ac.url(&idp, "/aas/oauth2/v2/ac")).await;
        let page = browser
            .sign_in(page, &idp.user.login, &idp.user.password)
            .await;
        let cb = redirect_to(&page, REDIRECT_URI);
        assert_eq!(cb.get("state"), Some(ac.state.as_str()));
        let first_code = cb.code().to_string();

        let (mut form, _) = te_form(
            &client_id,
            &signer,
            true,
            scope,
            &timestamp(0),
            &first_code,
            &hash,
        );
        form.push(("code_verifier".into(), verifier.clone()));
        let r = post(&idp, "/aas/oauth2/v3/te", &form).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let t = r.json();
        assert!(
            t.get("refresh_token").is_none(),
            "online access: no refresh token: {t}"
        );
        let access = t["access_token"].as_str().unwrap();
        let (_, c) = jwt_parts(t["id_token"].as_str().unwrap());
        assert_eq!(c["sub"].as_i64(), Some(oid));
        // `[esia] issuer` names the tokens of this profile; /rs/prns accepts them.
        assert_eq!(c["iss"], ESIA_ISSUER);
        assert_eq!(jwt_parts(access).1["iss"], ESIA_ISSUER);

        let r = get_bearer(
            &idp,
            &format!("/rs/prns/{oid}/ctts?embed=(elements)"),
            Some(access),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let ctts = r.json();
        assert_eq!(ctts["stateFacts"], serde_json::json!(["hasSize"]));
        assert_eq!(ctts["size"], 1);
        assert_eq!(ctts["elements"][0]["type"], "EML");
        assert_eq!(ctts["elements"][0]["value"], EMAIL);
        let r = get_bearer(&idp, &format!("/rs/prns/{oid}/ctts"), Some(access)).await;
        let link = r.json()["elements"][0].as_str().unwrap().to_string();
        let prefix = idp.url(&format!("/rs/prns/{oid}/ctts/"));
        assert!(link.starts_with(&prefix), "{link}");
        // The link is served.
        let r = get_bearer(&idp, &link[idp.base.len()..], Some(access)).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.json()["value"], EMAIL);
        let r = get_bearer(
            &idp,
            &format!("/rs/prns/{oid}?embed=(contacts.elements,addresses.elements)"),
            Some(access),
        )
        .await;
        let p = r.json();
        assert_eq!(p["contacts"]["elements"][0]["value"], EMAIL);
        assert!(p.get("addresses").is_none(), "no address scope: {p}");
        let r = get_bearer(&idp, &format!("/rs/prns/{oid}/addrs"), Some(access)).await;
        assert_esia_json(&r, 403, "ESIA-007019");

        // A second code, exchanged without the verifier: refused.
        let ac = Ac::v2(&client_id, &signer, scope, &timestamp(0), &hash)
            .set("code_challenge", &challenge)
            .set("code_challenge_method", "S256");
        let page = browser.navigate(&ac.url(&idp, "/aas/oauth2/v2/ac")).await;
        let code = redirect_to(&page, REDIRECT_URI).code().to_string();
        let (form, _) = te_form(
            &client_id,
            &signer,
            true,
            scope,
            &timestamp(0),
            &code,
            &hash,
        );
        assert_esia_json(
            &post(&idp, "/aas/oauth2/v3/te", &form).await,
            400,
            "ESIA-007014",
        );
        // That refusal spent the code and issued nothing: with the verifier it is refused
        // too, with nothing to revoke, so no code reuse is reported.
        let with_verifier = |code: &str| {
            let (mut form, _) =
                te_form(&client_id, &signer, true, scope, &timestamp(0), code, &hash);
            form.push(("code_verifier".into(), verifier.clone()));
            form
        };
        assert_esia_json(
            &post(&idp, "/aas/oauth2/v3/te", &with_verifier(&code)).await,
            400,
            "ESIA-007011",
        );
        let reused = |kinds: Vec<String>| kinds.iter().any(|k| k == "token.code_reuse");
        assert!(
            !reused(idp.audit_kinds()),
            "a code whose exchange was refused has nothing to revoke"
        );
        // A replay of the first code, whose exchange succeeded, revokes what it issued.
        assert_esia_json(
            &post(&idp, "/aas/oauth2/v3/te", &with_verifier(&first_code)).await,
            400,
            "ESIA-007011",
        );
        assert!(reused(idp.audit_kinds()), "the replay is reported");
        let r = get_bearer(&idp, &format!("/rs/prns/{oid}"), Some(access)).await;
        assert_esia_json(&r, 401, "ESIA-007020");
        idp.assert_alive("the v2/v3 round trip").await;
    })
    .await;
}

/// Every refusal carries its ESIA code; the server stays up.
#[tokio::test]
async fn esia_refusals_carry_their_codes() {
    for_each_backend(|mut idp| async move {
        let signer = Signer::new(KeyKind::Rsa, "esia-portal");
        let intruder = Signer::new(KeyKind::Rsa, "intruder");
        let client_id = register(&idp, &signer).await;
        let hash = signer.hash();
        let scope = "openid fullname";
        let browser = Browser::new(&idp);
        let ac_page = |ac: Ac, path: &'static str| {
            let b = &browser;
            let url = ac.url(&idp, path);
            async move { (b.get(&url).await, ac) }
        };

        // Missing mandatory parameter.
        let (p, ac) = ac_page(
            Ac::legacy(&client_id, &signer, scope, &timestamp(0)).remove("timestamp"),
            "/aas/oauth2/ac",
        )
        .await;
        assert_esia_redirect(&p, &ac, "ESIA-007014");
        // Signature over other data.
        let mut bad = Ac::legacy(&client_id, &signer, scope, &timestamp(0));
        let forged = signer.cms("something else");
        bad = bad.set("client_secret", &forged);
        let (p, ac) = ac_page(bad, "/aas/oauth2/ac").await;
        assert_esia_redirect(&p, &ac, "ESIA-007055");
        // Malformed secret.
        let (p, ac) = ac_page(
            Ac::legacy(&client_id, &signer, scope, &timestamp(0)).set("client_secret", "%%%"),
            "/aas/oauth2/ac",
        )
        .await;
        assert_esia_redirect(&p, &ac, "ESIA-007053");
        // Timestamp outside the window (signed correctly, 10 minutes old).
        let (p, ac) = ac_page(
            Ac::legacy(&client_id, &signer, scope, &timestamp(-600)),
            "/aas/oauth2/ac",
        )
        .await;
        assert_esia_redirect(&p, &ac, "ESIA-007015");
        // Signed by another certificate (CMS and raw).
        let (p, ac) = ac_page(
            Ac::legacy(&client_id, &intruder, scope, &timestamp(0)),
            "/aas/oauth2/ac",
        )
        .await;
        assert_esia_redirect(&p, &ac, "ESIA-007055");
        let (p, ac) = ac_page(
            Ac::v2(&client_id, &intruder, scope, &timestamp(0), &hash),
            "/aas/oauth2/v2/ac",
        )
        .await;
        assert_esia_redirect(&p, &ac, "ESIA-007055");
        // The hash of another certificate.
        let (p, ac) = ac_page(
            Ac::v2(
                &client_id,
                &intruder,
                scope,
                &timestamp(0),
                &intruder.hash(),
            ),
            "/aas/oauth2/v2/ac",
        )
        .await;
        assert_esia_redirect(&p, &ac, "ESIA-007013");
        // v2 without the hash.
        let (p, ac) = ac_page(
            Ac::v2(&client_id, &signer, scope, &timestamp(0), &hash)
                .remove("client_certificate_hash"),
            "/aas/oauth2/v2/ac",
        )
        .await;
        assert_esia_redirect(&p, &ac, "ESIA-007014");
        // A scope not approved for the client.
        let (p, ac) = ac_page(
            Ac::legacy(&client_id, &signer, "openid phone", &timestamp(0)),
            "/aas/oauth2/ac",
        )
        .await;
        assert_esia_redirect(&p, &ac, "ESIA-007006");
        // Unknown client, unregistered redirect URI: a page, never a redirect.
        let (p, _) = ac_page(
            Ac::legacy("no-such-client", &signer, scope, &timestamp(0)),
            "/aas/oauth2/ac",
        )
        .await;
        assert_eq!(p.status, 400, "{}", p.describe());
        assert!(p.location().is_none());
        assert!(p.body.contains("ESIA-007002"), "{}", p.describe());
        let (p, _) = ac_page(
            Ac::legacy(&client_id, &signer, scope, &timestamp(0))
                .set("redirect_uri", "https://attacker.example.net/cb"),
            "/aas/oauth2/ac",
        )
        .await;
        assert_eq!(p.status, 400);
        assert!(p.location().is_none());
        assert!(p.body.contains("ESIA-007005"), "{}", p.describe());

        // Token endpoint.
        let (form, _) = te_form(
            &client_id,
            &signer,
            false,
            scope,
            &timestamp(0),
            "no-such-code",
            "",
        );
        assert_esia_json(
            &post(&idp, "/aas/oauth2/te", &form).await,
            400,
            "ESIA-007011",
        );
        let (form, _) = te_form(&client_id, &signer, false, scope, &timestamp(-600), "c", "");
        assert_esia_json(
            &post(&idp, "/aas/oauth2/te", &form).await,
            400,
            "ESIA-007015",
        );
        let (form, _) = te_form(&client_id, &intruder, false, scope, &timestamp(0), "c", "");
        assert_esia_json(
            &post(&idp, "/aas/oauth2/te", &form).await,
            401,
            "ESIA-007055",
        );
        let (form, _) = te_form(
            &client_id,
            &intruder,
            true,
            scope,
            &timestamp(0),
            "c",
            &hash,
        );
        assert_esia_json(
            &post(&idp, "/aas/oauth2/v3/te", &form).await,
            401,
            "ESIA-007055",
        );
        let (form, _) = te_form(&client_id, &signer, true, scope, &timestamp(0), "c", "00");
        assert_esia_json(
            &post(&idp, "/aas/oauth2/v3/te", &form).await,
            401,
            "ESIA-007013",
        );
        let (mut form, _) = te_form(&client_id, &signer, false, scope, &timestamp(0), "c", "");
        form.retain(|(k, _)| k != "client_secret");
        assert_esia_json(
            &post(&idp, "/aas/oauth2/te", &form).await,
            400,
            "ESIA-007014",
        );
        let (form, _) = te_form(
            "no-such-client",
            &signer,
            false,
            scope,
            &timestamp(0),
            "c",
            "",
        );
        assert_esia_json(
            &post(&idp, "/aas/oauth2/te", &form).await,
            401,
            "ESIA-007002",
        );
        let (mut form, _) = te_form(&client_id, &signer, false, scope, &timestamp(0), "c", "");
        for (k, v) in form.iter_mut() {
            if k == "grant_type" {
                *v = "password".into();
            }
        }
        assert_esia_json(
            &post(&idp, "/aas/oauth2/te", &form).await,
            400,
            "ESIA-007012",
        );
        // Not a form.
        let r = HttpResp::read(
            idp.http
                .post(idp.url("/aas/oauth2/te"))
                .body("{}")
                .header("content-type", "application/json")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_esia_json(&r, 400, "ESIA-007017");
        // The standard token endpoint does not accept an ESIA client.
        let r = post(
            &idp,
            "/token",
            &[
                ("grant_type".into(), "authorization_code".into()),
                ("client_id".into(), client_id.clone()),
                ("code".into(), "x".into()),
            ],
        )
        .await;
        assert_eq!(r.status, 401, "{}", r.body);
        // Each refusal is in the audit trail with its code, and nothing else was written.
        let codes = idp
            .sql("SELECT detail FROM audit_events WHERE kind = 'esia.request_refused' ORDER BY id");
        for code in [
            "ESIA-007002",
            "ESIA-007005",
            "ESIA-007006",
            "ESIA-007011",
            "ESIA-007012",
            "ESIA-007013",
            "ESIA-007014",
            "ESIA-007015",
            "ESIA-007017",
            "ESIA-007053",
            "ESIA-007055",
        ] {
            assert!(codes.contains(code), "no audit event for {code}: {codes}");
        }
        assert!(
            !codes.contains("client_secret\":"),
            "no secret in the audit trail"
        );
        assert_eq!(idp.sql("SELECT COUNT(*) FROM refresh_tokens").trim(), "0");
        idp.assert_alive("ESIA refusals").await;
    })
    .await;
}

/// A confirmed account with SNILS and an organisation: `is_tru`/`trusted`, the SNILS and the
/// organisations at /rs/prns by scope; a blocked account's token stops working.
#[tokio::test]
async fn esia_prns_person_data_of_a_confirmed_account() {
    for_each_backend(|mut idp| async move {
        const OGRN: &str = "1027700132195";
        let signer = Signer::new(KeyKind::Rsa, "esia-portal");
        let login = idp.user.login.clone();
        let out = idp
            .cli(&[
                "clients",
                "add",
                "--name",
                "ESIA portal",
                "--redirect-uri",
                REDIRECT_URI,
                "--esia-certificate",
                signer.cert.to_str().unwrap(),
                "--scope",
                "openid",
                "--scope",
                "fullname",
                "--scope",
                "snils",
                "--scope",
                "usr_org",
                "--scope",
                "contacts",
                "--scope",
                "id_doc",
                "--json",
            ])
            .await;
        let j: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
        let client_id = j["client_id"].as_str().unwrap().to_string();
        idp.cli(&[
            "users",
            "add-org",
            "--login",
            &login,
            "--ogrn",
            OGRN,
            "--name",
            "ПАО Сбербанк",
            "--role",
            "chief",
        ])
        .await;
        idp.cli(&[
            "users",
            "set-identifiers",
            "--login",
            &login,
            "--snils",
            "34567890123",
        ])
        .await;
        idp.cli(&[
            "users",
            "confirm",
            "--login",
            &login,
            "--by",
            "op-7",
            "--method",
            "in-person",
            "--force",
        ])
        .await;
        let oid = user_oid(&idp).await;

        let scope = "openid fullname snils usr_org contacts";
        let ac = Ac::legacy(&client_id, &signer, scope, &timestamp(0));
        let browser = Browser::new(&idp);
        let page = browser.navigate(&ac.url(&idp, "/aas/oauth2/ac")).await;
        let page = browser.sign_in(page, &login, &idp.user.password).await;
        let code = redirect_to(&page, REDIRECT_URI).code().to_string();
        let (form, _) = te_form(&client_id, &signer, false, scope, &timestamp(0), &code, "");
        let r = post(&idp, "/aas/oauth2/te", &form).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let t = r.json();
        let (_, c) = jwt_parts(t["id_token"].as_str().unwrap());
        assert_eq!(c["urn:esia:sbj"]["urn:esia:sbj:is_tru"], true, "{c}");
        let access = t["access_token"].as_str().unwrap().to_string();

        let p = get_bearer(&idp, &format!("/rs/prns/{oid}"), Some(&access))
            .await
            .json();
        assert_eq!(p["trusted"], true, "{p}");
        assert_eq!(p["snils"], "345-678-901 23", "{p}");
        assert_eq!(p["status"], "REGISTERED");
        assert!(p.get("inn").is_none());
        for path in ["orgs", "roles"] {
            let r = get_bearer(
                &idp,
                &format!("/rs/prns/{oid}/{path}?embed=(elements)"),
                Some(&access),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.body);
            let o = r.json();
            assert_eq!(o["size"], 1, "{o}");
            assert_eq!(o["elements"][0]["ogrn"], OGRN);
            assert_eq!(o["elements"][0]["chief"], true);
        }
        let ctts = get_bearer(
            &idp,
            &format!("/rs/prns/{oid}/ctts?embed=(elements)"),
            Some(&access),
        )
        .await
        .json();
        let types: Vec<&str> = ctts["elements"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["type"].as_str())
            .collect();
        assert!(types.contains(&"EML") && types.contains(&"MBT"), "{ctts}");
        let r = get_bearer(&idp, &format!("/rs/prns/{oid}/docs"), Some(&access)).await;
        assert_esia_json(&r, 403, "ESIA-007019");

        // Blocked: the token no longer reads anything.
        idp.cli(&["users", "block", "--login", &login]).await;
        let r = get_bearer(&idp, &format!("/rs/prns/{oid}"), Some(&access)).await;
        assert_esia_json(&r, 401, "ESIA-007020");
        idp.assert_alive("person data").await;
    })
    .await;
}

/// Refused consent on an ESIA authorization comes back in the ESIA shape (ESIA-007004, the
/// state echoed); an ESIA access token reads /userinfo for its own person, its `?oid=`-bound
/// scopes understood (issue 5).
#[tokio::test]
async fn esia_consent_refusal_and_userinfo_with_bound_scopes() {
    for_each_backend_with(&[("IDP_ESIA__ISSUER", ESIA_ISSUER)], |idp| async move {
        let signer = Signer::new(KeyKind::Rsa, "esia-portal-deny");
        let client_id = register(&idp, &signer).await;
        let oid = user_oid(&idp).await;
        let scope = "openid fullname";
        let ac = Ac::legacy(&client_id, &signer, scope, &timestamp(0));
        let browser = Browser::new(&idp);
        let page = browser.navigate(&ac.url(&idp, "/aas/oauth2/ac")).await;
        let page = browser
            .submit_login(&page, &idp.user.login, &idp.user.password)
            .await;
        assert!(page.is_consent_page(), "{}", page.describe());
        let page = browser.consent(page, "deny").await;
        assert_esia_redirect(&page, &ac, "ESIA-007004");
        let cb = redirect_to(&page, REDIRECT_URI);
        assert_eq!(cb.get("error"), Some("access_denied"));
        let audit = idp
            .sql("SELECT detail FROM audit_events WHERE kind = 'esia.request_refused' ORDER BY id");
        assert!(audit.contains("ESIA-007004"), "{audit}");

        // Allowed this time: the ESIA token's `fullname?oid=<oid>` releases the name at
        // /userinfo (the token names this very person).
        let ac = Ac::legacy(&client_id, &signer, scope, &timestamp(0));
        let page = browser.navigate(&ac.url(&idp, "/aas/oauth2/ac")).await;
        let page = if page.is_consent_page() {
            browser.consent(page, "allow").await
        } else {
            page
        };
        let code = redirect_to(&page, REDIRECT_URI).code().to_string();
        let (form, _) = te_form(&client_id, &signer, false, scope, &timestamp(0), &code, "");
        let r = post(&idp, "/aas/oauth2/te", &form).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let access = r.json()["access_token"].as_str().unwrap().to_string();
        assert_eq!(
            jwt_parts(&access).1["scope"],
            format!("openid fullname?oid={oid}")
        );
        let u = idp.userinfo_get(&access).await;
        assert_eq!(u.status, 200, "{}", u.body);
        let j = u.json();
        assert_eq!(j["family_name"], FAMILY_NAME, "{j}");
        assert!(j.get("email").is_none(), "no email scope: {j}");
    })
    .await;
}
