//! Starts a real `idp` binary per test (fresh database, fresh port) and offers raw HTTP
//! helpers for the token, userinfo, introspection and revocation endpoints.
//!
//! Backends: SQLite + in-process ephemeral store always; Postgres + Redis when both
//! `TEST_DATABASE_URL` and `TEST_REDIS_URL` are set (a fresh database per server).

use std::collections::BTreeSet;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reqwest::header::HeaderMap;
use serde_json::Value;

/// The default client's redirect URI (never contacted: the suite reads the Location header).
pub const REDIRECT_URI: &str = "https://rp.example.org/cb";
/// The default client's registered post-logout redirect URI.
pub const POST_LOGOUT_URI: &str = "https://rp.example.org/logged-out";
/// A URI registered nowhere.
pub const ATTACKER_URI: &str = "https://attacker.example.net/cb";

pub const LOGIN: &str = "ivan@example.ru";
pub const PASSWORD: &str = "Correct-Horse-7!";
pub const GIVEN_NAME: &str = "Ivan";
pub const FAMILY_NAME: &str = "Petrov";
pub const EMAIL: &str = "ivan@example.ru";
pub const PHONE: &str = "+79001234567";
pub const BIRTHDATE: &str = "1990-05-17";
pub const GENDER: &str = "male";
pub const ADDRESS: &str = "Moscow, Tverskaya 1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file + in-process ephemeral store.
    Sqlite,
    /// A fresh Postgres database + Redis with a unique key prefix.
    Postgres,
}

/// The backends available in this environment.
pub fn backends() -> Vec<Backend> {
    let mut v = vec![Backend::Sqlite];
    if std::env::var("TEST_DATABASE_URL").is_ok_and(|s| !s.is_empty())
        && std::env::var("TEST_REDIS_URL").is_ok_and(|s| !s.is_empty())
    {
        v.push(Backend::Postgres);
    }
    v
}

/// Runs `f` against a fresh server on every available backend.
pub async fn for_each_backend<F, Fut>(f: F)
where
    F: Fn(Idp) -> Fut,
    Fut: Future<Output = ()>,
{
    for_each_backend_with(&[], f).await;
}

/// Same, with extra `IDP_*` environment for the server and the CLI.
pub async fn for_each_backend_with<F, Fut>(extra_env: &[(&str, &str)], f: F)
where
    F: Fn(Idp) -> Fut,
    Fut: Future<Output = ()>,
{
    for b in backends() {
        eprintln!("=== backend {b:?}");
        let idp = Idp::start(b, extra_env).await;
        f(idp).await;
    }
}

/// Locates the `idp` binary: `IDP_BIN`, else next to this test binary
/// (`<target>/<profile>/deps/conformance-*` -> `<target>/<profile>/idp`), else
/// `$CARGO_TARGET_DIR` or `<workspace>/target` + `/debug/idp`.
pub fn idp_bin() -> PathBuf {
    if let Ok(p) = std::env::var("IDP_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "IDP_BIN={} does not exist", p.display());
        return p;
    }
    let exe_name = format!("idp{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join(&exe_name));
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let target = match std::env::var("CARGO_TARGET_DIR")
        .ok()
        .or(option_env!("CARGO_TARGET_DIR").map(String::from))
    {
        Some(t) if Path::new(&t).is_absolute() => PathBuf::from(t),
        Some(t) => workspace.join(t),
        None => workspace.join("target"),
    };
    candidates.push(target.join("debug").join(&exe_name));
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!("the idp binary was not found (looked at {candidates:?}); build it first: cargo build -p idp");
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf).unwrap();
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn random_b64(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut buf).unwrap();
    URL_SAFE_NO_PAD.encode(buf)
}

/// How a client authenticates at the token endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Basic,
    Post,
    None,
}

impl AuthMethod {
    fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Basic => "client_secret_basic",
            AuthMethod::Post => "client_secret_post",
            AuthMethod::None => "none",
        }
    }
}

/// A client registered through `idp clients add --json`.
#[derive(Clone, Debug)]
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
    pub method: AuthMethod,
    pub redirect_uris: Vec<String>,
}

/// Options of `idp clients add`.
pub struct ClientSpec<'a> {
    pub name: &'a str,
    pub redirect_uris: &'a [&'a str],
    pub post_logout_redirect_uris: &'a [&'a str],
    pub method: AuthMethod,
    pub grant_types: &'a [&'a str],
    pub scopes: &'a [&'a str],
    /// `--id-token-alg` (the client's `id_token_signed_response_alg`).
    pub id_token_alg: Option<&'a str>,
}

impl Default for ClientSpec<'_> {
    fn default() -> Self {
        ClientSpec {
            name: "Conformance RP",
            redirect_uris: &[REDIRECT_URI],
            post_logout_redirect_uris: &[POST_LOGOUT_URI],
            method: AuthMethod::Basic,
            grant_types: &[],
            scopes: &[],
            id_token_alg: None,
        }
    }
}

/// A user created through `idp users add --json`.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub sub: String,
    pub login: String,
    pub password: String,
}

/// An HTTP answer, read completely.
#[derive(Debug)]
pub struct HttpResp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl HttpResp {
    pub async fn read(r: reqwest::Response) -> HttpResp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let body = r.text().await.unwrap_or_default();
        HttpResp {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "expected a JSON body (HTTP {}), got {e}: {}",
                self.status, self.body
            )
        })
    }

    /// Asserts an OAuth error answer: status and `error` code.
    pub fn assert_oauth_error(&self, what: &str, status: u16, code: &str) {
        assert_eq!(
            self.status, status,
            "{what}: expected HTTP {status} {code}, got HTTP {} body {}",
            self.status, self.body
        );
        let j = self.json();
        assert_eq!(
            j["error"], code,
            "{what}: expected error={code}, got body {}",
            self.body
        );
        if let Some(d) = j.get("error_description").and_then(Value::as_str) {
            // RFC 6749 §5.2: %x20-21 / %x23-5B / %x5D-7E
            assert!(
                d.chars()
                    .all(|c| matches!(c as u32, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
                "{what}: error_description has characters outside RFC 6749 §5.2: {d:?}"
            );
        }
    }
}

struct PgDb {
    admin_url: String,
    name: String,
}

/// A running `idp serve` with its own database, a default client and a test user.
pub struct Idp {
    pub backend: Backend,
    /// The issuer, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// Plain HTTP client: no redirects, no cookies.
    pub http: reqwest::Client,
    /// Default client: client_secret_basic, `REDIRECT_URI`, `POST_LOGOUT_URI`.
    pub client: TestClient,
    pub user: TestUser,
    env: Vec<(String, String)>,
    child: Option<tokio::process::Child>,
    dir: tempfile::TempDir,
    pg: Option<PgDb>,
}

pub fn plain_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = std::process::Command::new("psql")
        .arg(url)
        .args(["-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

impl Idp {
    /// Starts a fresh server on `backend`; `extra_env` are additional `IDP_*` settings.
    pub async fn start(backend: Backend, extra_env: &[(&str, &str)]) -> Idp {
        let dir = tempfile::Builder::new()
            .prefix("propusk-conf-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut env: Vec<(String, String)> = vec![
            ("IDP_LISTEN".into(), format!("127.0.0.1:{port}")),
            ("IDP_ISSUER".into(), base.clone()),
            ("IDP_DEV".into(), "true".into()),
            (
                "IDP_DATA_DIR".into(),
                dir.path().join("data").display().to_string(),
            ),
            // Cheaper argon2 than production: the suite tests the protocol, and two cores
            // are shared by many servers running in parallel.
            ("IDP_PASSWORD__MEMORY_KIB".into(), "4096".into()),
            ("IDP_PASSWORD__ITERATIONS".into(), "1".into()),
            ("IDP_WORKERS".into(), "2".into()),
        ];
        let mut pg = None;
        match backend {
            Backend::Sqlite => {
                env.push((
                    "IDP_DATABASE_URL".into(),
                    format!("sqlite://{}", dir.path().join("propusk.db").display()),
                ));
            }
            Backend::Postgres => {
                let admin_url = std::env::var("TEST_DATABASE_URL").unwrap();
                let redis_url = std::env::var("TEST_REDIS_URL").unwrap();
                let name = format!("propusk_c_{}", random_hex(8));
                psql(&admin_url, &format!("CREATE DATABASE {name}")).unwrap_or_else(|e| {
                    panic!("cannot create database {name} through TEST_DATABASE_URL: {e}")
                });
                let mut u = url::Url::parse(&admin_url).unwrap();
                u.set_path(&format!("/{name}"));
                env.push(("IDP_DATABASE_URL".into(), u.to_string()));
                env.push(("IDP_DB_POOL_SIZE".into(), "4".into()));
                env.push(("IDP_REDIS_URL".into(), redis_url));
                env.push(("IDP_REDIS_PREFIX".into(), format!("{name}:")));
                pg = Some(PgDb { admin_url, name });
            }
        }
        for (k, v) in extra_env {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v.to_string()));
        }
        let mut idp = Idp {
            backend,
            base,
            http: plain_http(),
            client: TestClient {
                id: String::new(),
                secret: None,
                method: AuthMethod::Basic,
                redirect_uris: vec![],
            },
            user: TestUser {
                sub: String::new(),
                login: String::new(),
                password: String::new(),
            },
            env,
            child: None,
            dir,
            pg,
        };
        idp.cli(&["migrate"]).await;
        idp.client = idp.add_client(ClientSpec::default()).await;
        idp.user = idp
            .add_user(
                LOGIN,
                PASSWORD,
                &[
                    ("--given-name", GIVEN_NAME),
                    ("--family-name", FAMILY_NAME),
                    ("--email", EMAIL),
                    ("--phone", PHONE),
                    ("--birthdate", BIRTHDATE),
                    ("--gender", GENDER),
                    ("--address", ADDRESS),
                ],
            )
            .await;
        idp.spawn().await;
        idp
    }

    fn command(&self) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(idp_bin());
        c.current_dir(self.dir.path());
        for (k, _) in std::env::vars() {
            if k.starts_with("IDP_") {
                c.env_remove(k);
            }
        }
        c.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c.env(
            "RUST_LOG",
            std::env::var("IDP_TEST_LOG").unwrap_or_else(|_| "info".into()),
        );
        c.env("NO_COLOR", "1");
        c
    }

    /// Runs an `idp` subcommand; panics with its output on failure; returns stdout.
    pub async fn cli(&self, args: &[&str]) -> String {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "`idp {}` failed ({}):\nstdout: {stdout}\nstderr: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }

    /// Runs an `idp` subcommand with extra (or, with an empty value, removed) environment
    /// variables; returns (success, stdout, stderr) without judging.
    pub async fn cli_with(&self, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
        let mut c = self.command();
        for (k, v) in env {
            if v.is_empty() {
                c.env_remove(k);
            } else {
                c.env(k, v);
            }
        }
        let out = c.args(args).stdin(Stdio::null()).output().await.unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The data directory of this server (dev mode keeps its generated master key there).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The kinds of the audit events written so far, oldest first.
    pub fn audit_kinds(&self) -> Vec<String> {
        self.sql("SELECT kind FROM audit_events ORDER BY id")
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Runs one SQL query on this server's database (sqlite3 or psql CLI); returns its
    /// output, one row per line (columns separated by `|`).
    pub fn sql(&self, query: &str) -> String {
        let url = self
            .env
            .iter()
            .find(|(k, _)| k == "IDP_DATABASE_URL")
            .map(|(_, v)| v.clone())
            .unwrap();
        let out = match url.strip_prefix("sqlite://") {
            Some(path) => std::process::Command::new("sqlite3")
                .args([path, query])
                .output()
                .unwrap(),
            None => std::process::Command::new("psql")
                .args([url.as_str(), "-At", "-v", "ON_ERROR_STOP=1", "-c", query])
                .output()
                .unwrap(),
        };
        assert!(
            out.status.success(),
            "query failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Starts another `idp serve` on the same database and Redis (another node behind the
    /// same issuer), on its own port.
    pub async fn start_node(&self) -> Node {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let log = self.dir.path().join(format!("node-{port}.stderr"));
        let child = self
            .command()
            .env("IDP_LISTEN", format!("127.0.0.1:{port}"))
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let node = Node { base, child, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = self
                .http
                .get(format!("{}/health", node.base))
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200);
            if ok {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "second node did not start: {}",
                std::fs::read_to_string(&node.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn last_json(stdout: &str) -> Value {
        let line = stdout
            .lines()
            .rev()
            .find(|l| l.trim_start().starts_with('{'))
            .unwrap_or_else(|| panic!("no JSON in CLI output: {stdout}"));
        serde_json::from_str(line).unwrap_or_else(|e| panic!("bad JSON from the CLI ({e}): {line}"))
    }

    pub async fn add_client(&self, spec: ClientSpec<'_>) -> TestClient {
        let mut args: Vec<String> = vec![
            "clients".into(),
            "add".into(),
            "--name".into(),
            spec.name.into(),
        ];
        for u in spec.redirect_uris {
            args.extend(["--redirect-uri".into(), u.to_string()]);
        }
        for u in spec.post_logout_redirect_uris {
            args.extend(["--post-logout-redirect-uri".into(), u.to_string()]);
        }
        args.extend(["--auth-method".into(), spec.method.as_str().into()]);
        for g in spec.grant_types {
            args.extend(["--grant-type".into(), g.to_string()]);
        }
        for s in spec.scopes {
            args.extend(["--scope".into(), s.to_string()]);
        }
        if let Some(a) = spec.id_token_alg {
            args.extend(["--id-token-alg".into(), a.to_string()]);
        }
        args.push("--json".into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let j = Self::last_json(&self.cli(&refs).await);
        let id = j["client_id"]
            .as_str()
            .unwrap_or_else(|| panic!("clients add: no client_id in {j}"))
            .to_string();
        let secret = j["client_secret"].as_str().map(str::to_string);
        if spec.method != AuthMethod::None {
            assert!(
                secret.is_some(),
                "clients add: a confidential client must get a secret: {j}"
            );
        }
        TestClient {
            id,
            secret,
            method: spec.method,
            redirect_uris: spec.redirect_uris.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub async fn add_user(&self, login: &str, password: &str, extra: &[(&str, &str)]) -> TestUser {
        let mut args = vec!["users", "add", "--login", login, "--password", password];
        for (k, v) in extra {
            args.push(k);
            args.push(v);
        }
        args.push("--json");
        let j = Self::last_json(&self.cli(&args).await);
        let sub = j["sub"]
            .as_str()
            .unwrap_or_else(|| panic!("users add: no sub in {j}"))
            .to_string();
        assert!(j.get("oid").is_some(), "users add: no oid in {j}");
        TestUser {
            sub,
            login: login.into(),
            password: password.into(),
        }
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join("idp.stderr")
    }

    /// The server's stderr so far (for failure messages).
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.stderr_path()).unwrap_or_default()
    }

    fn log_tail(&self) -> String {
        let log = self.server_log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    async fn spawn(&mut self) {
        let stderr = std::fs::File::create(self.stderr_path()).unwrap();
        let stdout = std::fs::File::create(self.dir.path().join("idp.stdout")).unwrap();
        let child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let url = self.url("/.well-known/openid-configuration");
        // Generous: the first start generates an RSA key, and CI shares two cores.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "idp serve exited early ({status}) on {:?}; stderr:\n{}",
                    self.backend,
                    self.server_log()
                );
            }
            if let Ok(r) = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                if r.status().as_u16() == 200 {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "idp serve did not answer 200 at {url} within 60 s on {:?}; stderr:\n{}",
                    self.backend,
                    self.server_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Asserts the process is alive and discovery still answers 200.
    pub async fn assert_alive(&mut self, after: &str) {
        assert!(
            self.alive(),
            "the server process died after {after}; stderr:\n{}",
            self.log_tail()
        );
        let r = self
            .http
            .get(self.url("/.well-known/openid-configuration"))
            .send()
            .await;
        match r {
            Ok(r) if r.status().as_u16() == 200 => {}
            Ok(r) => panic!("discovery answered {} after {after}", r.status()),
            Err(e) => panic!(
                "discovery failed after {after}: {e}; stderr:\n{}",
                self.log_tail()
            ),
        }
        let log = self.server_log();
        assert!(
            !log.contains("panicked at"),
            "the server logged a panic after {after}:\n{}",
            self.log_tail()
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Moves the server's clock forward (`danger_test_clock`, dev mode only).
    pub async fn advance_clock(&self, secs: i64) {
        let r = self
            .http
            .post(self.url("/dev/clock/advance"))
            .form(&[("secs", secs.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{:?}", r.text().await);
    }

    pub async fn discovery(&self) -> Value {
        HttpResp::read(
            self.http
                .get(self.url("/.well-known/openid-configuration"))
                .send()
                .await
                .unwrap(),
        )
        .await
        .json()
    }

    pub async fn jwks(&self) -> Value {
        HttpResp::read(self.http.get(self.url("/jwks")).send().await.unwrap())
            .await
            .json()
    }

    /// POSTs a form to `path` with the client's authentication added.
    pub async fn post_client_auth(
        &self,
        path: &str,
        client: &TestClient,
        form: &[(&str, &str)],
    ) -> HttpResp {
        let mut form: Vec<(String, String)> = form
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut req = self.http.post(self.url(path));
        match client.method {
            AuthMethod::Basic => {
                req = req.header(
                    "Authorization",
                    basic_auth(&client.id, client.secret.as_deref().unwrap_or("")),
                );
            }
            AuthMethod::Post => {
                form.push(("client_id".into(), client.id.clone()));
                form.push((
                    "client_secret".into(),
                    client.secret.clone().unwrap_or_default(),
                ));
            }
            AuthMethod::None => form.push(("client_id".into(), client.id.clone())),
        }
        HttpResp::read(req.form(&form).send().await.unwrap()).await
    }

    pub async fn exchange_code(
        &self,
        client: &TestClient,
        code: &str,
        verifier: &str,
        redirect_uri: &str,
    ) -> HttpResp {
        self.post_client_auth(
            "/token",
            client,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("code_verifier", verifier),
                ("redirect_uri", redirect_uri),
            ],
        )
        .await
    }

    pub async fn refresh(&self, client: &TestClient, refresh_token: &str) -> HttpResp {
        self.post_client_auth(
            "/token",
            client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }

    pub async fn introspect(&self, client: &TestClient, token: &str) -> HttpResp {
        self.post_client_auth("/introspect", client, &[("token", token)])
            .await
    }

    pub async fn revoke(&self, client: &TestClient, token: &str) -> HttpResp {
        self.post_client_auth("/revoke", client, &[("token", token)])
            .await
    }

    pub async fn userinfo_get(&self, access_token: &str) -> HttpResp {
        HttpResp::read(
            self.http
                .get(self.url("/userinfo"))
                .bearer_auth(access_token)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn userinfo_post_header(&self, access_token: &str) -> HttpResp {
        HttpResp::read(
            self.http
                .post(self.url("/userinfo"))
                .bearer_auth(access_token)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("")
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn userinfo_post_body(&self, access_token: &str) -> HttpResp {
        HttpResp::read(
            self.http
                .post(self.url("/userinfo"))
                .form(&[("access_token", access_token)])
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            // Reap without blocking the runtime for long.
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "--- idp stderr ({:?}, {}) ---\n{}\n--- end of idp stderr ---",
                self.backend,
                self.base,
                self.log_tail()
            );
        }
        if let Some(pg) = self.pg.take() {
            if let Err(e) = psql(
                &pg.admin_url,
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg.name),
            ) {
                eprintln!("warning: could not drop database {}: {e}", pg.name);
            }
            let redis = std::env::var("TEST_REDIS_URL").unwrap_or_default();
            // Best effort: remove this server's Redis keys (they also expire on their own).
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "command -v redis-cli >/dev/null && redis-cli -u '{redis}' --scan --pattern '{}:*' | xargs -r redis-cli -u '{redis}' DEL >/dev/null",
                    pg.name
                ))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Another node of a deployment (see [`Idp::start_node`]); killed when dropped.
pub struct Node {
    pub base: String,
    child: tokio::process::Child,
    log: PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- second node stderr ---\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

pub fn basic_auth(id: &str, secret: &str) -> String {
    // RFC 6749 §2.3.1: form-urlencode both parts before base64.
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

// ---------------------------------------------------------------- PKCE and JWT helpers

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = random_b64(32);
    let challenge =
        URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

pub fn b64url_decode(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|e| panic!("not base64url ({e}): {s}"))
}

/// Header and payload of a compact JWS, not verified.
pub fn jwt_parts(jwt: &str) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS: {jwt}");
    let h = serde_json::from_slice(&b64url_decode(parts[0])).unwrap();
    let p = serde_json::from_slice(&b64url_decode(parts[1])).unwrap();
    (h, p)
}

/// Verifies an ES256 compact JWS against a JWK Set (by `kid`); returns the payload.
pub fn verify_es256(jwt: &str, jwks: &Value) -> Value {
    let (h, p) = jwt_parts(jwt);
    assert_eq!(h["alg"], "ES256", "JWS alg must be ES256: {h}");
    let kid = h["kid"]
        .as_str()
        .unwrap_or_else(|| panic!("JWS header has no kid: {h}"));
    let keys = jwks["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("JWKS without keys: {jwks}"));
    let jwk = keys
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in JWKS {jwks}"));
    assert_eq!(jwk["kty"], "EC", "{jwk}");
    assert_eq!(jwk["crv"], "P-256", "{jwk}");
    let mut point = vec![4u8];
    point.extend(b64url_decode(jwk["x"].as_str().unwrap()));
    point.extend(b64url_decode(jwk["y"].as_str().unwrap()));
    let (signing_input, sig) = jwt.rsplit_once('.').unwrap();
    let key =
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point);
    key.verify(signing_input.as_bytes(), &b64url_decode(sig))
        .unwrap_or_else(|_| panic!("ES256 signature does not verify with kid {kid}"));
    p
}

/// `at_hash`: left half of SHA-256 of the access token, base64url (OIDC Core §3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    let d = <sha2::Sha256 as sha2::Digest>::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&d[..16])
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Standard ID token checks (OIDC Core §3.1.3.7, conformance `PerformStandardIdTokenChecks`).
/// Verifies the signature against the server's JWKS; returns the claims.
pub async fn check_id_token(
    idp: &Idp,
    client: &TestClient,
    id_token: &str,
    nonce: Option<&str>,
    access_token: Option<&str>,
) -> Value {
    let jwks = idp.jwks().await;
    let c = verify_es256(id_token, &jwks);
    assert_eq!(c["iss"], idp.base.as_str(), "id_token iss: {c}");
    let aud_ok = c["aud"] == client.id.as_str()
        || c["aud"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == client.id.as_str()));
    assert!(
        aud_ok,
        "id_token aud must contain the client id {}: {c}",
        client.id
    );
    if c["aud"].is_array() && c["aud"].as_array().is_some_and(|a| a.len() > 1) {
        assert_eq!(
            c["azp"],
            client.id.as_str(),
            "multiple audiences need azp: {c}"
        );
    }
    let now = now_secs();
    let exp = c["exp"]
        .as_i64()
        .unwrap_or_else(|| panic!("id_token exp must be a number: {c}"));
    let iat = c["iat"]
        .as_i64()
        .unwrap_or_else(|| panic!("id_token iat must be a number: {c}"));
    assert!(exp > now, "id_token already expired: {c}");
    assert!(
        iat <= now + 5 && iat > now - 300,
        "id_token iat out of range: {c}"
    );
    assert!(
        c["sub"]
            .as_str()
            .is_some_and(|s| !s.is_empty() && s.len() <= 255),
        "id_token sub: {c}"
    );
    if let Some(at) = c.get("auth_time") {
        let at = at
            .as_i64()
            .unwrap_or_else(|| panic!("auth_time must be a number: {c}"));
        assert!(at <= now + 5, "auth_time in the future: {c}");
    }
    if let Some(u) = c.get("updated_at") {
        assert!(
            u.as_i64().is_some_and(|u| u <= now + 5),
            "updated_at must be a past number: {c}"
        );
    }
    match nonce {
        Some(n) => assert_eq!(c["nonce"], n, "id_token nonce: {c}"),
        None => assert!(
            c.get("nonce").is_none(),
            "no nonce was sent, yet the id_token has one: {c}"
        ),
    }
    assert!(c["acr"].is_string(), "design: acr is always set: {c}");
    assert!(
        c["amr"].as_array().is_some_and(|a| !a.is_empty()),
        "design: amr is always set: {c}"
    );
    if let (Some(at), Some(h)) = (access_token, c.get("at_hash")) {
        assert_eq!(
            h,
            &Value::String(at_hash(at)),
            "at_hash does not match the access token"
        );
    }
    c
}

/// Checks a successful token response (conformance token-endpoint checks) and returns its JSON.
pub fn check_token_response(r: &HttpResp, what: &str) -> Value {
    assert_eq!(
        r.status, 200,
        "{what}: token endpoint answered HTTP {}: {}",
        r.status, r.body
    );
    let cc = r.header("cache-control").unwrap_or_default();
    assert!(
        cc.contains("no-store"),
        "{what}: token response needs Cache-Control: no-store, got {cc:?}"
    );
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json"),
        "{what}: token response must be JSON: {:?}",
        r.header("content-type")
    );
    let j = r.json();
    assert!(
        j["access_token"].as_str().is_some_and(|s| !s.is_empty()),
        "{what}: no access_token: {j}"
    );
    assert!(
        j["token_type"]
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer")),
        "{what}: token_type: {j}"
    );
    assert!(
        j["expires_in"].as_i64().is_some_and(|e| e > 0),
        "{what}: expires_in must be a positive number: {j}"
    );
    if let Some(rt) = j.get("refresh_token") {
        let rt = rt
            .as_str()
            .unwrap_or_else(|| panic!("{what}: refresh_token must be a string: {j}"));
        assert!(
            rt.chars().all(|c| (' '..='~').contains(&c)) && !rt.is_empty(),
            "{what}: refresh_token has characters outside VSCHAR"
        );
    }
    j
}

/// All `key=value` query pairs of a URL.
pub fn query_map(u: &url::Url) -> std::collections::BTreeMap<String, String> {
    u.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Distinct kids of a JWKS (asserting every key has one and none repeats).
pub fn jwks_kids(jwks: &Value) -> BTreeSet<String> {
    let keys = jwks["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("JWKS must have a keys array: {jwks}"));
    assert!(!keys.is_empty(), "JWKS is empty");
    let mut kids = BTreeSet::new();
    for k in keys {
        let kid = k["kid"]
            .as_str()
            .unwrap_or_else(|| panic!("every JWK needs a kid: {k}"));
        assert!(
            kids.insert(kid.to_string()),
            "kid {kid} appears twice in JWKS"
        );
        assert!(
            k.get("d").is_none() && k.get("p").is_none(),
            "JWKS leaks private key material: {k}"
        );
    }
    kids
}
