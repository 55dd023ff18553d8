//! Contract tests of [`EsiaClientStore`] on both backends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::tests::{each, t0};
use crate::audit::AuditEvent;
use crate::domain::{Client, ClientAuthMethod, EsiaCertificate, GrantType};
use crate::store::{AuditStore, ClientStore, EsiaClientStore, StoreError};

fn esia_client(id: &str) -> Client {
    Client {
        id: id.into(),
        name: "ESIA portal".into(),
        secret_hash: None,
        auth_method: ClientAuthMethod::EsiaSignature,
        redirect_uris: vec!["https://portal.example.ru/cb".into()],
        post_logout_redirect_uris: vec![],
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        scopes: vec!["openid".into(), "fullname".into()],
        jwks: None,
        id_token_alg: None,
        created_at: t0(),
        min_acr: None,
    }
}

fn cert(client_id: &str, hash: &str) -> EsiaCertificate {
    EsiaCertificate {
        client_id: client_id.into(),
        certificate_pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
        certificate_hash: hash.into(),
        created_at: t0(),
    }
}

fn event(client_id: &str) -> AuditEvent {
    AuditEvent {
        at: t0(),
        kind: "esia.certificate_registered".into(),
        subject_id: None,
        client_id: Some(client_id.into()),
        ip: None,
        detail: serde_json::json!({}),
    }
}

#[test]
fn esia_certificate_put_find_replace_and_cascade() {
    each(|s| {
        s.insert_client(&esia_client("esia-1")).unwrap();
        assert_eq!(s.find_esia_certificate("esia-1").unwrap(), None);
        s.put_esia_certificate(&cert("esia-1", "aa"), &event("esia-1"))
            .unwrap();
        assert_eq!(
            s.find_esia_certificate("esia-1").unwrap(),
            Some(cert("esia-1", "aa"))
        );
        // A new certificate replaces the old one.
        s.put_esia_certificate(&cert("esia-1", "bb"), &event("esia-1"))
            .unwrap();
        assert_eq!(
            s.find_esia_certificate("esia-1")
                .unwrap()
                .unwrap()
                .certificate_hash,
            "bb"
        );
        let kinds: Vec<String> = s
            .list_audit(10)
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds
                .iter()
                .filter(|k| *k == "esia.certificate_registered")
                .count(),
            2
        );
        // Removing the client removes its certificate.
        assert!(s.remove_client("esia-1").unwrap());
        assert_eq!(s.find_esia_certificate("esia-1").unwrap(), None);
    });
}

#[test]
fn esia_certificate_needs_a_client_and_writes_nothing_otherwise() {
    each(|s| {
        let err = s
            .put_esia_certificate(&cert("nobody", "aa"), &event("nobody"))
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Db(_) | StoreError::Conflict),
            "{err:?}"
        );
        assert_eq!(s.find_esia_certificate("nobody").unwrap(), None);
        assert!(s
            .list_audit(10)
            .unwrap()
            .iter()
            .all(|e| e.kind != "esia.certificate_registered"));
    });
}
