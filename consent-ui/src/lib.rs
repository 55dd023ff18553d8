//! Server-rendered pages of Propusk: sign-in, consent, errors, logout and the OAuth
//! `form_post` response page, in Russian (default) and English.
//!
//! The crate knows nothing about storage or HTTP frameworks: each page is a plain struct
//! whose [`render`](LoginPage::render) method returns a complete HTML5 document. Every
//! interpolated value is HTML-escaped. Pages use no inline script or style, so they work
//! under a strict `Content-Security-Policy: default-src 'self'`; the stylesheet and the
//! `form_post` script are served from `/static/` via [`static_asset`].

use askama::Template;

mod certificate;
mod identity;
mod recovery;
mod second_factor;
mod security;
mod step_up;
mod texts;

pub use certificate::{certificate_problem, CertificatePage, CertificateState};
pub use identity::{
    identity_error, level_name, mismatch_text, password_problems_text, profile_edit_error,
    register_error, AccountStatusPage, ActivatePage, AddressView, CodeView, ConsentExtra,
    ContactView, LevelPage, ProfilePage, RegisterPage, RegisterStep, VerificationView,
    WithheldScope,
};
pub use recovery::{
    Forgot, ForgotError, ForgotPage, ForgotStep, Notice, NoticePage, PasswordPage, PasswordProblem,
    PasswordPurpose,
};
pub use second_factor::{Factor, FactorError, SecondFactorPage};
pub use security::{
    problem_text, Confirm, FactorKind, FactorRow, RecoveryCodesPage, SecurityNotice, SecurityPage,
    TotpEnrolPage, WebauthnProblem,
};
pub use step_up::{PasskeyNeededPage, PasskeyStepUpPage};
pub use texts::scope_description;

/// Language of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    /// Russian, the default.
    #[default]
    Ru,
    /// English.
    En,
}

impl Lang {
    /// The BCP 47 code used in `<html lang>`: `"ru"` or `"en"`.
    pub fn code(self) -> &'static str {
        match self {
            Lang::Ru => "ru",
            Lang::En => "en",
        }
    }

    /// Match one language tag (`ru`, `en-US`, `RU_ru`, ...) by its primary subtag.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or_default();
        if primary.eq_ignore_ascii_case("ru") {
            Some(Lang::Ru)
        } else if primary.eq_ignore_ascii_case("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// Pick from OIDC `ui_locales` (space separated, first supported wins), else from an
    /// `Accept-Language` header value (q-values honoured, ties go to the earlier entry),
    /// else [`Lang::Ru`].
    pub fn negotiate(ui_locales: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(found) = ui_locales
            .into_iter()
            .flat_map(str::split_whitespace)
            .find_map(Lang::from_tag)
        {
            return found;
        }
        accept_language
            .and_then(Self::from_accept_language)
            .unwrap_or_default()
    }

    fn from_accept_language(header: &str) -> Option<Lang> {
        let mut best: Option<(Lang, f32)> = None;
        for entry in header.split(',') {
            let mut parts = entry.split(';');
            let Some(lang) = parts.next().and_then(Lang::from_tag) else {
                continue;
            };
            let mut q = 1.0_f32;
            for param in parts {
                let param = param.trim();
                if let Some(value) = param
                    .strip_prefix("q=")
                    .or_else(|| param.strip_prefix("Q="))
                {
                    // An unparsable q-value makes the entry unusable.
                    q = value.trim().parse::<f32>().unwrap_or(0.0);
                }
            }
            if !(q > 0.0 && q <= 1.0) {
                continue;
            }
            if best.is_none_or(|(_, best_q)| q > best_q) {
                best = Some((lang, q));
            }
        }
        best.map(|(lang, _)| lang)
    }

    fn brand(self) -> &'static str {
        match self {
            Lang::Ru => "Пропуск",
            Lang::En => "Propusk",
        }
    }
}

/// Common data of the page layout (`templates/base.html`).
struct Layout<'a> {
    lang: &'static str,
    title: &'a str,
    brand: &'static str,
}

impl<'a> Layout<'a> {
    fn new(lang: Lang, title: &'a str) -> Self {
        Layout {
            lang: lang.code(),
            title,
            brand: lang.brand(),
        }
    }
}

/// Escape text for use in HTML element content and double- or single-quoted attributes
/// (same entities as the templates use: `&#60;` `&#62;` `&#38;` `&#34;` `&#39;`).
pub fn escape_html(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        match c {
            '&' => out.push_str("&#38;"),
            '<' => out.push_str("&#60;"),
            '>' => out.push_str("&#62;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Minimal page used only if a template fails to render (it should never happen).
fn fallback_page(lang: Lang, title: &str, text: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} — {}</title>\n<link rel=\"stylesheet\" href=\"/static/propusk.css\">\n\
         </head>\n<body>\n<main class=\"card\">\n<h1>{}</h1>\n<p>{}</p>\n</main>\n</body>\n</html>\n",
        lang.code(),
        escape_html(title),
        escape_html(lang.brand()),
        escape_html(title),
        escape_html(text),
    )
}

fn render_or_fallback<T: Template>(template: &T, lang: Lang) -> String {
    match template.render() {
        Ok(html) => html,
        Err(_) => {
            let t = texts::error_texts(ErrorKind::Internal, lang);
            fallback_page(lang, t.title, t.next_step)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------------------

/// Why the previous sign-in attempt failed. Messages never reveal whether an account exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong identifier or password (or no such account; the page does not say which).
    InvalidCredentials,
    /// Too many failed attempts; sign-in is temporarily blocked.
    Locked,
    /// Identifier or password was left empty.
    MissingFields,
    /// The sign-in form is too old; the user should start again.
    Expired,
    /// Three wrong second-factor codes: the password must be entered again.
    TooManyCodes,
    /// The identifier is none of phone, e-mail, SNILS, INN.
    BadIdentifier,
    /// A SNILS with a wrong check number or length.
    BadSnils,
    /// An INN with a wrong check digit or length.
    BadInn,
    /// A phone number that is not a Russian mobile or landline number.
    BadPhone,
    /// A passkey was not accepted (the precise reason).
    Passkey(WebauthnProblem),
    /// Not an error: the password was reset, sign in with the new one.
    PasswordReset,
}

/// The sign-in page: a form `POST action` with hidden `tx`, `csrf` and the fields
/// `identifier`, `password`, `remember=on`.
#[derive(Debug, Clone)]
pub struct LoginPage<'a> {
    pub lang: Lang,
    /// The portal the user is signing in to.
    pub client_name: &'a str,
    /// Form action URL, e.g. `"/login"`.
    pub action: &'a str,
    /// Hidden field `tx`.
    pub tx: &'a str,
    /// Hidden field `csrf`.
    pub csrf: &'a str,
    /// Prefill for the identifier field (login_hint or previous input).
    pub identifier: Option<&'a str>,
    pub error: Option<LoginError>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTemplate<'a> {
    page: Layout<'a>,
    t: &'static texts::LoginTexts,
    client_name: &'a str,
    action: &'a str,
    tx: &'a str,
    csrf: &'a str,
    identifier: &'a str,
    error: Option<&'static str>,
    focus_password: bool,
    /// `PasswordReset` is good news: shown as a notice, not an alert.
    notice: bool,
    /// The portal needs a passkey: this note, and the passkey before the password.
    passkey_first: Option<&'static str>,
}

impl LoginPage<'_> {
    pub fn render(&self) -> String {
        self.render_inner(false)
    }

    /// The page for a portal that needs a passkey sign-in: it says so, and offers the
    /// passkey first (the password form follows).
    pub fn render_passkey_first(&self) -> String {
        self.render_inner(true)
    }

    fn render_inner(&self, passkey_first: bool) -> String {
        let t = texts::login_texts(self.lang);
        let identifier = self.identifier.unwrap_or_default();
        let template = LoginTemplate {
            page: Layout::new(self.lang, t.heading),
            t,
            client_name: self.client_name,
            action: self.action,
            tx: self.tx,
            csrf: self.csrf,
            identifier,
            error: self.error.map(|e| texts::login_error(e, self.lang)),
            focus_password: !identifier.is_empty(),
            notice: self.error == Some(LoginError::PasswordReset),
            passkey_first: passkey_first.then(|| step_up::passkey_first_note(self.lang)),
        };
        render_or_fallback(&template, self.lang)
    }
}

// ---------------------------------------------------------------------------------------
// Consent
// ---------------------------------------------------------------------------------------

/// The consent page: lists what the portal asks for, with two submit buttons
/// `name="decision" value="allow"` and `value="deny"`, plus hidden `tx` and `csrf`.
#[derive(Debug, Clone)]
pub struct ConsentPage<'a> {
    pub lang: Lang,
    pub client_name: &'a str,
    pub action: &'a str,
    pub tx: &'a str,
    pub csrf: &'a str,
    /// Scope names; known ones are shown as a human description, unknown ones by name.
    pub scopes: &'a [&'a str],
    /// How the signed-in user is shown ("Иван И.", an e-mail, ...).
    pub user_display: &'a str,
}

struct ScopeItem<'a> {
    known: bool,
    text: &'a str,
    name: &'a str,
    sensitive: bool,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentTemplate<'a> {
    page: Layout<'a>,
    t: &'static texts::ConsentTexts,
    client_name: &'a str,
    action: &'a str,
    tx: &'a str,
    csrf: &'a str,
    scopes: Vec<ScopeItem<'a>>,
    user_display: &'a str,
    withheld: Vec<identity::WithheldItem>,
    sensitive_mark: &'static str,
    withheld_heading: &'static str,
    withheld_hint: &'static str,
    profile_link: &'static str,
}

impl ConsentPage<'_> {
    pub fn render(&self) -> String {
        self.render_with(&ConsentExtra::default())
    }

    /// The page with sensitive scopes marked and the scopes withheld by account level named
    /// with the reason (issue 5).
    pub fn render_with(&self, extra: &ConsentExtra<'_>) -> String {
        let t = texts::consent_texts(self.lang);
        let mut seen: Vec<&str> = Vec::with_capacity(self.scopes.len());
        let mut scopes = Vec::with_capacity(self.scopes.len());
        for &scope in self.scopes {
            if scope.is_empty() || seen.contains(&scope) {
                continue;
            }
            seen.push(scope);
            // A withheld scope is listed only under "the portal will not receive".
            if extra.withheld.iter().any(|w| w.scope == scope) {
                continue;
            }
            let sensitive = extra.sensitive.contains(&scope);
            scopes.push(match scope_description(scope, self.lang) {
                Some(text) => ScopeItem {
                    known: true,
                    text,
                    name: scope,
                    sensitive,
                },
                None => ScopeItem {
                    known: false,
                    text: scope,
                    name: scope,
                    sensitive,
                },
            });
        }
        let words = identity::consent_words(self.lang);
        let template = ConsentTemplate {
            page: Layout::new(self.lang, t.heading),
            t,
            client_name: self.client_name,
            action: self.action,
            tx: self.tx,
            csrf: self.csrf,
            scopes,
            user_display: self.user_display,
            withheld: identity::withheld_items(extra, self.lang),
            sensitive_mark: words.sensitive_mark,
            withheld_heading: words.withheld_heading,
            withheld_hint: words.withheld_hint,
            profile_link: words.profile_link,
        };
        render_or_fallback(&template, self.lang)
    }
}

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// What went wrong; each kind has a title and a sentence on what to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidClient,
    InvalidRedirectUri,
    BadRequest,
    SessionExpired,
    LogoutFailed,
    NotFound,
    /// Too many sign-ins started from the person's address (429).
    TooManyRequests,
    Internal,
}

impl ErrorKind {
    /// A suggested HTTP status code for the page.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidClient
            | ErrorKind::InvalidRedirectUri
            | ErrorKind::BadRequest
            | ErrorKind::SessionExpired
            | ErrorKind::LogoutFailed => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Internal => 500,
        }
    }
}

/// An error page. `detail` (plain text, escaped on output) is shown below if present.
#[derive(Debug, Clone)]
pub struct ErrorPage<'a> {
    pub lang: Lang,
    pub kind: ErrorKind,
    pub detail: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorTemplate<'a> {
    page: Layout<'a>,
    title: &'static str,
    next_step: &'static str,
    detail: Option<&'a str>,
}

impl ErrorPage<'_> {
    pub fn render(&self) -> String {
        let t = texts::error_texts(self.kind, self.lang);
        let template = ErrorTemplate {
            page: Layout::new(self.lang, t.title),
            title: t.title,
            next_step: t.next_step,
            detail: self.detail.filter(|d| !d.is_empty()),
        };
        render_or_fallback(&template, self.lang)
    }
}

// ---------------------------------------------------------------------------------------
// Logout
// ---------------------------------------------------------------------------------------

/// "Sign out of Propusk?": a form `POST action` with hidden `csrf`, the given hidden
/// fields, and a submit button `name="confirm" value="yes"`.
#[derive(Debug, Clone)]
pub struct LogoutConfirmPage<'a> {
    pub lang: Lang,
    pub action: &'a str,
    pub csrf: &'a str,
    /// Extra hidden inputs (e.g. `post_logout_redirect_uri`, `state`), in order.
    pub hidden: &'a [(&'a str, &'a str)],
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct LogoutConfirmTemplate<'a> {
    page: Layout<'a>,
    t: &'static texts::LogoutTexts,
    action: &'a str,
    csrf: &'a str,
    hidden: &'a [(&'a str, &'a str)],
}

impl LogoutConfirmPage<'_> {
    pub fn render(&self) -> String {
        let t = texts::logout_texts(self.lang);
        let template = LogoutConfirmTemplate {
            page: Layout::new(self.lang, t.heading),
            t,
            action: self.action,
            csrf: self.csrf,
            hidden: self.hidden,
        };
        render_or_fallback(&template, self.lang)
    }
}

/// "You have signed out" page.
#[derive(Debug, Clone, Copy)]
pub struct LoggedOutPage {
    pub lang: Lang,
}

#[derive(Template)]
#[template(path = "logged_out.html")]
struct LoggedOutTemplate<'a> {
    page: Layout<'a>,
    t: &'static texts::LoggedOutTexts,
}

impl LoggedOutPage {
    pub fn render(&self) -> String {
        let t = texts::logged_out_texts(self.lang);
        let template = LoggedOutTemplate {
            page: Layout::new(self.lang, t.heading),
            t,
        };
        render_or_fallback(&template, self.lang)
    }
}

// ---------------------------------------------------------------------------------------
// form_post
// ---------------------------------------------------------------------------------------

/// Auto-submitting form for OAuth `response_mode=form_post`: `<form method="post"
/// action=redirect_uri>` with hidden inputs, submitted by the external script
/// `/static/form_post.js`, plus a visible submit button for browsers without JavaScript.
/// Texts are shown in both languages (the page is usually seen for a split second).
#[derive(Debug, Clone)]
pub struct FormPostPage<'a> {
    /// The client's redirect_uri.
    pub action: &'a str,
    /// Response parameters (`code`, `state`, `iss`, or `error`, ...), in order.
    pub fields: &'a [(&'a str, &'a str)],
}

#[derive(Template)]
#[template(path = "form_post.html")]
struct FormPostTemplate<'a> {
    page: Layout<'a>,
    action: &'a str,
    fields: &'a [(&'a str, &'a str)],
}

impl FormPostPage<'_> {
    pub fn render(&self) -> String {
        let template = FormPostTemplate {
            page: Layout::new(Lang::Ru, "Переход на портал / Redirecting"),
            action: self.action,
            fields: self.fields,
        };
        match template.render() {
            Ok(html) => html,
            // Still deliver the response parameters so the sign-in can complete.
            Err(_) => {
                let mut inputs = String::new();
                for (name, value) in self.fields {
                    inputs.push_str(&format!(
                        "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
                        escape_html(name),
                        escape_html(value)
                    ));
                }
                format!(
                    "<!DOCTYPE html>\n<html lang=\"ru\">\n<head>\n<meta charset=\"utf-8\">\n\
                     <title>Пропуск</title>\n<script src=\"/static/form_post.js\" defer></script>\n\
                     </head>\n<body>\n<form method=\"post\" action=\"{}\">\n{}\
                     <button type=\"submit\">Продолжить / Continue</button>\n</form>\n</body>\n</html>\n",
                    escape_html(self.action),
                    inputs
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Static assets
// ---------------------------------------------------------------------------------------

const PROPUSK_CSS: &[u8] = include_bytes!("../static/propusk.css");
const FORM_POST_JS: &[u8] = include_bytes!("../static/form_post.js");
const WEBAUTHN_JS: &[u8] = include_bytes!("../static/webauthn.js");

/// Static assets served under `/static/`: returns `(bytes, content type)` for
/// `"propusk.css"` and `"form_post.js"`, `None` for anything else.
pub fn static_asset(name: &str) -> Option<(&'static [u8], &'static str)> {
    match name {
        "propusk.css" => Some((PROPUSK_CSS, "text/css; charset=utf-8")),
        "form_post.js" => Some((FORM_POST_JS, "text/javascript; charset=utf-8")),
        "webauthn.js" => Some((WEBAUTHN_JS, "text/javascript; charset=utf-8")),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
