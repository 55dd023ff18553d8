//! The load generator against a real server: every scenario runs for about a second with a
//! few virtual users and must finish without a single error (a non-2xx or malformed answer,
//! a broken flow, a rotation that did not carry).

use conformance_tests::loadgen::{self, Config, Scenario};

use super::harness::{for_each_backend_with, AuthMethod, ClientSpec, REDIRECT_URI};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loadgen_every_scenario_without_errors() {
    // Every virtual user signs in from 127.0.0.1: lift the per-address sign-in limits.
    let env = [
        ("IDP_LOCKOUT__IP_MAX_ATTEMPTS", "1000000000"),
        ("IDP_LOCKOUT__LOGIN_TX_IP_MAX", "1000000000"),
    ];
    for_each_backend_with(&env, |idp| async move {
        let client = idp
            .add_client(ClientSpec {
                name: "Loadgen RP",
                method: AuthMethod::Basic,
                grant_types: &["authorization_code", "refresh_token", "client_credentials"],
                ..Default::default()
            })
            .await;
        // `--flag=value`: a generated secret may begin with `-`.
        let secret = format!("--client-secret={}", client.secret.clone().unwrap());
        let password = format!("--password={}", idp.user.password);
        let cfg = Config::from_args([
            "loadgen",
            "--url",
            &idp.base,
            "-s",
            "all",
            "-c",
            "3",
            "-d",
            "1s",
            "--client-id",
            &client.id,
            &secret,
            "--login",
            &idp.user.login,
            &password,
            "--redirect-uri",
            REDIRECT_URI,
        ])
        .unwrap();
        let report = loadgen::run(&cfg, &|l: &str| eprintln!("{l}"))
            .await
            .unwrap();
        eprint!("{}", report.render_text());
        let names: Vec<&str> = report
            .scenarios
            .iter()
            .map(|s| s.scenario.as_str())
            .collect();
        assert_eq!(names, Scenario::ALL.map(Scenario::name).to_vec());
        for s in &report.scenarios {
            assert_eq!(
                s.errors, 0,
                "{}: errors {:?}, e.g. {:?}",
                s.scenario, s.error_kinds, s.error_samples
            );
            assert_eq!(s.reseeds, 0, "{}: the refresh chain broke", s.scenario);
            assert!(s.ok > 0, "{}: no successful iteration", s.scenario);
            let per = match s.scenario.as_str() {
                // authorize -> login page -> login POST (-> consent) -> token
                "flow-fresh" => 4.0..=5.0,
                // authorize -> token: the session and the stored consent carry.
                "flow-sso" => 2.0..=2.0,
                _ => 1.0..=1.0,
            };
            assert!(
                per.contains(&s.requests_per_iteration),
                "{}: {} requests per iteration",
                s.scenario,
                s.requests_per_iteration
            );
        }
    })
    .await;
}
