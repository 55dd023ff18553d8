//! `serve --demo`: a demo citizen and a demo portal, and how to try them.

use idp::config::Config;
use idp::domain::Profile;
use idp::store::{ClientStore, SqlStore, SubjectStore};

use crate::cli::{build_client, create_user, NewClient, NewUser};
use idp::startup::BoxError;

pub const DEMO_LOGIN: &str = "ivan@example.ru";
pub const DEMO_PASSWORD: &str = "Demo-Passw0rd!";
pub const DEMO_CLIENT: &str = "demo-portal";
/// Demo only: a fixed, published secret so the printed commands work.
pub const DEMO_SECRET: &str = "demo-portal-secret";
pub const DEMO_REDIRECT: &str = "http://127.0.0.1:8081/callback";
/// A fixed PKCE pair for the printed example (verifier -> S256 challenge).
const DEMO_VERIFIER: &str = "demo-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";

pub struct DemoNote;

pub fn seed(cfg: &Config, store: &SqlStore) -> Result<DemoNote, BoxError> {
    if store.find_subject_by_login(DEMO_LOGIN)?.is_none() {
        let profile = Profile {
            given_name: Some("Иван".into()),
            family_name: Some("Петров".into()),
            middle_name: Some("Сергеевич".into()),
            birthdate: Some("1985-04-12".into()),
            gender: Some("male".into()),
            email: Some(DEMO_LOGIN.into()),
            email_verified: true,
            phone_number: Some("+79123456789".into()),
            phone_number_verified: true,
            address: Some("Москва, ул. Тверская, д. 1".into()),
            locale: Some("ru".into()),
        };
        create_user(
            cfg,
            store,
            NewUser {
                login: DEMO_LOGIN.into(),
                password: DEMO_PASSWORD.into(),
                profile,
            },
        )?;
    }
    // The person (issue 5): documents and levels for the demo citizens.
    crate::identity_cli::seed_demo_person(cfg, store, DEMO_LOGIN)?;
    if store.find_client(DEMO_CLIENT)?.is_none() {
        let (mut client, _) = build_client(NewClient {
            id: Some(DEMO_CLIENT.into()),
            name: "Демо-портал / Demo portal".into(),
            redirect_uris: vec![DEMO_REDIRECT.into()],
            post_logout_redirect_uris: vec!["http://127.0.0.1:8081/".into()],
            auth_method: "client_secret_basic".into(),
            grant_types: vec![
                "authorization_code".into(),
                "refresh_token".into(),
                "client_credentials".into(),
            ],
            scopes: vec![],
            jwks: None,
            id_token_alg: None,
            min_acr: None,
        })?;
        client.secret_hash = Some(keys::sha256_b64url(DEMO_SECRET.as_bytes()));
        store.insert_client(&client)?;
    }
    Ok(DemoNote)
}

impl DemoNote {
    pub fn render(&self, issuer: &str) -> String {
        let challenge = keys::sha256_b64url(DEMO_VERIFIER.as_bytes());
        let mut u = match url::Url::parse(&format!("{issuer}/authorize")) {
            Ok(u) => u,
            Err(_) => return String::new(),
        };
        u.query_pairs_mut()
            .append_pair("client_id", DEMO_CLIENT)
            .append_pair("response_type", "code")
            .append_pair("scope", "openid profile email phone")
            .append_pair("redirect_uri", DEMO_REDIRECT)
            .append_pair("state", "demo-state")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        format!(
            "\nDemo mode (never use in production).\n\
             1. Open in a browser:\n   {u}\n\
             2. Sign in as {DEMO_LOGIN} / {DEMO_PASSWORD} and agree.\n\
             3. The browser lands on {DEMO_REDIRECT}?code=CODE&... (copy CODE; or run `python3 examples/service_cabinet.py`, a demo portal that listens there and does all of this).\n\
             4. Exchange the code:\n   curl -s -u {DEMO_CLIENT}:{DEMO_SECRET} -d grant_type=authorization_code -d code=CODE \\\n     -d redirect_uri={DEMO_REDIRECT} -d code_verifier={DEMO_VERIFIER} {issuer}/token\n\
             Discovery: {issuer}/.well-known/openid-configuration\n"
        )
    }
}
