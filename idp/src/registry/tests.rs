#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use chrono::NaiveDate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::http::HttpRegistry;
use super::simulated::SimulatedRegistry;
use super::*;

pub(crate) fn claim(snils: &str) -> IdentityClaim {
    IdentityClaim {
        family_name: "Петров".into(),
        given_name: "Иван".into(),
        middle_name: None,
        birth_date: NaiveDate::from_ymd_opt(1980, 4, 17).unwrap(),
        birth_place: "г. Тверь".into(),
        snils: snils.into(),
        passport_series: "4508".into(),
        passport_number: "123456".into(),
        passport_issue_date: NaiveDate::from_ymd_opt(2001, 5, 20).unwrap(),
        passport_issued_by: "ОВД".into(),
        passport_division_code: "770-001".into(),
    }
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let cfg = RegistryConfig {
        retry_base_secs: 2,
        retry_max_secs: 10,
        ..RegistryConfig::default()
    };
    let secs: Vec<i64> = (1..=5).map(|a| backoff(&cfg, a).num_seconds()).collect();
    assert_eq!(secs, vec![2, 4, 8, 10, 10]);
    assert_eq!(backoff(&cfg, 1000).num_seconds(), 10);
}

#[tokio::test]
async fn simulated_answers_by_snils() {
    let answers: BTreeMap<String, String> = [
        ("11111111145", "name_mismatch"),
        ("22222222256", "unavailable_once"),
        ("33333333367", "unavailable"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let r = SimulatedRegistry::new(answers);
    let ok = r.submit("v1", &claim("11223344595")).await.unwrap();
    assert_eq!(r.poll(&ok).await.unwrap(), Answer::Matched);
    let bad = r.submit("v2", &claim("11111111145")).await.unwrap();
    assert_eq!(
        r.poll(&bad).await.unwrap(),
        Answer::Mismatch(MismatchReason::NameMismatch)
    );
    assert!(matches!(
        r.submit("v3", &claim("22222222256")).await,
        Err(RegistryError::Unavailable(_))
    ));
    let again = r.submit("v3", &claim("22222222256")).await.unwrap();
    assert_eq!(r.poll(&again).await.unwrap(), Answer::Matched);
    for _ in 0..3 {
        assert!(r.submit("v4", &claim("33333333367")).await.is_err());
    }
    assert!(r.poll("garbage").await.is_err());
}

/// A local HTTP receiver: answers each connection from `script` (request line prefix ->
/// status and body) and records the request bodies.
async fn receiver(
    script: Vec<(&'static str, u16, &'static str)>,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut script = script.into_iter();
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then the body by Content-Length.
            loop {
                let n = sock.read(&mut chunk).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let text = String::from_utf8_lossy(&buf).to_string();
            let (prefix, status, body) = script.next().unwrap_or(("", 500, "{}"));
            assert!(text.starts_with(prefix), "expected {prefix}, got {text}");
            let _ = tx.send(text);
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        }
    });
    (format!("http://{addr}/registry"), rx)
}

#[tokio::test]
async fn http_adapter_follows_the_json_contract() {
    let (url, mut seen) = receiver(vec![
        ("POST /registry/requests ", 503, "{}"),
        ("POST /registry/requests ", 202, r#"{"ref":"r-42"}"#),
        (
            "GET /registry/requests/r-42 ",
            200,
            r#"{"status":"pending"}"#,
        ),
        (
            "GET /registry/requests/r-42 ",
            200,
            r#"{"status":"mismatch","reason":"document_expired"}"#,
        ),
        (
            "GET /registry/requests/r-42 ",
            200,
            r#"{"status":"matched"}"#,
        ),
        ("GET /registry/requests/r-42 ", 404, "{}"),
        ("GET /registry/requests/r-42 ", 200, r#"{"status":"what"}"#),
    ])
    .await;
    let r = HttpRegistry::new(&url, std::time::Duration::from_secs(5)).unwrap();
    let c = claim("11223344595");
    assert!(matches!(
        r.submit("v1", &c).await,
        Err(RegistryError::Unavailable(_))
    ));
    assert_eq!(r.submit("v1", &c).await.unwrap(), "r-42");
    let body = seen.recv().await.unwrap() + &seen.recv().await.unwrap();
    assert!(body.contains(r#""snils":"11223344595""#), "{body}");
    assert!(body.contains(r#""division_code":"770-001""#), "{body}");
    assert!(body.contains(r#""birth_date":"1980-04-17""#), "{body}");
    assert_eq!(r.poll("r-42").await.unwrap(), Answer::Pending);
    assert_eq!(
        r.poll("r-42").await.unwrap(),
        Answer::Mismatch(MismatchReason::DocumentExpired)
    );
    assert_eq!(r.poll("r-42").await.unwrap(), Answer::Matched);
    assert!(matches!(
        r.poll("r-42").await,
        Err(RegistryError::Refused(_))
    ));
    assert!(matches!(
        r.poll("r-42").await,
        Err(RegistryError::Refused(_))
    ));
    // Nothing listens here: unavailable, retried later.
    let dead = HttpRegistry::new("http://127.0.0.1:9/", std::time::Duration::from_secs(2)).unwrap();
    assert!(matches!(
        dead.submit("v1", &c).await,
        Err(RegistryError::Unavailable(_))
    ));
}
