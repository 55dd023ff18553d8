//! Senders against real servers started here: SMTP against Python's aiosmtpd (installed by
//! `scripts/ensure-services.sh`), the HTTP gateway against a small receiver in this file; the
//! dispatcher end to end over a SQLite outbox with a fixed clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::*;
use crate::clock::FixedClock;
use crate::config::notify::{NotifyConfig, SmtpConfig, SmtpTls};
use crate::store::SqlStore;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 30, 0).unwrap()
}

/// Polls `cond` every 20 ms until it holds or `limit` passes.
fn wait_for(limit: StdDuration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(StdDuration::from_millis(20));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A migrated SQLite outbox in a temporary directory.
struct TestStore {
    store: SqlStore,
    _dir: tempfile::TempDir,
}

fn sqlite_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let vault = Arc::new(keys::Vault::new(
        keys::DataKey::generate().unwrap(),
        vec![],
        keys::DataKey::generate().unwrap(),
    ));
    let store = SqlStore::connect(
        &format!("sqlite://{}", dir.path().join("t.db").display()),
        2,
    )
    .unwrap()
    .with_vault(vault);
    store.migrate().unwrap();
    TestStore { store, _dir: dir }
}

fn message(channel: Channel, to: &str, text: &str) -> Message {
    Message {
        id: uuid::Uuid::new_v4().to_string(),
        channel,
        recipient: to.into(),
        subject: None,
        text: text.into(),
        kind: "otp".into(),
        locale: "ru".into(),
        created_at: t0(),
        attempt: 1,
    }
}

/// Records what `f` logs, at every level, on this thread (tasks of a current-thread runtime
/// included).
fn capture_logs() -> (Arc<Mutex<Vec<u8>>>, tracing::subscriber::DefaultGuard) {
    #[derive(Clone)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Buf(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (buf, tracing::subscriber::set_default(subscriber))
}

// ------------------------------------------------------------------ HTTP gateway

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    /// Read the request and never answer (until the client gives up).
    Hang,
}

/// A tiny HTTP/1.1 server on a free loopback port: records each request and answers with the
/// next queued reply (200 when none is queued), then closes the connection.
struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(Mutex::new(VecDeque::new()));
        let (s, r) = (seen.clone(), replies.clone());
        // Lives until the test process ends (nextest runs each test in its own process).
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve_one(stream, &s, &r);
            }
        });
        Receiver {
            addr,
            seen,
            replies,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/v1/messages", self.addr)
    }

    fn reply(&self, replies: &[Reply]) {
        self.replies.lock().unwrap().extend(replies.iter().copied());
    }

    fn requests(&self) -> Vec<Recorded> {
        self.seen.lock().unwrap().clone()
    }
}

fn serve_one(mut stream: TcpStream, seen: &Mutex<Vec<Recorded>>, replies: &Mutex<VecDeque<Reply>>) {
    stream
        .set_read_timeout(Some(StdDuration::from_secs(10)))
        .unwrap();
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&data[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_string();
    let path = first.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while data.len() < head_end + len {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    }
    let body = data[head_end..head_end + len].to_vec();
    seen.lock().unwrap().push(Recorded {
        method,
        path,
        headers,
        body,
    });
    let reply = replies
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Reply::Status(200));
    match reply {
        Reply::Status(code) => {
            let text = format!(
                "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
            );
            let _ = stream.write_all(text.as_bytes());
        }
        Reply::Hang => {
            // Block until the client closes its end.
            let _ = stream.read(&mut chunk);
        }
    }
}

fn gateway(rx: &Receiver, token: Option<&str>, timeout_ms: u64) -> HttpGatewaySender {
    HttpGatewaySender::new(
        url::Url::parse(&rx.url()).unwrap(),
        token.map(str::to_string),
        StdDuration::from_millis(timeout_ms),
    )
    .unwrap()
}

#[tokio::test]
async fn notify_gateway_posts_the_documented_json_with_bearer_token() {
    let rx = Receiver::start();
    let g = gateway(&rx, Some("gw-token-1"), 5_000);
    let mut m = message(Channel::Sms, "+79161234567", "Код: 123456");
    m.locale = "en".into();
    g.send(&m).await.unwrap();
    let voice = message(Channel::Voice, "+79160000000", "1 2 3 4 5 6");
    g.send(&voice).await.unwrap();

    let reqs = rx.requests();
    assert_eq!(reqs.len(), 2);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(r.header("authorization"), Some("Bearer gw-token-1"));
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({
            "id": m.id,
            "channel": "sms",
            "to": "+79161234567",
            "text": "Код: 123456",
            "locale": "en",
        })
    );
    assert_eq!(reqs[1].json()["channel"], "voice");
    assert_eq!(reqs[1].json()["id"], voice.id.as_str());

    // Without a token there is no Authorization header.
    let g = gateway(&rx, None, 5_000);
    g.send(&message(Channel::Push, "device-token", "hi"))
        .await
        .unwrap();
    let reqs = rx.requests();
    assert_eq!(reqs[2].header("authorization"), None);
    assert_eq!(reqs[2].json()["channel"], "push");
    assert_eq!(reqs[2].json()["to"], "device-token");
    assert_eq!(
        reqs[2].json().get("platform"),
        None,
        "no known platform prefix"
    );

    // A push device: its platform and token apart, the subject as the title.
    let mut p = message(
        Channel::Push,
        &super::push_recipient("ios", "apns:tok:with-colons"),
        "Код: 123456",
    );
    p.subject = Some("Код для входа".into());
    g.send(&p).await.unwrap();
    let reqs = rx.requests();
    assert_eq!(
        reqs[3].json(),
        serde_json::json!({
            "id": p.id,
            "channel": "push",
            "to": "apns:tok:with-colons",
            "text": "Код: 123456",
            "locale": "ru",
            "platform": "ios",
            "title": "Код для входа",
        })
    );
    // SMS and voice never carry them.
    assert_eq!(reqs[0].json().get("title"), None);
}

#[tokio::test]
async fn notify_gateway_status_classes_map_to_permanent_and_temporary() {
    let rx = Receiver::start();
    let g = gateway(&rx, None, 5_000);
    let m = message(Channel::Sms, "+79161234567", "Код: 654321");
    let cases = [
        (200, None),
        (202, None),
        (400, Some(SendError::Permanent("gateway: HTTP 400".into()))),
        (403, Some(SendError::Permanent("gateway: HTTP 403".into()))),
        (404, Some(SendError::Permanent("gateway: HTTP 404".into()))),
        (408, Some(SendError::Temporary("gateway: HTTP 408".into()))),
        (429, Some(SendError::Temporary("gateway: HTTP 429".into()))),
        (500, Some(SendError::Temporary("gateway: HTTP 500".into()))),
        (503, Some(SendError::Temporary("gateway: HTTP 503".into()))),
        (302, Some(SendError::Temporary("gateway: HTTP 302".into()))),
    ];
    for (status, want) in cases {
        rx.reply(&[Reply::Status(status)]);
        assert_eq!(g.send(&m).await.err(), want, "status {status}");
    }
}

#[tokio::test]
async fn notify_gateway_timeout_and_refused_connection_are_temporary() {
    let rx = Receiver::start();
    rx.reply(&[Reply::Hang]);
    let g = gateway(&rx, None, 300);
    let m = message(Channel::Sms, "+79161234567", "Код: 111111");
    let started = Instant::now();
    assert_eq!(
        g.send(&m).await.unwrap_err(),
        SendError::Temporary("gateway: timeout".into())
    );
    assert!(started.elapsed() < StdDuration::from_secs(5));

    // Nothing listens on a port that was just freed.
    let closed = HttpGatewaySender::new(
        url::Url::parse(&format!("http://127.0.0.1:{}/", free_port())).unwrap(),
        None,
        StdDuration::from_secs(2),
    )
    .unwrap();
    let err = closed.send(&m).await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert!(!err.reason().contains("+7916"), "{err:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn notify_dispatcher_retries_with_backoff_then_sends_and_logs_no_content() {
    let db = sqlite_store();
    let rx = Receiver::start();
    let cfg = NotifyConfig {
        backoff_base_secs: 10,
        backoff_max_secs: 600,
        max_attempts: 3,
        gateway: crate::config::notify::GatewayConfig {
            url: Some(rx.url()),
            ..Default::default()
        },
        ..NotifyConfig::default()
    };
    let clock = FixedClock::new(t0());
    let mailbox = DevMailbox::new(10);
    let senders = Senders::from_config(&cfg, &mailbox).unwrap();
    let d = Dispatcher::new(db.store.clone(), senders, Arc::new(clock.clone()), &cfg);
    let phone = "+79165554433";
    let code = "907312";
    let id = db
        .store
        .enqueue(
            &NewMessage::new(Channel::Sms, phone, "otp", format!("Код для входа: {code}")),
            t0(),
        )
        .unwrap();

    let (logs, _guard) = capture_logs();
    rx.reply(&[Reply::Status(503), Reply::Status(502)]);
    let r = d.run_once().await.unwrap();
    assert_eq!((r.claimed, r.retried), (1, 1), "{r:?}");
    let e = db.store.outbox_entry(&id).unwrap().unwrap();
    assert_eq!(e.next_attempt_at, t0() + Duration::seconds(10));
    assert_eq!(e.last_error.as_deref(), Some("gateway: HTTP 503"));

    // Not due yet: nothing happens.
    clock.advance(Duration::seconds(9));
    assert_eq!(d.run_once().await.unwrap(), Round::default());

    // Second attempt fails too: twice the delay.
    clock.advance(Duration::seconds(1));
    assert_eq!(d.run_once().await.unwrap().retried, 1);
    let e = db.store.outbox_entry(&id).unwrap().unwrap();
    assert_eq!(e.next_attempt_at, t0() + Duration::seconds(30));

    // Third attempt succeeds.
    clock.advance(Duration::seconds(20));
    let r = d.run_once().await.unwrap();
    assert_eq!((r.claimed, r.sent), (1, 1), "{r:?}");
    let e = db.store.outbox_entry(&id).unwrap().unwrap();
    assert_eq!(e.sent_at, Some(t0() + Duration::seconds(30)));
    assert_eq!(e.attempts, 3);

    // The gateway saw the same message id each time.
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 3);
    assert!(reqs.iter().all(|r| r.json()["id"] == id.as_str()));
    assert!(mailbox.recent().is_empty(), "sms went to the gateway");

    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains(&id), "logs name the message id:\n{logs}");
    assert!(logs.contains("attempt=3"), "{logs}");
    assert!(logs.contains("gateway: HTTP 503"), "{logs}");
    for secret in [phone, "9165554433", code, "Код"] {
        assert!(!logs.contains(secret), "`{secret}` in logs:\n{logs}");
    }
}

#[tokio::test]
async fn notify_dispatcher_gives_up_on_a_permanent_gateway_error() {
    let db = sqlite_store();
    let rx = Receiver::start();
    rx.reply(&[Reply::Status(400)]);
    let g: Arc<dyn Sender> = Arc::new(gateway(&rx, None, 5_000));
    let cfg = NotifyConfig::default();
    let d = Dispatcher::new(
        db.store.clone(),
        Senders::all(g),
        Arc::new(FixedClock::new(t0())),
        &cfg,
    );
    let id = db
        .store
        .enqueue(&NewMessage::new(Channel::Sms, "+7000", "otp", "x"), t0())
        .unwrap();
    let r = d.run_once().await.unwrap();
    assert_eq!((r.claimed, r.gave_up), (1, 1), "{r:?}");
    let e = db.store.outbox_entry(&id).unwrap().unwrap();
    assert_eq!(e.failed_at, Some(t0()));
    assert_eq!(e.last_error.as_deref(), Some("gateway: HTTP 400"));
}

#[tokio::test]
async fn notify_defaults_route_every_channel_to_the_dev_mailbox() {
    let db = sqlite_store();
    let mailbox = DevMailbox::new(3);
    let cfg = NotifyConfig::default();
    let senders = Senders::from_config(&cfg, &mailbox).unwrap();
    let clock = FixedClock::new(t0());
    let d = Dispatcher::new(db.store.clone(), senders, Arc::new(clock.clone()), &cfg);
    for (i, c) in Channel::ALL.into_iter().enumerate() {
        let m = NewMessage::new(c, format!("to-{c}"), "otp", format!("text {i}"))
            .with_subject(format!("subject {i}"));
        db.store
            .enqueue(&m, t0() + Duration::seconds(i as i64))
            .unwrap();
    }
    clock.advance(Duration::seconds(5));
    let r = d.run_once().await.unwrap();
    assert_eq!((r.claimed, r.sent), (4, 4), "{r:?}");
    // Capacity 3. Sends run concurrently, so which one was dropped is not fixed.
    let kept = mailbox.recent();
    assert_eq!(kept.len(), 3);
    for m in &kept {
        let i: usize = m.text.trim_start_matches("text ").parse().unwrap();
        assert_eq!(m.subject.as_deref(), Some(format!("subject {i}").as_str()));
        assert_eq!(m.to, format!("to-{}", Channel::ALL[i]));
    }
    assert!(
        !format!("{kept:?}").contains("to-"),
        "Debug hides recipients"
    );
}

#[test]
fn notify_dev_mailbox_keeps_the_newest_messages() {
    let mb = DevMailbox::new(2);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for i in 0..3 {
        rt.block_on(mb.send(&message(Channel::Sms, &format!("+7{i}"), "t")))
            .unwrap();
    }
    let to: Vec<String> = mb.recent().into_iter().map(|m| m.to).collect();
    assert_eq!(to, ["+72", "+71"]);
    // Clones share the messages.
    assert_eq!(mb.clone().recent().len(), 2);
}

// ------------------------------------------------------------------ SMTP (aiosmtpd)

/// A handler for aiosmtpd: stores messages in a Maildir (adding X-RcptTo), refuses
/// `nobody@...` for good (550) and `busy@...` for now (451).
const PICKY_HANDLER: &str = r#"
from aiosmtpd.handlers import Mailbox

class Picky(Mailbox):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("nobody@"):
            return "550 5.1.1 <%s>: Recipient address rejected" % address
        if address.startswith("busy@"):
            return "451 4.3.0 <%s>: try again later" % address
        envelope.rcpt_tos.append(address)
        return "250 OK"
"#;

/// Parses a stored message with Python's `email` package (an independent MIME decoder).
const PARSE_MAIL: &str = r#"
import email, email.policy, json, sys
m = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=email.policy.default)
print(json.dumps({
    "to": str(m["To"]), "from": str(m["From"]), "subject": str(m["Subject"]),
    "rcpt": str(m["X-RcptTo"]), "message_id": str(m["Message-ID"]),
    "content_type": m.get_content_type(), "charset": m.get_content_charset(),
    "body": m.get_content().replace("\r\n", "\n"),
}))
"#;

/// aiosmtpd on a free port, killed when dropped.
struct SmtpServer {
    child: Child,
    port: u16,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_has_aiosmtpd() -> bool {
    Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts aiosmtpd; `tls` = (cert, key) PEM files for STARTTLS.
fn start_smtp(tls: Option<(&Path, &Path)>) -> SmtpServer {
    assert!(
        python_has_aiosmtpd(),
        "python3 with aiosmtpd is needed: run scripts/ensure-services.sh \
         (or `python3 -m pip install aiosmtpd`)"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("picky.py"), PICKY_HANDLER).unwrap();
    let maildir = dir.path().join("maildir");
    // A port can be taken between probing and binding; try a few.
    for _ in 0..5 {
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(["-c", "picky.Picky"])
            .env("PYTHONPATH", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((cert, key)) = tls {
            cmd.arg("--tlscert").arg(cert).arg("--tlskey").arg(key);
        }
        let mut child = cmd.arg(&maildir).spawn().unwrap();
        let start = Instant::now();
        while start.elapsed() < StdDuration::from_secs(15) {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return SmtpServer {
                    child,
                    port,
                    maildir,
                    _dir: dir,
                };
            }
            std::thread::sleep(StdDuration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("aiosmtpd did not start");
}

impl SmtpServer {
    fn config(&self) -> SmtpConfig {
        SmtpConfig {
            host: Some("127.0.0.1".into()),
            port: self.port,
            tls: SmtpTls::None,
            from: "Propusk <no-reply@id.example.ru>".into(),
            helo_name: "idp.test".into(),
            timeout_secs: 10,
            ..SmtpConfig::default()
        }
    }

    /// The delivered messages (Maildir `new/`), once there are `n`, parsed.
    fn wait_for_mail(&self, n: usize) -> Vec<serde_json::Value> {
        let new = self.maildir.join("new");
        let files = || -> Vec<PathBuf> {
            std::fs::read_dir(&new)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default()
        };
        wait_for(StdDuration::from_secs(10), "mail in the maildir", || {
            files().len() >= n
        });
        files()
            .iter()
            .map(|p| {
                let out = Command::new("python3")
                    .args(["-c", PARSE_MAIL])
                    .arg(p)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                serde_json::from_slice(&out.stdout).unwrap()
            })
            .collect()
    }
}

#[tokio::test]
async fn notify_smtp_delivers_to_a_real_server() {
    let server = start_smtp(None);
    let smtp = SmtpSender::from_config(&server.config()).unwrap();
    let mut m = message(
        Channel::Email,
        "ivan.petrov@example.ru",
        "Ваш код: 123456\nНикому его не сообщайте.",
    );
    m.subject = Some("Код подтверждения".into());
    smtp.send(&m).await.unwrap();

    let mail = server.wait_for_mail(1);
    let got = &mail[0];
    assert_eq!(got["rcpt"], "ivan.petrov@example.ru");
    assert_eq!(got["to"], "ivan.petrov@example.ru");
    assert_eq!(got["from"], "Propusk <no-reply@id.example.ru>");
    assert_eq!(got["subject"], "Код подтверждения");
    assert_eq!(got["content_type"], "text/plain");
    assert_eq!(got["charset"], "utf-8");
    assert_eq!(
        got["body"].as_str().unwrap().trim_end(),
        "Ваш код: 123456\nНикому его не сообщайте."
    );
    assert_eq!(got["message_id"], format!("<{}@idp.test>", m.id));
}

#[tokio::test]
async fn notify_smtp_rejections_are_classified_without_the_address() {
    let server = start_smtp(None);
    let smtp = SmtpSender::from_config(&server.config()).unwrap();

    let err = smtp
        .send(&message(Channel::Email, "nobody@example.ru", "x"))
        .await
        .unwrap_err();
    assert_eq!(err, SendError::Permanent("smtp: rejected (550)".into()));

    let err = smtp
        .send(&message(Channel::Email, "busy@example.ru", "x"))
        .await
        .unwrap_err();
    assert_eq!(err, SendError::Temporary("smtp: deferred (451)".into()));

    let err = smtp
        .send(&message(Channel::Email, "not an address", "x"))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");

    let err = smtp
        .send(&message(Channel::Sms, "+79161234567", "x"))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err:?}");

    // No server: temporary, retried later.
    let mut cfg = server.config();
    cfg.port = free_port();
    let down = SmtpSender::from_config(&cfg).unwrap();
    let err = down
        .send(&message(Channel::Email, "ivan@example.ru", "x"))
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert!(!err.reason().contains("ivan@"), "{err:?}");
}

#[tokio::test]
async fn notify_dispatcher_sends_email_through_smtp_from_config() {
    let server = start_smtp(None);
    let db = sqlite_store();
    let cfg = NotifyConfig {
        smtp: server.config(),
        ..NotifyConfig::default()
    };
    let mailbox = DevMailbox::new(10);
    let d = Dispatcher::new(
        db.store.clone(),
        Senders::from_config(&cfg, &mailbox).unwrap(),
        Arc::new(FixedClock::new(t0())),
        &cfg,
    );
    let id = db
        .store
        .enqueue(
            &NewMessage::new(Channel::Email, "olga@example.ru", "otp", "Код: 246810")
                .with_subject("Вход в Propusk"),
            t0(),
        )
        .unwrap();
    let r = d.run_once().await.unwrap();
    assert_eq!((r.claimed, r.sent), (1, 1), "{r:?}");
    let mail = server.wait_for_mail(1);
    assert_eq!(mail[0]["rcpt"], "olga@example.ru");
    assert_eq!(mail[0]["subject"], "Вход в Propusk");
    assert_eq!(mail[0]["body"].as_str().unwrap().trim_end(), "Код: 246810");
    assert!(db
        .store
        .outbox_entry(&id)
        .unwrap()
        .unwrap()
        .sent_at
        .is_some());
    assert!(mailbox.recent().is_empty());
}

/// A CA and a certificate for 127.0.0.1 signed by it, made with the openssl command.
fn make_tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl command is installed");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Propusk test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[tokio::test]
async fn notify_smtp_starttls_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_tls_files(dir.path());
    let server = start_smtp(Some((&cert, &key)));

    // Without the CA the relay's certificate is not trusted: temporary (fix the config).
    let mut cfg = SmtpConfig {
        tls: SmtpTls::Starttls,
        ..server.config()
    };
    let untrusted = SmtpSender::from_config(&cfg).unwrap();
    let err = untrusted
        .send(&message(Channel::Email, "ivan@example.ru", "x"))
        .await
        .unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");

    cfg.ca_file = Some(ca);
    let smtp = SmtpSender::from_config(&cfg).unwrap();
    let mut m = message(Channel::Email, "ivan@example.ru", "Код: 135790");
    m.subject = Some("TLS".into());
    smtp.send(&m).await.unwrap();
    let mail = server.wait_for_mail(1);
    assert_eq!(mail[0]["subject"], "TLS");
    assert_eq!(mail[0]["body"].as_str().unwrap().trim_end(), "Код: 135790");
}

#[test]
fn notify_missing_secret_files_stop_start_up() {
    let mut cfg = NotifyConfig::default();
    cfg.gateway.url = Some("http://127.0.0.1:9/send".into());
    cfg.gateway.token_file = Some(PathBuf::from("/nonexistent/propusk/token"));
    let err = Senders::from_config(&cfg, &DevMailbox::new(1)).unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/propusk/token"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    cfg.gateway.token_file = Some(token);
    let s = HttpGatewaySender::from_config(&cfg.gateway).unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("s3cret"), "{dbg}");
}
