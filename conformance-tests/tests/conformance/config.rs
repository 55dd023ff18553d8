//! `oidcc-config-certification-test-plan` and the logout discovery module.

use serde_json::Value;

use super::harness::{self, for_each_backend, HttpResp, Idp};

async fn fetch_discovery(idp: &Idp) -> Value {
    let r = HttpResp::read(
        idp.http
            .get(idp.url("/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200, "discovery: HTTP {}", r.status);
    let ct = r.header("content-type").unwrap_or_default();
    assert!(
        ct.starts_with("application/json"),
        "discovery content type: {ct:?}"
    );
    let j = r.json();
    assert!(j.is_object(), "discovery must be a JSON object");
    j
}

fn strings(j: &Value, field: &str) -> Vec<String> {
    let a = j[field]
        .as_array()
        .unwrap_or_else(|| panic!("discovery `{field}` must be an array: {}", j[field]));
    a.iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("`{field}` must hold strings: {v}"))
                .to_string()
        })
        .collect()
}

/// An endpoint URL: valid, same scheme and origin as the issuer, no fragment.
///
/// The conformance suite requires every endpoint to be https. A loopback test server
/// runs on plain http (dev mode), so we assert the endpoint uses the issuer's scheme and
/// origin instead; outside dev mode the server refuses a non-https issuer at start-up.
fn endpoint(j: &Value, field: &str, issuer: &url::Url) -> url::Url {
    let s = j[field]
        .as_str()
        .unwrap_or_else(|| panic!("discovery must have `{field}`"));
    let u = url::Url::parse(s).unwrap_or_else(|e| panic!("`{field}` is not a URL ({e}): {s}"));
    assert_eq!(
        u.scheme(),
        issuer.scheme(),
        "`{field}` must use the issuer's scheme: {s}"
    );
    assert_eq!(
        u.origin(),
        issuer.origin(),
        "`{field}` should be served by the issuer: {s}"
    );
    assert!(u.fragment().is_none(), "`{field}` must not have a fragment");
    u
}

#[tokio::test]
async fn oidcc_discovery_endpoint_verification() {
    for_each_backend(|idp| async move {
        let j = fetch_discovery(&idp).await;
        // CheckDiscEndpointIssuer: issuer equals the URL the document was fetched under.
        assert_eq!(
            j["issuer"],
            idp.base.as_str(),
            "issuer must equal the base URL"
        );
        let issuer = url::Url::parse(&idp.base).unwrap();
        assert!(issuer.query().is_none() && issuer.fragment().is_none());
        for f in [
            "authorization_endpoint",
            "token_endpoint",
            "userinfo_endpoint",
            "jwks_uri",
            "end_session_endpoint",
            "introspection_endpoint",
            "revocation_endpoint",
        ] {
            endpoint(&j, f, &issuer);
        }
        if j.get("registration_endpoint").is_some() {
            endpoint(&j, "registration_endpoint", &issuer);
        }
        assert!(
            strings(&j, "response_types_supported").contains(&"code".into()),
            "response_types_supported must contain code"
        );
        let subjects = strings(&j, "subject_types_supported");
        assert!(
            !subjects.is_empty() && subjects.iter().all(|s| s == "public" || s == "pairwise"),
            "subject_types_supported: {subjects:?}"
        );
        let algs = strings(&j, "id_token_signing_alg_values_supported");
        assert!(
            algs.contains(&"ES256".into()),
            "id_token_signing_alg_values_supported must contain ES256: {algs:?}"
        );
        assert!(
            !algs.contains(&"none".into()),
            "unsigned ID tokens must not be offered with the code flow only: {algs:?}"
        );
        if j.get("userinfo_signing_alg_values_supported").is_some() {
            strings(&j, "userinfo_signing_alg_values_supported");
        }
        assert_eq!(
            strings(&j, "code_challenge_methods_supported"),
            vec!["S256".to_string()],
            "PKCE: S256 only"
        );
        let scopes = strings(&j, "scopes_supported");
        assert!(
            scopes.contains(&"openid".into()),
            "scopes_supported must contain openid"
        );
        for s in &scopes {
            // RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E
            assert!(
                !s.is_empty()
                    && s.chars()
                        .all(|c| matches!(c as u32, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
                "bad scope token {s:?}"
            );
        }
        let claims = strings(&j, "claims_supported");
        assert!(
            claims.contains(&"sub".into()),
            "claims_supported must contain sub: {claims:?}"
        );
        let grants = strings(&j, "grant_types_supported");
        for g in ["authorization_code", "refresh_token"] {
            assert!(
                grants.contains(&g.into()),
                "grant_types_supported must contain {g}: {grants:?}"
            );
        }
        for g in ["implicit", "password"] {
            assert!(
                !grants.contains(&g.into()),
                "RFC 9700: no {g} grant: {grants:?}"
            );
        }
        assert_eq!(
            j["claims_parameter_supported"], true,
            "claims_parameter_supported"
        );
        assert_eq!(
            j["request_parameter_supported"], false,
            "request_parameter_supported"
        );
        assert_eq!(
            j["request_uri_parameter_supported"], false,
            "request_uri_parameter_supported"
        );
        assert_eq!(
            j["authorization_response_iss_parameter_supported"], true,
            "RFC 9207"
        );
        if let Some(rm) = j.get("response_modes_supported") {
            let rm: Vec<&str> = rm
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                rm.contains(&"query") && !rm.contains(&"fragment"),
                "response_modes_supported: {rm:?}"
            );
        }
        let methods = strings(&j, "token_endpoint_auth_methods_supported");
        assert!(
            methods.contains(&"client_secret_basic".into())
                && methods.contains(&"client_secret_post".into()),
            "{methods:?}"
        );
        for f in ["ui_locales_supported", "claims_locales_supported"] {
            if j.get(f).is_some() {
                for l in strings(&j, f) {
                    // BCP 47: language lower case, region upper case.
                    let mut parts = l.split('-');
                    let lang = parts.next().unwrap_or("");
                    assert!(
                        !lang.is_empty() && lang.chars().all(|c| c.is_ascii_lowercase()),
                        "{f}: bad locale {l:?}"
                    );
                    for p in parts {
                        if p.len() == 2 {
                            assert!(
                                p.chars().all(|c| c.is_ascii_uppercase()),
                                "{f}: region must be upper case in {l:?}"
                            );
                        }
                    }
                }
            }
        }
        if j.get("acr_values_supported").is_some() {
            assert!(!strings(&j, "acr_values_supported").is_empty());
        }
        // jwks_uri is fetchable and valid (CheckServerKeysIsValid, kid checks).
        let r = HttpResp::read(
            idp.http
                .get(j["jwks_uri"].as_str().unwrap())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "jwks_uri: HTTP {}", r.status);
        assert!(
            r.header("content-type")
                .unwrap_or_default()
                .contains("json"),
            "jwks_uri content type"
        );
        let jwks = r.json();
        let kids = harness::jwks_kids(&jwks);
        assert!(!kids.is_empty());
        // The openidconnect crate must accept the document as well.
        let http = harness::plain_http();
        openidconnect::core::CoreProviderMetadata::discover_async(
            openidconnect::IssuerUrl::new(idp.base.clone()).unwrap(),
            &http,
        )
        .await
        .unwrap_or_else(|e| panic!("openidconnect rejects the discovery document: {e:?}"));
    })
    .await;
}

#[tokio::test]
async fn oidcc_rp_initiated_logout_discovery_endpoint_verification() {
    for_each_backend(|idp| async move {
        let j = fetch_discovery(&idp).await;
        let issuer = url::Url::parse(&idp.base).unwrap();
        let u = endpoint(&j, "end_session_endpoint", &issuer);
        let r = HttpResp::read(idp.http.get(u.as_str()).send().await.unwrap()).await;
        assert!(
            r.status < 500 && r.status != 404,
            "end_session_endpoint must exist: HTTP {}",
            r.status
        );
    })
    .await;
}

/// `idp config password-capacity` runs real checks with the configured argon2id parameters
/// on the configured workers, reports their rate, and refuses a duration it cannot use.
#[tokio::test]
async fn config_password_capacity_measures_the_configured_argon2() {
    let idp = super::harness::Idp::start(
        super::harness::Backend::Sqlite,
        &[("IDP_PASSWORD__MAX_CONCURRENT", "2")],
    )
    .await;
    let out = idp
        .cli(&["config", "password-capacity", "--seconds", "0.5", "--json"])
        .await;
    let j: Value = serde_json::from_str(out.trim()).unwrap();
    // The harness's parameters (cheaper than production).
    assert_eq!(
        (j["memory_kib"].as_u64(), j["iterations"].as_u64()),
        (Some(4096), Some(1))
    );
    assert_eq!(j["workers"].as_u64(), Some(2));
    let (checks, seconds, rate) = (
        j["checks"].as_u64().unwrap(),
        j["seconds"].as_f64().unwrap(),
        j["checks_per_sec"].as_f64().unwrap(),
    );
    assert!(checks >= 4 && seconds >= 0.5, "{j}");
    assert!((rate - checks as f64 / seconds).abs() < 1e-6, "{j}");
    let per_check = j["ms_per_check"].as_f64().unwrap();
    assert!((per_check * rate - 2000.0).abs() < 1e-3, "{j}");

    let text = idp
        .cli(&["config", "password-capacity", "--seconds", "0.2"])
        .await;
    assert!(
        text.starts_with("argon2id m=4096 KiB, t=1, p=1 on 2 workers: ")
            && text.contains("checks/s"),
        "{text}"
    );
    for bad in ["0", "-1", "nan", "7200"] {
        let arg = format!("--seconds={bad}");
        let (ok, _, err) = idp
            .cli_with(&[], &["config", "password-capacity", &arg])
            .await;
        assert!(!ok && err.contains("--seconds"), "{bad}: {err}");
    }
}
