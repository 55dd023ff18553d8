//! Command line: scenarios, load shape, target, credentials, endpoint paths.

use std::str::FromStr;
use std::time::Duration;

use clap::Parser;

/// What one iteration of a virtual user does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scenario {
    /// GET the discovery document.
    Discovery,
    /// GET the JWK Set.
    Jwks,
    /// POST /token grant_type=client_credentials with client_secret_basic.
    ClientCredentials,
    /// POST /token grant_type=refresh_token; the returned refresh token is used next time.
    Refresh,
    /// POST /introspect with an access token obtained at start-up.
    Introspect,
    /// GET /userinfo with an access token obtained at start-up.
    Userinfo,
    /// New cookie jar: authorize -> login form -> consent -> code -> token (PKCE).
    FlowFresh,
    /// The virtual user's session: authorize -> code -> token (PKCE).
    FlowSso,
}

impl Scenario {
    pub const ALL: [Scenario; 8] = [
        Scenario::Discovery,
        Scenario::Jwks,
        Scenario::ClientCredentials,
        Scenario::Refresh,
        Scenario::Introspect,
        Scenario::Userinfo,
        Scenario::FlowFresh,
        Scenario::FlowSso,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Discovery => "discovery",
            Scenario::Jwks => "jwks",
            Scenario::ClientCredentials => "client-credentials",
            Scenario::Refresh => "refresh",
            Scenario::Introspect => "introspect",
            Scenario::Userinfo => "userinfo",
            Scenario::FlowFresh => "flow-fresh",
            Scenario::FlowSso => "flow-sso",
        }
    }

    /// Whether the scenario drives the browser flow (login form, consent) of the target.
    pub fn is_flow(self) -> bool {
        matches!(self, Scenario::FlowFresh | Scenario::FlowSso)
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let alias = match norm.as_str() {
            "cc" => "client-credentials",
            "fresh" => "flow-fresh",
            "sso" => "flow-sso",
            "refresh-token" => "refresh",
            "introspection" => "introspect",
            other => other,
        };
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == alias)
            .ok_or_else(|| {
                format!(
                    "unknown scenario `{s}` (known: all, {})",
                    Scenario::ALL.map(Scenario::name).join(", ")
                )
            })
    }
}

/// Parses `all` or a comma-separated list, keeping the given order, without duplicates.
pub fn parse_scenarios(list: &str) -> Result<Vec<Scenario>, String> {
    let mut out: Vec<Scenario> = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if part.eq_ignore_ascii_case("all") {
            for sc in Scenario::ALL {
                if !out.contains(&sc) {
                    out.push(sc);
                }
            }
            continue;
        }
        let sc: Scenario = part.parse()?;
        if !out.contains(&sc) {
            out.push(sc);
        }
    }
    if out.is_empty() {
        return Err("no scenario given".into());
    }
    Ok(out)
}

/// `500ms`, `10s`, `2m`, `1.5s` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration `{s}` (e.g. 500ms, 10s, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => return Err(format!("bad duration unit in `{s}` (ms, s, m)")),
    };
    if !secs.is_finite() || !(0.0..=24.0 * 3600.0).contains(&secs) {
        return Err(format!("duration `{s}` out of range (0 .. 24h)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Drives a running OpenID provider with concurrent virtual users and reports, per scenario,
/// throughput, p50/p90/p99 latency and errors. Only loopback targets unless
/// --allow-non-loopback.
#[derive(Parser, Debug, Clone)]
#[command(name = "loadgen", version)]
pub struct Args {
    /// Base URL of the provider (its issuer), e.g. http://127.0.0.1:8080.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Comma-separated scenarios, or `all`: discovery, jwks, client-credentials, refresh,
    /// introspect, userinfo, flow-fresh, flow-sso.
    #[arg(long, short = 's', default_value = "all")]
    pub scenarios: String,
    /// Concurrent virtual users (each runs one request or flow at a time).
    #[arg(long, short = 'c', default_value_t = 32)]
    pub vus: usize,
    /// Measured time per scenario (500ms, 10s, 1m).
    #[arg(long, short = 'd', default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Stop a scenario after this many iterations (whichever of this and --duration comes first).
    #[arg(long, short = 'n')]
    pub iterations: Option<u64>,
    /// Open loop: start this many iterations per second in total (spread over the users)
    /// instead of as many as possible. Latency then counts from each iteration's scheduled
    /// start, so time spent queueing behind a slow answer is included.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Unmeasured warm-up per scenario, after set-up.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Timeout of one HTTP request.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Runtime worker threads (default: the number of cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the report as JSON on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Allow a target that is not a loopback address.
    #[arg(long)]
    pub allow_non_loopback: bool,

    /// Client id (client_secret_basic when a secret is given, else a public client).
    #[arg(long, default_value = "")]
    pub client_id: String,
    /// Client secret (or the environment variable LOADGEN_CLIENT_SECRET).
    #[arg(long)]
    pub client_secret: Option<String>,
    /// Login of the test user (flows, and the start-up flows that obtain tokens).
    #[arg(long, default_value = "")]
    pub login: String,
    /// Password of the test user (or the environment variable LOADGEN_PASSWORD).
    #[arg(long, default_value = "")]
    pub password: String,
    /// The client's registered redirect URI (never contacted: the code is read from Location).
    #[arg(long, default_value = "https://rp.example.org/cb")]
    pub redirect_uri: String,
    /// Scope of the authorization requests.
    #[arg(long, default_value = "openid offline_access")]
    pub scope: String,
    /// Scope of the client_credentials requests (none by default).
    #[arg(long)]
    pub cc_scope: Option<String>,
    /// `prompt` for fresh flows and for the start-up flows that obtain refresh tokens (some
    /// providers, e.g. node-oidc-provider, issue refresh tokens only with prompt=consent).
    #[arg(long)]
    pub fresh_prompt: Option<String>,
    /// Use this refresh token as every virtual user's first one instead of running a flow
    /// (only sensible with one user or with a provider that does not rotate).
    #[arg(long)]
    pub refresh_token: Option<String>,
    /// Use this access token for introspect/userinfo instead of running a flow.
    #[arg(long)]
    pub access_token: Option<String>,

    /// Path of the discovery document; other endpoints default to what it lists.
    #[arg(long, default_value = "/.well-known/openid-configuration")]
    pub discovery_path: String,
    /// Path of the JWK Set (default: jwks_uri from discovery, else /jwks).
    #[arg(long)]
    pub jwks_path: Option<String>,
    /// Token endpoint path (default: from discovery, else /token).
    #[arg(long)]
    pub token_path: Option<String>,
    /// Authorization endpoint path (default: from discovery, else /authorize).
    #[arg(long)]
    pub authorize_path: Option<String>,
    /// Introspection endpoint path (default: from discovery, else /introspect).
    #[arg(long)]
    pub introspect_path: Option<String>,
    /// Userinfo endpoint path (default: from discovery, else /userinfo).
    #[arg(long)]
    pub userinfo_path: Option<String>,
}

/// The validated run configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub args: Args,
    pub base: url::Url,
    pub scenarios: Vec<Scenario>,
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

impl Config {
    /// Parses a command line (the first item is the program name).
    pub fn from_args<I, T>(argv: I) -> Result<Config, String>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        Config::new(args)
    }

    pub fn new(mut args: Args) -> Result<Config, String> {
        // Secrets may come from the environment so they stay out of `ps`.
        if args.client_secret.is_none() {
            args.client_secret = std::env::var("LOADGEN_CLIENT_SECRET")
                .ok()
                .filter(|s| !s.is_empty());
        }
        if args.password.is_empty() {
            args.password = std::env::var("LOADGEN_PASSWORD").unwrap_or_default();
        }
        let base = url::Url::parse(&args.url).map_err(|e| format!("--url: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err("--url: only http and https".into());
        }
        if !args.allow_non_loopback && !is_loopback(&base) {
            return Err(format!(
                "--url {base} is not a loopback address; pass --allow-non-loopback to load a remote host"
            ));
        }
        let scenarios = parse_scenarios(&args.scenarios)?;
        if args.vus == 0 || args.vus > 10_000 {
            return Err("--vus must be between 1 and 10000".into());
        }
        if args.duration.is_zero() && args.iterations.is_none() {
            return Err("give a non-zero --duration or --iterations".into());
        }
        if args
            .rate
            .is_some_and(|r| !r.is_finite() || !(1e-3..=1e7).contains(&r))
        {
            return Err("--rate must be a positive number of iterations per second".into());
        }
        if args.threads == Some(0) {
            return Err("--threads must be at least 1".into());
        }
        let needs_client = scenarios
            .iter()
            .any(|s| !matches!(s, Scenario::Discovery | Scenario::Jwks));
        if needs_client && args.client_id.is_empty() {
            return Err(format!(
                "--client-id is required for {}",
                scenarios
                    .iter()
                    .filter(|s| !matches!(s, Scenario::Discovery | Scenario::Jwks))
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if scenarios.contains(&Scenario::ClientCredentials) && args.client_secret.is_none() {
            return Err("client-credentials needs --client-secret (client_secret_basic)".into());
        }
        let needs_user = scenarios.iter().any(|s| {
            s.is_flow()
                || (*s == Scenario::Refresh && args.refresh_token.is_none())
                || (matches!(s, Scenario::Introspect | Scenario::Userinfo)
                    && args.access_token.is_none())
        });
        if needs_user && (args.login.is_empty() || args.password.is_empty()) {
            return Err(
                "--login and --password are required for the flows and for obtaining tokens \
                 (or pass --refresh-token / --access-token)"
                    .into(),
            );
        }
        url::Url::parse(&args.redirect_uri).map_err(|e| format!("--redirect-uri: {e}"))?;
        Ok(Config {
            args,
            base,
            scenarios,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration(" 3 s").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("10h").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("1e9").is_err());
    }

    #[test]
    fn scenario_names_and_aliases() {
        for sc in Scenario::ALL {
            assert_eq!(sc.name().parse::<Scenario>().unwrap(), sc);
        }
        assert_eq!(
            "CC".parse::<Scenario>().unwrap(),
            Scenario::ClientCredentials
        );
        assert_eq!("flow_sso".parse::<Scenario>().unwrap(), Scenario::FlowSso);
        let e = "nope".parse::<Scenario>().unwrap_err();
        assert!(e.contains("flow-fresh"), "{e}");
    }

    #[test]
    fn scenario_lists() {
        assert_eq!(parse_scenarios("all").unwrap(), Scenario::ALL.to_vec());
        assert_eq!(
            parse_scenarios("jwks, discovery,jwks").unwrap(),
            vec![Scenario::Jwks, Scenario::Discovery]
        );
        assert_eq!(
            parse_scenarios("refresh,all").unwrap()[..2],
            [Scenario::Refresh, Scenario::Discovery]
        );
        assert!(parse_scenarios(" , ").is_err());
        assert!(parse_scenarios("discovery,bogus").is_err());
    }

    #[test]
    fn full_command_line() {
        let c = Config::from_args([
            "loadgen",
            "--url",
            "http://127.0.0.1:3000",
            "-s",
            "cc,refresh,flow-fresh",
            "-c",
            "8",
            "-d",
            "2s",
            "-n",
            "1000",
            "--client-id",
            "conf-cc",
            "--client-secret",
            "s3cret",
            "--login",
            "user1",
            "--password",
            "pw",
            "--redirect-uri",
            "http://127.0.0.1:9999/cb",
            "--fresh-prompt",
            "consent",
            "--token-path",
            "/token",
            "--rate",
            "250.5",
            "--json",
        ])
        .unwrap();
        assert_eq!(
            c.scenarios,
            vec![
                Scenario::ClientCredentials,
                Scenario::Refresh,
                Scenario::FlowFresh
            ]
        );
        assert_eq!(c.args.vus, 8);
        assert_eq!(c.args.duration, Duration::from_secs(2));
        assert_eq!(c.args.iterations, Some(1000));
        assert_eq!(c.args.fresh_prompt.as_deref(), Some("consent"));
        assert_eq!(c.args.token_path.as_deref(), Some("/token"));
        assert_eq!(c.args.rate, Some(250.5));
        assert!(c.args.json);
        assert_eq!(c.base.as_str(), "http://127.0.0.1:3000/");
    }

    #[test]
    fn defaults_need_no_credentials_for_static_documents() {
        let c = Config::from_args(["loadgen", "-s", "discovery,jwks"]).unwrap();
        assert_eq!(c.args.vus, 32);
        assert_eq!(c.args.duration, Duration::from_secs(10));
        assert_eq!(c.args.discovery_path, "/.well-known/openid-configuration");
        assert!(c.args.jwks_path.is_none());
    }

    #[test]
    fn refuses_what_cannot_run() {
        let e = |argv: &[&str]| {
            let mut v = vec!["loadgen"];
            v.extend_from_slice(argv);
            Config::from_args(v).unwrap_err()
        };
        assert!(e(&["--url", "http://10.0.0.1:8080", "-s", "jwks"]).contains("loopback"));
        assert!(e(&["--url", "ftp://127.0.0.1/", "-s", "jwks"]).contains("http"));
        assert!(e(&["-s", "refresh"]).contains("--client-id"));
        assert!(e(&["-s", "cc", "--client-id", "x"]).contains("--client-secret"));
        assert!(e(&["-s", "flow-sso", "--client-id", "x"]).contains("--login"));
        assert!(e(&["-s", "jwks", "-c", "0"]).contains("--vus"));
        assert!(e(&["-s", "jwks", "--rate", "0"]).contains("--rate"));
        assert!(e(&["-s", "jwks", "-d", "0s"]).contains("--iterations"));
        assert!(e(&["-s", "jwks", "--bogus"]).contains("--bogus"));
        // A token given on the command line replaces the start-up flow.
        Config::from_args([
            "loadgen",
            "-s",
            "introspect,refresh",
            "--client-id",
            "x",
            "--access-token",
            "at",
            "--refresh-token",
            "rt",
        ])
        .unwrap();
        Config::from_args([
            "loadgen",
            "--url",
            "http://localhost:1",
            "-s",
            "jwks",
            "-d",
            "0s",
            "-n",
            "5",
        ])
        .unwrap();
    }
}
