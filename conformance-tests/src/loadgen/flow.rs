//! The browser side of an authorization code + PKCE flow: a cookie jar, same-origin redirects,
//! and forms filled the way a person would (hidden fields kept, login and password typed,
//! the "allow" button pressed). Nothing here is specific to Propusk: the same code walks
//! node-oidc-provider's interaction redirects.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use url::Url;

use super::conn::Conn;
use super::target::{origin_form, Failure, Target, TokenAnswer};

/// Most steps a flow may take before it is declared stuck.
const MAX_STEPS: usize = 12;

/// Button values taken as "yes" on a consent page.
const ALLOW: &[&str] = &[
    "allow", "accept", "approve", "yes", "confirm", "continue", "consent", "grant",
];

#[derive(Clone, Debug, Default)]
struct Cookie {
    name: String,
    value: String,
    path: String,
}

/// Cookies of one browser (one origin only: the provider).
#[derive(Clone, Debug, Default)]
pub struct Jar {
    cookies: Vec<Cookie>,
}

impl Jar {
    /// Applies `Set-Cookie` header values: a new value replaces the one of the same name and
    /// path; an empty value, `Max-Age<=0` or an `Expires` in the past (any year before 2000
    /// is enough for what providers send) removes it.
    pub fn store<'a>(&mut self, set_cookies: impl IntoIterator<Item = &'a str>) {
        for s in set_cookies {
            let mut parts = s.split(';');
            let Some((name, value)) = parts.next().and_then(|nv| nv.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            let mut path = "/".to_string();
            let mut removal = value.is_empty();
            for a in parts {
                let (k, v) = a.split_once('=').unwrap_or((a, ""));
                let (k, v) = (k.trim(), v.trim());
                if k.eq_ignore_ascii_case("path") && v.starts_with('/') {
                    path = v.to_string();
                } else if k.eq_ignore_ascii_case("max-age") {
                    removal |= v.parse::<i64>().is_ok_and(|n| n <= 0);
                } else if k.eq_ignore_ascii_case("expires") {
                    removal |= v
                        .split([' ', '-'])
                        .filter(|w| w.len() == 4)
                        .any(|w| w.parse::<u32>().is_ok_and(|y| y < 2000));
                }
            }
            self.cookies.retain(|c| !(c.name == name && c.path == path));
            if !removal {
                self.cookies.push(Cookie {
                    name: name.to_string(),
                    value: value.to_string(),
                    path,
                });
            }
        }
    }

    /// The `Cookie` header for a request to `path` (RFC 6265 §5.1.4 path match).
    pub fn header_for(&self, path: &str) -> Option<String> {
        let mut out = String::new();
        for c in &self.cookies {
            let matches = path == c.path
                || (path.starts_with(&c.path)
                    && (c.path.ends_with('/') || path[c.path.len()..].starts_with('/')));
            if matches {
                if !out.is_empty() {
                    out.push_str("; ");
                }
                out.push_str(&c.name);
                out.push('=');
                out.push_str(&c.value);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    pub fn len(&self) -> usize {
        self.cookies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cookies.is_empty()
    }
}

/// `&quot;` and friends in attribute values.
fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Attributes of one tag body (`name="v" name='v' name=v name`), names lower-cased.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut m = Vec::new();
    let b = tag.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let ns = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        let name = tag[ns..i].to_ascii_lowercase();
        if name.is_empty() {
            i += 1;
            continue;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                i += 1;
                let vs = i;
                while i < b.len() && b[i] != q {
                    i += 1;
                }
                value = unescape(&tag[vs..i]);
                i += 1;
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() {
                    i += 1;
                }
                value = unescape(&tag[vs..i]);
            }
        }
        m.push((name, value));
    }
    m
}

fn attr<'a>(attrs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    attrs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Every `<name ...>` tag in `html` (lower-case `name`), as attribute lists, in order.
fn tags(html: &str, lower: &str, name: &str) -> Vec<Vec<(String, String)>> {
    let open = format!("<{name}");
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(i) = lower[pos..].find(&open) {
        let start = pos + i + open.len();
        // `<input` but not `<inputs`: the next byte must end the name.
        if lower
            .as_bytes()
            .get(start)
            .is_some_and(|c| !(c.is_ascii_whitespace() || *c == b'>' || *c == b'/'))
        {
            pos = start;
            continue;
        }
        let Some(end) = html[start..].find('>').map(|e| start + e) else {
            break;
        };
        out.push(attributes(&html[start..end]));
        pos = end;
    }
    out
}

/// The first form of a page, reduced to what a person would submit.
#[derive(Debug, PartialEq)]
pub struct Form {
    pub action: String,
    pub method_get: bool,
    /// Hidden fields, in page order.
    pub hidden: Vec<(String, String)>,
    /// Name of the password field, when this is a login form.
    pub password_field: Option<String>,
    /// Name of the login field (first text/email/tel input), when there is one.
    pub login_field: Option<String>,
    /// The submit button to press (name, value), when buttons carry a decision.
    pub button: Option<(String, String)>,
}

impl Form {
    /// Parses the first `<form>` of `html`; `None` when there is none.
    pub fn parse(html: &str) -> Option<Form> {
        let lower = html.to_ascii_lowercase();
        let fstart = lower.find("<form")?;
        let fend = lower[fstart..]
            .find("</form")
            .map_or(html.len(), |e| fstart + e);
        let form_tag = tags(&html[fstart..fend], &lower[fstart..fend], "form");
        let fattrs = form_tag.first()?;
        let (body, lbody) = (&html[fstart..fend], &lower[fstart..fend]);
        let mut f = Form {
            action: attr(fattrs, "action").unwrap_or("").to_string(),
            method_get: attr(fattrs, "method").is_some_and(|m| m.eq_ignore_ascii_case("get")),
            hidden: Vec::new(),
            password_field: None,
            login_field: None,
            button: None,
        };
        let mut buttons: Vec<(String, String)> = Vec::new();
        for a in tags(body, lbody, "input") {
            let ty = attr(&a, "type").unwrap_or("text").to_ascii_lowercase();
            let Some(name) = attr(&a, "name").filter(|n| !n.is_empty()) else {
                continue;
            };
            let value = attr(&a, "value").unwrap_or("");
            match ty.as_str() {
                "hidden" => f.hidden.push((name.to_string(), value.to_string())),
                "password" if f.password_field.is_none() => {
                    f.password_field = Some(name.to_string())
                }
                "text" | "email" | "tel" if f.login_field.is_none() => {
                    f.login_field = Some(name.to_string())
                }
                "submit" => buttons.push((name.to_string(), value.to_string())),
                _ => {}
            }
        }
        for a in tags(body, lbody, "button") {
            let ty = attr(&a, "type").unwrap_or("submit");
            if !ty.eq_ignore_ascii_case("submit") {
                continue;
            }
            if let Some(name) = attr(&a, "name").filter(|n| !n.is_empty()) {
                buttons.push((
                    name.to_string(),
                    attr(&a, "value").unwrap_or("").to_string(),
                ));
            }
        }
        f.button = buttons
            .iter()
            .find(|(_, v)| ALLOW.iter().any(|a| v.eq_ignore_ascii_case(a)))
            .or(buttons.first())
            .cloned();
        Some(f)
    }
}

fn random_b64(bytes: usize) -> Result<String, Failure> {
    let mut buf = [0u8; 64];
    let buf = buf
        .get_mut(..bytes)
        .ok_or_else(|| Failure::new("random", "too many bytes"))?;
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), buf)
        .map_err(|_| Failure::new("random", "the system RNG failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

/// RFC 7636: a 43-character verifier and its S256 challenge.
pub fn pkce() -> Result<(String, String), Failure> {
    let verifier = random_b64(32)?;
    let challenge =
        URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    Ok((verifier, challenge))
}

/// Whether `u` is the client's redirect URI (scheme, host, port and path).
fn is_callback(u: &Url, redirect_uri: &Url) -> bool {
    u.scheme() == redirect_uri.scheme()
        && u.host_str() == redirect_uri.host_str()
        && u.port_or_known_default() == redirect_uri.port_or_known_default()
        && u.path() == redirect_uri.path()
}

/// The code from an authorization response (query or form_post fields).
fn callback_code<'a>(
    fields: impl Iterator<Item = (std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>)>,
    state: &str,
) -> Result<String, Failure> {
    let (mut code, mut got_state, mut error) = (None, None, None);
    for (k, v) in fields {
        match k.as_ref() {
            "code" => code = Some(v.into_owned()),
            "state" => got_state = Some(v.into_owned()),
            "error" => error = Some(v.into_owned()),
            _ => {}
        }
    }
    if let Some(e) = error {
        let e: String = e
            .chars()
            .take(40)
            .filter(|c| c.is_ascii_graphic())
            .collect();
        return Err(Failure::new(
            format!("authorize: error={e}"),
            format!("the authorization response is an error: {e}"),
        ));
    }
    if got_state.as_deref() != Some(state) {
        return Err(Failure::malformed("authorize", "state did not come back"));
    }
    code.filter(|c| !c.is_empty())
        .ok_or_else(|| Failure::malformed("authorize", "no code in the response"))
}

/// How the browser may answer pages on the way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A new browser: it may sign in (once) and consent.
    Fresh,
    /// A browser with a session: a login form is an error (the session was lost).
    Sso,
}

enum Step {
    Get(Url),
    Post(Url, String),
}

/// Runs the front channel from the authorization request to the code; returns the code and
/// the PKCE verifier. `requests` counts every HTTP request sent.
pub async fn authorize(
    t: &Target,
    conn: &mut Conn,
    jar: &mut Jar,
    prompt: Option<&str>,
    mode: Mode,
    requests: &mut u64,
) -> Result<(String, String), Failure> {
    let (verifier, challenge) = pkce()?;
    let state = random_b64(12)?;
    let nonce = random_b64(12)?;
    let mut url = t.authorize.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &t.client_id)
            .append_pair("redirect_uri", t.redirect_uri.as_str())
            .append_pair("scope", &t.scope)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(p) = prompt {
            q.append_pair("prompt", p);
        }
    }
    let mut step = Step::Get(url);
    let mut what = "authorize";
    let mut signed_in = false;
    for _ in 0..MAX_STEPS {
        let (page_url, body) = match step {
            Step::Get(u) => (u, None),
            Step::Post(u, body) => (u, Some(body)),
        };
        let target = origin_form(&page_url);
        let mut req = match body {
            None => t.http.request("GET", &target),
            Some(_) => t
                .http
                .request("POST", &target)
                .header("content-type", "application/x-www-form-urlencoded"),
        };
        if let Some(c) = jar.header_for(page_url.path()) {
            req = req.header("cookie", &c);
        }
        let req = Target::render(what, req, body.as_deref().unwrap_or("").as_bytes())?;
        *requests += 1;
        let r = t.send(conn, what, &req).await?;
        let status = r.status;
        jar.store(r.headers("set-cookie"));
        if (300..400).contains(&status) {
            let loc = r
                .header("location")
                .ok_or_else(|| Failure::malformed(what, "redirect without Location"))?;
            let loc = page_url
                .join(loc)
                .map_err(|e| Failure::malformed(what, &format!("bad Location: {e}")))?;
            if is_callback(&loc, &t.redirect_uri) {
                return Ok((callback_code(loc.query_pairs(), &state)?, verifier));
            }
            if loc.origin() != t.base.origin() {
                return Err(Failure::malformed(what, "redirect to an unexpected origin"));
            }
            step = Step::Get(loc);
            what = "follow";
            continue;
        }
        if status != 200 {
            return Err(Failure::status(what, status, &r.body));
        }
        let body = String::from_utf8_lossy(&r.body);
        let form = Form::parse(&body)
            .ok_or_else(|| Failure::malformed(what, "a page without a form on the way"))?;
        let action = page_url
            .join(&form.action)
            .map_err(|e| Failure::malformed(what, &format!("bad form action: {e}")))?;
        if is_callback(&action, &t.redirect_uri) {
            // response_mode=form_post
            let fields = form
                .hidden
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()));
            return Ok((callback_code(fields, &state)?, verifier));
        }
        if action.origin() != t.base.origin() {
            return Err(Failure::malformed(what, "a form posting to another origin"));
        }
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        out.extend_pairs(form.hidden.iter());
        if let Some(pw) = &form.password_field {
            if mode == Mode::Sso {
                return Err(Failure::new(
                    "sso: login form shown",
                    "the session did not carry: the provider asked for a password",
                ));
            }
            if signed_in {
                return Err(Failure::new(
                    "login: refused",
                    "the login form came back after the password was sent (wrong credentials or lockout)",
                ));
            }
            signed_in = true;
            what = "login";
            if let Some(l) = &form.login_field {
                out.append_pair(l, &t.login);
            }
            out.append_pair(pw, &t.password);
        } else {
            what = "consent";
        }
        if let Some((n, v)) = &form.button {
            out.append_pair(n, v);
        }
        let body = out.finish();
        step = if form.method_get {
            let mut u = action;
            u.set_query(Some(&body));
            Step::Get(u)
        } else {
            Step::Post(action, body)
        };
    }
    Err(Failure::malformed(what, "too many steps before the code"))
}

/// A whole flow in a new browser: authorize, sign in, consent, code, token.
pub async fn fresh(
    t: &Target,
    conn: &mut Conn,
    requests: &mut u64,
) -> Result<TokenAnswer, Failure> {
    let mut jar = Jar::default();
    fresh_keeping(t, conn, &mut jar, requests).await
}

/// Same, keeping the browser's cookies (its session) in `jar`.
pub async fn fresh_keeping(
    t: &Target,
    conn: &mut Conn,
    jar: &mut Jar,
    requests: &mut u64,
) -> Result<TokenAnswer, Failure> {
    let (code, verifier) = authorize(
        t,
        conn,
        jar,
        t.fresh_prompt.as_deref(),
        Mode::Fresh,
        requests,
    )
    .await?;
    *requests += 1;
    t.exchange_code(conn, &code, &verifier).await
}

/// A flow with the browser's existing session: authorize, code, token.
pub async fn sso(
    t: &Target,
    conn: &mut Conn,
    jar: &mut Jar,
    requests: &mut u64,
) -> Result<TokenAnswer, Failure> {
    let (code, verifier) = authorize(t, conn, jar, None, Mode::Sso, requests).await?;
    *requests += 1;
    t.exchange_code(conn, &code, &verifier).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jar_sets_replaces_removes_and_matches_paths() {
        let mut j = Jar::default();
        j.store([
            "propusk_bid=abc; Path=/; HttpOnly; SameSite=Lax",
            "_interaction=u1; path=/interaction/XYZ; httponly",
            "_session=s1; path=/; expires=Tue, 19 Nov 2030 00:00:00 GMT",
        ]);
        assert_eq!(j.len(), 3);
        assert_eq!(
            j.header_for("/login").as_deref(),
            Some("propusk_bid=abc; _session=s1")
        );
        assert_eq!(
            j.header_for("/interaction/XYZ").as_deref(),
            Some("propusk_bid=abc; _interaction=u1; _session=s1")
        );
        assert_eq!(
            j.header_for("/interaction/XYZ2").as_deref(),
            Some("propusk_bid=abc; _session=s1"),
            "a path prefix must end at a slash"
        );
        j.store([
            "propusk_bid=def; Path=/",
            "_interaction=; path=/interaction/XYZ; expires=Thu, 01 Jan 1970 00:00:00 GMT",
            "_session=gone; Path=/; Max-Age=0",
        ]);
        assert_eq!(
            j.header_for("/interaction/XYZ").as_deref(),
            Some("propusk_bid=def")
        );
        j.store(["propusk_bid=; Path=/"]);
        assert!(j.is_empty());
        assert_eq!(j.header_for("/"), None);
    }

    #[test]
    fn login_form_like_propusks() {
        let html = r#"<!doctype html><html><body>
<form method="post" action="/login">
<input type="hidden" name="tx" value="T&amp;1">
<input type="hidden" name="csrf" value="C2">
<label for="identifier">Login</label>
<input type="text" id="identifier" name="identifier" value="" autocomplete="username" required autofocus>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<input type="checkbox" id="remember" name="remember" value="on">
<button type="submit" class="primary">Sign in</button>
</form></body></html>"#;
        let f = Form::parse(html).unwrap();
        assert_eq!(f.action, "/login");
        assert!(!f.method_get);
        assert_eq!(
            f.hidden,
            vec![("tx".into(), "T&1".into()), ("csrf".into(), "C2".into())]
        );
        assert_eq!(f.password_field.as_deref(), Some("password"));
        assert_eq!(f.login_field.as_deref(), Some("identifier"));
        assert_eq!(f.button, None);
    }

    #[test]
    fn consent_form_presses_allow() {
        let html = r#"<FORM METHOD=post action='/consent'>
<input type=hidden name=tx value=T1><input type="hidden" name="csrf" value="C1">
<button type="submit" class="primary" name="decision" value="deny">No</button>
<button type="submit" class="secondary" name="decision" value="allow">Yes</button>
</FORM><form action="/other"><input type="hidden" name="x" value="y"></form>"#;
        let f = Form::parse(html).unwrap();
        assert_eq!(f.action, "/consent");
        assert_eq!(f.hidden.len(), 2, "only the first form counts");
        assert_eq!(f.password_field, None);
        assert_eq!(f.button, Some(("decision".into(), "allow".into())));
        assert_eq!(Form::parse("<html>no form</html>"), None);
    }

    #[test]
    fn inputs_is_not_input() {
        let html = r#"<form action="/x"><inputs name="a"><input name="b" type="hidden" value="1"/></form>"#;
        let f = Form::parse(html).unwrap();
        assert_eq!(f.hidden, vec![("b".into(), "1".into())]);
    }

    #[test]
    fn pkce_is_s256_of_the_verifier() {
        let (v, c) = pkce().unwrap();
        assert_eq!(v.len(), 43);
        let want = URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(v.as_bytes()));
        assert_eq!(c, want);
        assert_ne!(pkce().unwrap().0, v);
    }

    #[test]
    fn callbacks() {
        let rp = Url::parse("https://rp.example.org/cb").unwrap();
        let ok = Url::parse("https://rp.example.org/cb?code=C&state=S&iss=x").unwrap();
        assert!(is_callback(&ok, &rp));
        assert!(!is_callback(
            &Url::parse("https://rp.example.org:444/cb").unwrap(),
            &rp
        ));
        assert_eq!(callback_code(ok.query_pairs(), "S").unwrap(), "C");
        let e = callback_code(ok.query_pairs(), "other").unwrap_err();
        assert_eq!(e.kind, "authorize: malformed answer");
        let err = Url::parse("https://rp.example.org/cb?error=access_denied&state=S").unwrap();
        assert_eq!(
            callback_code(err.query_pairs(), "S").unwrap_err().kind,
            "authorize: error=access_denied"
        );
        let none = Url::parse("https://rp.example.org/cb?state=S").unwrap();
        assert!(callback_code(none.query_pairs(), "S").is_err());
    }
}
