//! The load generator's HTTP/1.1 client: each virtual user owns one keep-alive connection to
//! the provider and drives it from its own task, the way `wrk` does.
//!
//! The client is small on purpose: on two cores the generator competes with the server for
//! the CPU, so what it spends per request is taken from the figure it reports. A
//! general-purpose client (a pool shared by every user, a URL parsed on every request) cost
//! about twice the server's CPU per JWKS request; `hyper`'s connection-level client on the
//! user's own connection still cost about as much as the server (a dispatcher and channel
//! per request, a header map per answer, a vectored write). Here a request is bytes rendered
//! once ([`Request`]; a scenario's fixed requests are rendered at start and sent as they
//! are), written with one `write`; the answer is read into the connection's own buffer, its
//! head parsed in place with `httparse`, and its body taken as a slice of that buffer
//! (`Content-Length`), decoded (`chunked`), or read to the end of the connection. Header
//! values are found by scanning the head when asked for ([`Reply::header`]).
//!
//! A connection the server closed while it sat idle is noticed when the next request on it
//! gets no answer at all (the connection ends, or is reset, before the first byte of one):
//! that request goes once more on a new connection. A server closes an idle connection only
//! between requests, so it never saw that one. Any other failure is the request's failure;
//! the connection is dropped and the next request opens a new one.

use std::io::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use url::{Host, Url};

use super::target::Failure;

/// Most header lines an answer may have.
const MAX_HEADERS: usize = 64;
/// Largest answer head accepted, in bytes.
const MAX_HEAD: usize = 64 * 1024;
/// Largest answer body accepted, in bytes.
const MAX_BODY: usize = 16 * 1024 * 1024;
/// Room made in the read buffer before each read.
const READ_CHUNK: usize = 16 * 1024;

/// A request rendered as HTTP/1.1 bytes; it can be sent any number of times.
#[derive(Clone, Debug)]
pub struct Request(Bytes);

impl Request {
    /// The bytes sent.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Renders a [`Request`]: the request line and `Host` come from [`Client::request`].
pub struct RequestBuilder {
    buf: Vec<u8>,
    /// Whether the method has a body (a `Content-Length` is sent even when it is empty).
    with_body: bool,
    bad: Option<String>,
}

/// An HTTP token (a method or a header name).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl RequestBuilder {
    /// Adds a header line; a name that is not a token or a value with a control character
    /// makes [`body`](Self::body) fail.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if !is_token(name) || value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            self.bad
                .get_or_insert_with(|| format!("header `{name}` cannot be sent as given"));
            return self;
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.extend_from_slice(b": ");
        self.buf.extend_from_slice(value.as_bytes());
        self.buf.extend_from_slice(b"\r\n");
        self
    }

    /// Ends the head and appends `body`, with its `Content-Length` when there is a body or
    /// the method has one (not for an empty GET).
    pub fn body(mut self, body: &[u8]) -> Result<Request, String> {
        if let Some(e) = self.bad {
            return Err(e);
        }
        if self.with_body || !body.is_empty() {
            // Writing to a Vec cannot fail.
            let _ = write!(self.buf, "content-length: {}\r\n", body.len());
        }
        self.buf.extend_from_slice(b"\r\n");
        self.buf.extend_from_slice(body);
        Ok(Request(self.buf.into()))
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// The status line and header lines, as received.
    head: Bytes,
    pub body: Bytes,
}

impl Reply {
    /// The values of every header named `name` (any case), in order. A value that is not
    /// UTF-8 is skipped.
    pub fn headers<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.head
            .split(|&b| b == b'\n')
            .skip(1)
            .filter_map(move |line| {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let colon = line.iter().position(|&b| b == b':')?;
                let (n, v) = line.split_at(colon);
                if !n.eq_ignore_ascii_case(name.as_bytes()) {
                    return None;
                }
                std::str::from_utf8(v.get(1..)?).ok().map(str::trim)
            })
    }

    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers(name).next()
    }
}

/// Where and how to connect: the provider's origin (every request of a run goes there).
pub struct Client {
    host: String,
    port: u16,
    /// `Host` header: host and, when the URL names one, port.
    authority: String,
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

    /// A request to this origin: `target` in origin form (path and query, see
    /// [`origin_form`](super::target::origin_form)).
    pub fn request(&self, method: &str, target: &str) -> RequestBuilder {
        let mut buf = Vec::with_capacity(256);
        let bad = if !is_token(method) {
            Some(format!("bad method `{method}`"))
        } else if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
            Some(format!("bad request target `{target}`"))
        } else {
            None
        };
        for part in [
            method,
            " ",
            target,
            " HTTP/1.1\r\nhost: ",
            &self.authority,
            "\r\n",
        ] {
            buf.extend_from_slice(part.as_bytes());
        }
        RequestBuilder {
            buf,
            with_body: !matches!(method, "GET" | "HEAD"),
            bad,
        }
    }

    async fn connect(&self, what: &str) -> Result<Io, Failure> {
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
            None => Ok(Io::Plain(tcp)),
            Some((connector, name)) => connector
                .connect(name.clone(), tcp)
                .await
                .map(|tls| Io::Tls(Box::new(tls)))
                .map_err(|e| connect_failed(&e)),
        }
    }
}

/// An open connection.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Io {
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(bytes).await,
            Io::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    /// Reads what has arrived into `buf`; 0 at the end of the connection.
    async fn read(&mut self, buf: &mut BytesMut, room: usize) -> io::Result<usize> {
        buf.reserve(room);
        match self {
            Io::Plain(s) => s.read_buf(buf).await,
            Io::Tls(s) => s.read_buf(buf).await,
        }
    }
}

/// How one exchange ended, when it did not end with an answer.
enum Trip {
    /// No byte of an answer came: the connection ended or was reset first.
    Unanswered(io::Error),
    Failed(String),
}

/// How the answer's body is delimited.
enum Framing {
    Empty,
    Length(usize),
    Chunked,
    /// Until the server closes the connection.
    ToEnd,
}

/// One virtual user's connection (opened on first use, reopened after a failure) and its
/// read buffer.
#[derive(Default)]
pub struct Conn {
    io: Option<Io>,
    buf: BytesMut,
}

impl Conn {
    /// Sends `req` and reads the whole answer, within the client's timeout.
    pub async fn send(
        &mut self,
        client: &Client,
        what: &str,
        req: &Request,
    ) -> Result<Reply, Failure> {
        match tokio::time::timeout(client.timeout, self.exchange(client, what, req)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(f)) => {
                self.io = None;
                Err(f)
            }
            Err(_) => {
                self.io = None;
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
        req: &Request,
    ) -> Result<Reply, Failure> {
        // A kept connection may have been closed by the server meanwhile: then nothing
        // answers, and the request goes once more, on a new connection.
        let mut reused = self.io.is_some();
        loop {
            let io = match self.io.as_mut() {
                Some(io) => io,
                None => {
                    let io = client.connect(what).await?;
                    self.buf.clear();
                    self.io.insert(io)
                }
            };
            match round_trip(io, &mut self.buf, req.as_bytes()).await {
                Ok((reply, keep)) => {
                    if !keep {
                        self.io = None;
                    }
                    return Ok(reply);
                }
                Err(Trip::Unanswered(_)) if reused => {
                    self.io = None;
                    reused = false;
                }
                Err(Trip::Unanswered(e)) => {
                    return Err(Failure::new(
                        "transport",
                        format!("{what}: the connection ended before an answer: {e}"),
                    ))
                }
                Err(Trip::Failed(detail)) => {
                    return Err(Failure::new("transport", format!("{what}: {detail}")))
                }
            }
        }
    }
}

/// Sends `req` on `io` and reads one answer into `buf`; also says whether the connection
/// can carry another request.
async fn round_trip(io: &mut Io, buf: &mut BytesMut, req: &[u8]) -> Result<(Reply, bool), Trip> {
    io.write_all(req).await.map_err(Trip::Unanswered)?;
    let (status, head_len, framing, mut keep) = loop {
        if let Some(head) = parse_head(buf)? {
            break head;
        }
        if buf.len() > MAX_HEAD {
            return Err(Trip::Failed("the answer's head is too large".into()));
        }
        let empty = buf.is_empty();
        match io.read(buf, READ_CHUNK).await {
            Ok(0) if empty => return Err(Trip::Unanswered(io::ErrorKind::UnexpectedEof.into())),
            Err(e) if empty => return Err(Trip::Unanswered(e)),
            Ok(0) => {
                return Err(Trip::Failed(
                    "the connection ended within the answer".into(),
                ))
            }
            Err(e) => return Err(Trip::Failed(format!("reading the answer: {e}"))),
            Ok(_) => {}
        }
    };
    let (head, body) = match framing {
        Framing::Empty => (buf.split_to(head_len).freeze(), Bytes::new()),
        Framing::Length(n) => {
            fill(io, buf, head_len + n).await?;
            let msg = buf.split_to(head_len + n).freeze();
            (msg.slice(..head_len), msg.slice(head_len..))
        }
        Framing::ToEnd => {
            keep = false;
            loop {
                if buf.len() > head_len + MAX_BODY {
                    return Err(Trip::Failed("the answer's body is too large".into()));
                }
                match io.read(buf, READ_CHUNK).await {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(Trip::Failed(format!("reading the answer: {e}"))),
                }
            }
            let msg = buf.split().freeze();
            (msg.slice(..head_len), msg.slice(head_len..))
        }
        Framing::Chunked => {
            let head = buf.split_to(head_len).freeze();
            (head, dechunk(io, buf).await?)
        }
    };
    // Bytes beyond the answer were not asked for: the connection is not trusted further.
    if !buf.is_empty() {
        keep = false;
    }
    Ok((Reply { status, head, body }, keep))
}

/// The status, head length, framing and keep-alive of the answer at the start of `buf`,
/// once its head is complete; interim (1xx) answers before it are dropped from `buf`.
fn parse_head(buf: &mut BytesMut) -> Result<Option<(u16, usize, Framing, bool)>, Trip> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut headers);
        let n = match res.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(Trip::Failed(format!("malformed answer: {e}"))),
        };
        let status = res.code.unwrap_or(0);
        if status == 101 {
            return Err(Trip::Failed("the server switched protocols".into()));
        }
        if (100..200).contains(&status) {
            buf.advance(n);
            continue;
        }
        let mut framing = if status == 204 || status == 304 {
            Some(Framing::Empty)
        } else {
            None
        };
        let mut length: Option<usize> = None;
        let mut keep = res.version == Some(1);
        for h in res.headers.iter() {
            let value = std::str::from_utf8(h.value).unwrap_or("");
            if h.name.eq_ignore_ascii_case("transfer-encoding") && framing.is_none() {
                // Chunked only when it is the last coding; any other ends at the close.
                let last = value.rsplit(',').next().unwrap_or("").trim();
                framing = Some(if last.eq_ignore_ascii_case("chunked") {
                    Framing::Chunked
                } else {
                    Framing::ToEnd
                });
            } else if h.name.eq_ignore_ascii_case("content-length") {
                let v = value.trim();
                let n = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| v.parse::<usize>().ok())
                    .flatten()
                    .filter(|n| *n <= MAX_BODY)
                    .ok_or_else(|| Trip::Failed(format!("bad Content-Length `{v}`")))?;
                if length.is_some_and(|l| l != n) {
                    return Err(Trip::Failed("two different Content-Lengths".into()));
                }
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        keep = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") && res.version == Some(0) {
                        keep = true;
                    }
                }
            }
        }
        let framing = framing.unwrap_or(match length {
            Some(n) => Framing::Length(n),
            None => Framing::ToEnd,
        });
        return Ok(Some((status, n, framing, keep)));
    }
}

/// Reads until `buf` holds at least `want` bytes.
async fn fill(io: &mut Io, buf: &mut BytesMut, want: usize) -> Result<(), Trip> {
    while buf.len() < want {
        match io.read(buf, (want - buf.len()).max(READ_CHUNK)).await {
            Ok(0) => {
                return Err(Trip::Failed(
                    "the connection ended within the answer".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(Trip::Failed(format!("reading the answer: {e}"))),
        }
    }
    Ok(())
}

/// Reads a chunked body from the start of `buf` (RFC 9112 §7.1), trailers included, and
/// returns its data.
async fn dechunk(io: &mut Io, buf: &mut BytesMut) -> Result<Bytes, Trip> {
    let mut body = Vec::new();
    loop {
        let (line, size) = loop {
            match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((line, size))) => break (line, size),
                Ok(httparse::Status::Partial) => {
                    let want = buf.len() + 1;
                    fill(io, buf, want).await?;
                }
                Err(_) => return Err(Trip::Failed("malformed chunk size".into())),
            }
        };
        let size = usize::try_from(size)
            .ok()
            .filter(|s| body.len() + s <= MAX_BODY)
            .ok_or_else(|| Trip::Failed("the answer's body is too large".into()))?;
        if size == 0 {
            buf.advance(line);
            // Trailer fields, if any, end with an empty line.
            loop {
                if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                    buf.advance(end + 2);
                    if end == 0 {
                        return Ok(body.into());
                    }
                    continue;
                }
                if buf.len() > MAX_HEAD {
                    return Err(Trip::Failed("the answer's trailers are too large".into()));
                }
                let want = buf.len() + 1;
                fill(io, buf, want).await?;
            }
        }
        fill(io, buf, line + size + 2).await?;
        if &buf[line + size..line + size + 2] != b"\r\n" {
            return Err(Trip::Failed("a chunk does not end with CRLF".into()));
        }
        body.extend_from_slice(&buf[line..line + size]);
        buf.advance(line + size + 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
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
        /// Answer every request with these bytes.
        Raw(&'static [u8]),
        /// Answer one request with these bytes, then close.
        RawOnce(&'static [u8]),
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
                        Serve::Raw(_) => 100,
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
                            Serve::Raw(bytes) | Serve::RawOnce(bytes) => bytes,
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

    fn get(client: &Client) -> Request {
        client.request("GET", "/x").body(b"").unwrap()
    }

    /// The failure of one request to `url` on a new connection.
    async fn failure(url: &Url, timeout: Duration) -> Failure {
        let client = Client::new(url, timeout).unwrap();
        let sent = Conn::default().send(&client, "t", &get(&client)).await;
        sent.expect_err("the request must fail")
    }

    #[tokio::test]
    async fn one_connection_carries_many_requests() {
        let (url, accepted) = server(Serve::KeepAliveThenClose(100)).await;
        let client = Client::new(&url, Duration::from_secs(5)).unwrap();
        let mut conn = Conn::default();
        for _ in 0..10 {
            let r = conn.send(&client, "t", &get(&client)).await.unwrap();
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
            let r = conn.send(&client, "t", &get(&client)).await.unwrap();
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
            let r = conn.send(&client, "t", &get(&client)).await.unwrap();
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
            let f = conn.send(&client, "t", &get(&client)).await.err().unwrap();
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
            (c.host.clone(), c.port, c.authority.clone())
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

    /// The answers to three requests on one connection.
    async fn answers(serve: Serve) -> (Vec<Result<Reply, Failure>>, usize) {
        let (url, accepted) = server(serve).await;
        let client = Client::new(&url, Duration::from_secs(5)).unwrap();
        let mut conn = Conn::default();
        let mut out = Vec::new();
        for _ in 0..3 {
            out.push(conn.send(&client, "t", &get(&client)).await);
        }
        (out, accepted.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn a_chunked_answer_is_decoded_with_its_trailers_and_the_connection_kept() {
        let (replies, accepted) = answers(Serve::Raw(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
              5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: 1\r\n\r\n",
        ))
        .await;
        for r in replies {
            assert_eq!(&r.unwrap().body[..], b"hello world");
        }
        assert_eq!(accepted, 1);
    }

    #[tokio::test]
    async fn an_answer_without_a_length_is_read_to_the_end_and_not_kept() {
        let (replies, accepted) = answers(Serve::RawOnce(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end",
        ))
        .await;
        for r in replies {
            assert_eq!(&r.unwrap().body[..], b"until the end");
        }
        assert_eq!(accepted, 3);
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_no_content_has_no_body() {
        let (replies, accepted) = answers(Serve::Raw(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nx-a: 1\r\n\r\n",
        ))
        .await;
        for r in replies {
            let r = r.unwrap();
            assert_eq!(
                (r.status, r.body.len(), r.header("X-A")),
                (204, 0, Some("1"))
            );
        }
        assert_eq!(accepted, 1);
    }

    #[tokio::test]
    async fn conflicting_or_bad_lengths_and_garbage_are_failures() {
        for raw in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nok"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: +2\r\n\r\nok",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            b"SMTP ready\r\n\r\n",
        ] {
            let raw: &'static [u8] = Box::leak(raw.to_vec().into_boxed_slice());
            let (replies, _) = answers(Serve::Raw(raw)).await;
            for r in replies {
                let f = r.expect_err("must fail");
                assert_eq!(f.kind, "transport", "{}", f.detail);
            }
        }
    }

    #[test]
    fn headers_are_found_in_any_case_and_in_order() {
        let r = Reply {
            status: 302,
            head: Bytes::from_static(
                b"HTTP/1.1 302 Found\r\nSet-Cookie: a=1; Path=/\r\nlocation: /next\r\n\
                  set-cookie:b=2\r\nX-Empty:\r\n\r\n",
            ),
            body: Bytes::new(),
        };
        assert_eq!(
            r.headers("set-cookie").collect::<Vec<_>>(),
            ["a=1; Path=/", "b=2"]
        );
        assert_eq!(r.header("Location"), Some("/next"));
        assert_eq!(r.header("x-empty"), Some(""));
        assert_eq!(r.header("HTTP/1.1 302 Found"), None);
        assert_eq!(r.header("cookie"), None);
    }

    #[test]
    fn requests_are_rendered_with_host_and_length() {
        let client = Client::new(
            &Url::parse("http://127.0.0.1:8080/").unwrap(),
            Duration::from_secs(1),
        )
        .unwrap();
        let get = client.request("GET", "/a?b=c").body(b"").unwrap();
        assert_eq!(
            get.as_bytes(),
            b"GET /a?b=c HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\r\n"
        );
        let post = client
            .request("POST", "/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(b"a=1")
            .unwrap();
        assert_eq!(
            post.as_bytes(),
            &b"POST /token HTTP/1.1\r\nhost: 127.0.0.1:8080\r\n\
               content-type: application/x-www-form-urlencoded\r\ncontent-length: 3\r\n\r\na=1"[..]
        );
        let empty_post = client.request("POST", "/x").body(b"").unwrap();
        assert!(empty_post
            .as_bytes()
            .ends_with(b"content-length: 0\r\n\r\n"));
        // Nothing that would split the request or smuggle another one is rendered.
        assert!(client
            .request("GET", "/x")
            .header("cookie", "a=1\r\nx: y")
            .body(b"")
            .is_err());
        assert!(client
            .request("GET", "/x")
            .header("a b", "1")
            .body(b"")
            .is_err());
        assert!(client.request("GET", "/x y").body(b"").is_err());
        assert!(client.request("GET", "http://other/").body(b"").is_err());
        assert!(client.request("G ET", "/").body(b"").is_err());
    }
}
