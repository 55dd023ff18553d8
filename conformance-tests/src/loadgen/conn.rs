//! The load generator's HTTP/1.1 client: each virtual user owns one keep-alive connection to
//! the provider and drives it from its own task, the way `wrk` does.
//!
//! A general-purpose client (a connection pool shared by every user, a task per connection,
//! a URL parsed again and host name normalised on every request) cost about twice the CPU of
//! the provider's answer to a JWKS request, on the same two cores: the generator, not the
//! server, set the figure. Here a request is a `hyper` connection-level exchange on the
//! user's own connection, polled in the user's task together with the connection, so no
//! other task is woken and nothing is shared between users.
//!
//! A connection the server closed while it sat idle is noticed when the next request cannot
//! be sent on it: that request goes once more on a new connection (it was never sent, so this
//! repeats nothing). Any other failure is the request's failure; the connection is dropped
//! and the next request opens a new one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, HOST};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use url::{Host, Url};

use super::target::Failure;

/// An answer, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Where and how to connect: the provider's origin (every request of a run goes there).
pub struct Client {
    host: String,
    port: u16,
    /// `Host` header: host and, when the URL names one, port.
    authority: HeaderValue,
    tls: Option<(
        tokio_rustls::TlsConnector,
        rustls::pki_types::ServerName<'static>,
    )>,
    timeout: Duration,
    connect_timeout: Duration,
}

impl Client {
    /// A client for `base`'s origin; `timeout` bounds each request (connecting included).
    pub fn new(base: &Url, timeout: Duration) -> Result<Client, String> {
        let host = match base.host() {
            Some(Host::Domain(d)) => d.to_string(),
            Some(Host::Ipv4(a)) => a.to_string(),
            Some(Host::Ipv6(a)) => a.to_string(),
            None => return Err(format!("{base} has no host")),
        };
        let port = base
            .port_or_known_default()
            .ok_or_else(|| format!("{base} has no port"))?;
        let host_str = base.host_str().unwrap_or(&host);
        let authority = match base.port() {
            Some(p) => format!("{host_str}:{p}"),
            None => host_str.to_string(),
        };
        let authority =
            HeaderValue::from_str(&authority).map_err(|e| format!("{base}: host: {e}"))?;
        let tls = match base.scheme() {
            "http" => None,
            "https" => {
                let roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| format!("{base}: TLS server name: {e}"))?;
                Some((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
            }
            other => return Err(format!("{base}: unsupported scheme {other}")),
        };
        Ok(Client {
            host,
            port,
            authority,
            tls,
            timeout,
            connect_timeout: timeout.min(Duration::from_secs(5)),
        })
    }

    /// A request to this origin: `target` in origin form (path and query).
    pub fn request(&self, method: Method, target: Uri) -> http::request::Builder {
        Request::builder()
            .method(method)
            .uri(target)
            .header(HOST, self.authority.clone())
    }

    async fn connect(&self, what: &str) -> Result<Live, Failure> {
        let connect_failed =
            |e: &dyn std::fmt::Display| Failure::new("connect", format!("{what}: connect: {e}"));
        let tcp = tokio::time::timeout(
            self.connect_timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        .map_err(|_| Failure::new("timeout", format!("{what}: connect timed out")))?
        .map_err(|e| connect_failed(&e))?;
        tcp.set_nodelay(true).map_err(|e| connect_failed(&e))?;
        match &self.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| connect_failed(&e))?;
                handshake(tls).await
            }
        }
        .map_err(|e| connect_failed(&e))
    }
}

type Driver = Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>>;

/// An open connection: the request side and the future that runs the connection.
struct Live {
    sender: SendRequest<Full<Bytes>>,
    driver: Driver,
}

async fn handshake<T>(io: T) -> hyper::Result<Live>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    Ok(Live {
        sender,
        driver: Box::pin(conn),
    })
}

/// How one exchange on a connection ended, when it did not end with an answer.
enum Trip {
    /// The request was not sent: the connection was already closed.
    NotSent(Box<Request<Full<Bytes>>>, hyper::Error),
    Failed(hyper::Error),
}

/// One virtual user's connection (opened on first use, reopened after a failure).
#[derive(Default)]
pub struct Conn {
    live: Option<Live>,
}

impl Conn {
    /// Sends `req` and reads the whole answer, within the client's timeout.
    pub async fn send(
        &mut self,
        client: &Client,
        what: &str,
        req: Request<Full<Bytes>>,
    ) -> Result<Reply, Failure> {
        match tokio::time::timeout(client.timeout, self.exchange(client, what, req)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(f)) => {
                self.live = None;
                Err(f)
            }
            Err(_) => {
                self.live = None;
                Err(Failure::new(
                    "timeout",
                    format!("{what}: no answer within {:?}", client.timeout),
                ))
            }
        }
    }

    async fn exchange(
        &mut self,
        client: &Client,
        what: &str,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Reply, Failure> {
        // A kept connection may have been closed by the server meanwhile: then the request
        // was not sent and goes once more, on a new connection.
        let mut reused = self.live.is_some();
        loop {
            let live = match self.live.as_mut() {
                Some(live) => live,
                None => self.live.insert(client.connect(what).await?),
            };
            let (outcome, open) = round_trip(live, req).await;
            if !open {
                self.live = None;
            }
            match outcome {
                Err(Trip::NotSent(back, _)) if reused => {
                    req = *back;
                    reused = false;
                }
                Err(Trip::NotSent(_, e) | Trip::Failed(e)) => return Err(transport(what, &e)),
                Ok(reply) => return Ok(reply),
            }
        }
    }
}

fn transport(what: &str, e: &hyper::Error) -> Failure {
    let kind = if e.is_timeout() {
        "timeout"
    } else {
        "transport"
    };
    let mut detail = format!("{what}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail.push_str(&format!(": {s}"));
        source = s.source();
    }
    Failure::new(kind, detail)
}

/// One request and its whole answer on `live`, polling the connection in this task; also
/// says whether the connection can carry another request.
async fn round_trip(live: &mut Live, req: Request<Full<Bytes>>) -> (Result<Reply, Trip>, bool) {
    let (outcome, driven) = exchange_on(live, req).await;
    let open = driven && !live.sender.is_closed();
    (outcome, open)
}

/// [`round_trip`]'s exchange (a function of its own so that the request future's borrow of
/// the sender ends before the sender is asked whether it is closed); false when the
/// connection ended before the exchange did.
async fn exchange_on(live: &mut Live, req: Request<Full<Bytes>>) -> (Result<Reply, Trip>, bool) {
    let Live { sender, driver } = live;
    let work = async {
        if let Err(e) = sender.ready().await {
            return Err(Trip::NotSent(Box::new(req), e));
        }
        let res = sender
            .try_send_request(req)
            .await
            .map_err(|mut e| match e.take_message() {
                Some(req) => Trip::NotSent(Box::new(req), e.into_error()),
                None => Trip::Failed(e.into_error()),
            })?;
        let (parts, body) = res.into_parts();
        let body = body.collect().await.map_err(Trip::Failed)?.to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    };
    tokio::pin!(work);
    let first = tokio::select! {
        biased;
        r = &mut work => Some(r),
        _ = driver.as_mut() => None,
    };
    match first {
        Some(r) => (r, true),
        // The connection ended first (closed by the server, or broken): what was asked on
        // it fails or was never sent; `work` learns which once the connection is dropped.
        None => {
            *driver = Box::pin(std::future::ready(Ok(())));
            (work.await, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    /// How the test server answers each request on a connection.
    #[derive(Clone, Copy)]
    enum Serve {
        /// Answer `n` requests, then close without a word.
        KeepAliveThenClose(usize),
        /// Answer with `Connection: close`, then close.
        CloseEach,
        /// Read the request and never answer.
        Silent,
        /// Promise a body of 100 bytes, send 5, close.
        CutBody,
    }

    /// A server on a free port; returns its URL and the number of connections it accepted.
    async fn server(serve: Serve) -> (Url, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let answers = match serve {
                        Serve::KeepAliveThenClose(n) => n,
                        _ => 1,
                    };
                    let mut buf = Vec::new();
                    for _ in 0..answers {
                        // One request: headers up to the blank line (the tests send no body).
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 1024];
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.clear();
                        let answer: &[u8] = match serve {
                            Serve::KeepAliveThenClose(_) => {
                                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
                            }
                            Serve::CloseEach => {
                                b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok"
                            }
                            Serve::Silent => {
                                tokio::time::sleep(Duration::from_secs(30)).await;
                                return;
                            }
                            Serve::CutBody => b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhello",
                        };
                        if s.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    // Close a moment after the last answer, once the client has read it and
                    // kept the connection; dropping the socket closes it.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                });
            }
        });
        (url, accepted)
    }

    fn get(client: &Client) -> Request<Full<Bytes>> {
        client
            .request(Method::GET, Uri::from_static("/x"))
            .body(Full::default())
            .unwrap()
    }

    /// The failure of one request to `url` on a new connection.
    async fn failure(url: &Url, timeout: Duration) -> Failure {
        let client = Client::new(url, timeout).unwrap();
        let sent = Conn::default().send(&client, "t", get(&client)).await;
        sent.err().expect("the request must fail")
    }

    #[tokio::test]
    async fn one_connection_carries_many_requests() {
        let (url, accepted) = server(Serve::KeepAliveThenClose(100)).await;
        let client = Client::new(&url, Duration::from_secs(5)).unwrap();
        let mut conn = Conn::default();
        for _ in 0..10 {
            let r = conn.send(&client, "t", get(&client)).await.unwrap();
            assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_reopened_without_an_error() {
        let (url, accepted) = server(Serve::KeepAliveThenClose(1)).await;
        let client = Client::new(&url, Duration::from_secs(5)).unwrap();
        let mut conn = Conn::default();
        for i in 1..=3 {
            let r = conn.send(&client, "t", get(&client)).await.unwrap();
            assert_eq!(r.status, 200);
            // Let the server's close arrive while the connection sits idle.
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert_eq!(accepted.load(Ordering::SeqCst), i);
        }
    }

    #[tokio::test]
    async fn connection_close_answers_are_followed_by_a_new_connection() {
        let (url, accepted) = server(Serve::CloseEach).await;
        let client = Client::new(&url, Duration::from_secs(5)).unwrap();
        let mut conn = Conn::default();
        for _ in 0..3 {
            let r = conn.send(&client, "t", get(&client)).await.unwrap();
            assert_eq!(&r.body[..], b"ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout() {
        let (url, _) = server(Serve::Silent).await;
        let f = failure(&url, Duration::from_millis(200)).await;
        assert_eq!(f.kind, "timeout");
    }

    #[tokio::test]
    async fn a_cut_answer_fails_and_the_next_request_gets_a_new_connection() {
        let (url, accepted) = server(Serve::CutBody).await;
        let client = Client::new(&url, Duration::from_secs(5)).unwrap();
        let mut conn = Conn::default();
        for i in 1..=2 {
            let f = conn.send(&client, "t", get(&client)).await.err().unwrap();
            assert_eq!(f.kind, "transport", "{}", f.detail);
            assert_eq!(accepted.load(Ordering::SeqCst), i);
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_failure() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).unwrap();
        let f = failure(&url, Duration::from_secs(2)).await;
        assert_eq!(f.kind, "connect");
    }

    #[test]
    fn the_host_header_names_the_port_given() {
        let at = |u: &str| {
            let c = Client::new(&Url::parse(u).unwrap(), Duration::from_secs(1)).unwrap();
            (
                c.host.clone(),
                c.port,
                c.authority.to_str().unwrap().to_string(),
            )
        };
        assert_eq!(
            at("http://127.0.0.1:8080/x"),
            ("127.0.0.1".into(), 8080, "127.0.0.1:8080".into())
        );
        assert_eq!(at("http://[::1]/"), ("::1".into(), 80, "[::1]".into()));
        assert_eq!(
            at("https://localhost/"),
            ("localhost".into(), 443, "localhost".into())
        );
        assert!(Client::new(&Url::parse("ftp://x/").unwrap(), Duration::from_secs(1)).is_err());
    }
}
