//! The citizen's security page (`/account/security`): factors with their last use, TOTP
//! enrolment with a QR code, recovery codes shown once, passkeys and security keys; and the
//! texts of WebAuthn problems shown on the sign-in pages.

use askama::Template;

use crate::{render_or_fallback, Lang, Layout};

/// Why a passkey or security key was not accepted (precise, for the person).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebauthnProblem {
    /// The browser's answer could not be read.
    Malformed,
    /// The request expired or was already used.
    Expired,
    /// The answer belongs to another request or browser.
    WrongRequest,
    /// The answer was made for another site.
    WrongSite,
    /// The key is not registered (for this person).
    UnknownKey,
    /// The signature counter went backwards: the key may have been copied.
    Cloned,
    /// The device did not check the person (PIN, fingerprint, face).
    NotVerified,
    /// The key is already registered.
    AlreadyRegistered,
    /// Anything else that does not verify.
    Invalid,
    /// The person cancelled, or the browser gave up (timeout, no key).
    Cancelled,
}

/// The text of a WebAuthn problem.
pub fn problem_text(p: WebauthnProblem, lang: Lang) -> &'static str {
    use WebauthnProblem as P;
    match (p, lang) {
        (P::Malformed, Lang::Ru) => "Браузер прислал ответ, который не удалось прочитать. Попробуйте ещё раз.",
        (P::Malformed, Lang::En) => "The browser sent an answer that could not be read. Please try again.",
        (P::Expired, Lang::Ru) => "Запрос ключа устарел или уже использован. Попробуйте ещё раз.",
        (P::Expired, Lang::En) => "The key request has expired or was already used. Please try again.",
        (P::WrongRequest, Lang::Ru) => "Ответ ключа относится к другому запросу. Попробуйте ещё раз на этой странице.",
        (P::WrongRequest, Lang::En) => "The key answered a different request. Please try again on this page.",
        (P::WrongSite, Lang::Ru) => "Ключ подписал запрос другого сайта. Убедитесь, что адрес в браузере — адрес Пропуска.",
        (P::WrongSite, Lang::En) => "The key signed a request of another site. Make sure the browser shows Propusk's address.",
        (P::UnknownKey, Lang::Ru) => "Этот ключ не привязан к учётной записи. Войдите по паролю и добавьте ключ на странице безопасности.",
        (P::UnknownKey, Lang::En) => "This key is not linked to an account. Sign in with your password and add the key on the security page.",
        (P::Cloned, Lang::Ru) => "Ключ отклонён: его счётчик подписей уменьшился, ключ мог быть скопирован. Войдите другим способом и удалите этот ключ.",
        (P::Cloned, Lang::En) => "The key was refused: its signature counter went backwards, so it may have been copied. Sign in another way and remove this key.",
        (P::NotVerified, Lang::Ru) => "Устройство не проверило вас (ПИН-код, отпечаток или лицо). Попробуйте ещё раз.",
        (P::NotVerified, Lang::En) => "The device did not check it is you (PIN, fingerprint or face). Please try again.",
        (P::AlreadyRegistered, Lang::Ru) => "Этот ключ уже добавлен.",
        (P::AlreadyRegistered, Lang::En) => "This key has already been added.",
        (P::Invalid, Lang::Ru) => "Подпись ключа не прошла проверку. Попробуйте ещё раз или выберите другой способ.",
        (P::Invalid, Lang::En) => "The key's signature did not verify. Try again or choose another method.",
        (P::Cancelled, Lang::Ru) => "Запрос ключа отменён или время ожидания истекло. Попробуйте ещё раз или выберите другой способ.",
        (P::Cancelled, Lang::En) => "The key request was cancelled or timed out. Try again or choose another method.",
    }
}

/// What kind of factor a row of the security page is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorKind {
    App,
    RecoveryCodes,
    Passkey,
    SecurityKey,
    /// The Propusk mobile app on a phone, registered for codes by push.
    PushDevice,
}

impl FactorKind {
    fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (FactorKind::App, Lang::Ru) => "Приложение-аутентификатор",
            (FactorKind::App, Lang::En) => "Authenticator app",
            (FactorKind::RecoveryCodes, Lang::Ru) => "Резервные коды",
            (FactorKind::RecoveryCodes, Lang::En) => "Recovery codes",
            (FactorKind::Passkey, Lang::Ru) => "Ключ доступа (биометрия)",
            (FactorKind::Passkey, Lang::En) => "Passkey (biometrics)",
            (FactorKind::SecurityKey, Lang::Ru) => "Аппаратный ключ",
            (FactorKind::SecurityKey, Lang::En) => "Security key",
            (FactorKind::PushDevice, Lang::Ru) => "Приложение Пропуск (коды для входа)",
            (FactorKind::PushDevice, Lang::En) => "Propusk app (sign-in codes)",
        }
    }
}

/// One factor the person has, as listed on the page.
#[derive(Debug, Clone)]
pub struct FactorRow<'a> {
    pub kind: FactorKind,
    /// A label ("Ключ доступа 23.11.2026"), or for recovery codes "7 of 10 left".
    pub name: &'a str,
    /// `dd.mm.yyyy hh:mm`.
    pub added: &'a str,
    /// `dd.mm.yyyy hh:mm`, or `None` if never used.
    pub last_used: Option<&'a str>,
    /// The `factor` value of the remove form.
    pub remove: &'a str,
}

/// A message at the top of the page after an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityNotice {
    Confirmed,
    Enrolled,
    Removed,
    /// Confirm with an existing factor first.
    ConfirmFirst,
    WrongCode,
    WrongPassword,
    Problem(WebauthnProblem),
    Nothing,
}

fn notice_text(n: SecurityNotice, lang: Lang) -> (&'static str, bool) {
    use SecurityNotice as N;
    match (n, lang) {
        (N::Confirmed, Lang::Ru) => (
            "Подтверждено. В ближайшие 5 минут можно менять способы входа.",
            false,
        ),
        (N::Confirmed, Lang::En) => (
            "Confirmed. You can change your sign-in methods for the next 5 minutes.",
            false,
        ),
        (N::Enrolled, Lang::Ru) => (
            "Способ входа добавлен. Мы отправили вам уведомление.",
            false,
        ),
        (N::Enrolled, Lang::En) => (
            "The sign-in method was added. We have sent you a notification.",
            false,
        ),
        (N::Removed, Lang::Ru) => ("Способ входа удалён. Мы отправили вам уведомление.", false),
        (N::Removed, Lang::En) => (
            "The sign-in method was removed. We have sent you a notification.",
            false,
        ),
        (N::ConfirmFirst, Lang::Ru) => ("Сначала подтвердите, что это вы.", true),
        (N::ConfirmFirst, Lang::En) => ("First confirm that it is you.", true),
        (N::WrongCode, Lang::Ru) => ("Код не подходит. Проверьте его и попробуйте ещё раз.", true),
        (N::WrongCode, Lang::En) => ("The code is not right. Check it and try again.", true),
        (N::WrongPassword, Lang::Ru) => ("Неверный пароль.", true),
        (N::WrongPassword, Lang::En) => ("The password is incorrect.", true),
        (N::Problem(p), lang) => (problem_text(p, lang), true),
        (N::Nothing, Lang::Ru) => ("Нечего удалять.", true),
        (N::Nothing, Lang::En) => ("There was nothing to remove.", true),
    }
}

/// How the person confirms it is them before a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// A code from the authenticator app (or a recovery code).
    Code,
    /// The password (the person has no other factor).
    Password,
    /// Only passkeys / security keys: confirm with one of them (or sign in again).
    Key,
}

struct Texts {
    heading: &'static str,
    lead: &'static str,
    factors: &'static str,
    none: &'static str,
    added: &'static str,
    last_used: &'static str,
    never: &'static str,
    remove: &'static str,
    confirm_heading: &'static str,
    confirm_lead: &'static str,
    code: &'static str,
    password: &'static str,
    confirm: &'static str,
    confirm_key: &'static str,
    signin_again: &'static str,
    add_heading: &'static str,
    add_app: &'static str,
    new_codes: &'static str,
    add_passkey: &'static str,
    add_security_key: &'static str,
    key_name: &'static str,
    no_webauthn: &'static str,
}

static RU: Texts = Texts {
    heading: "Безопасность",
    lead: "Способы входа в вашу учётную запись.",
    factors: "Способы входа",
    none: "Кроме пароля, способов входа нет.",
    added: "добавлен",
    last_used: "последний вход",
    never: "не использовался",
    remove: "Удалить",
    confirm_heading: "Подтвердите, что это вы",
    confirm_lead: "Чтобы добавить или удалить способ входа, подтвердите вход одним из уже настроенных способов.",
    code: "Код из приложения или резервный код",
    password: "Пароль",
    confirm: "Подтвердить",
    confirm_key: "Подтвердить ключом",
    signin_again: "Войти заново",
    add_heading: "Добавить способ входа",
    add_app: "Подключить приложение-аутентификатор",
    new_codes: "Выпустить новые резервные коды",
    add_passkey: "Добавить ключ доступа (биометрия)",
    add_security_key: "Добавить аппаратный ключ",
    key_name: "Название ключа (необязательно)",
    no_webauthn: "Этот браузер не поддерживает ключи доступа.",
};

static EN: Texts = Texts {
    heading: "Security",
    lead: "The ways to sign in to your account.",
    factors: "Sign-in methods",
    none: "You have no sign-in method besides the password.",
    added: "added",
    last_used: "last used",
    never: "never used",
    remove: "Remove",
    confirm_heading: "Confirm it is you",
    confirm_lead: "To add or remove a sign-in method, confirm with one you already have.",
    code: "App code or recovery code",
    password: "Password",
    confirm: "Confirm",
    confirm_key: "Confirm with a key",
    signin_again: "Sign in again",
    add_heading: "Add a sign-in method",
    add_app: "Set up an authenticator app",
    new_codes: "Issue new recovery codes",
    add_passkey: "Add a passkey (biometrics)",
    add_security_key: "Add a security key",
    key_name: "Key name (optional)",
    no_webauthn: "This browser does not support passkeys.",
};

fn texts(lang: Lang) -> &'static Texts {
    match lang {
        Lang::Ru => &RU,
        Lang::En => &EN,
    }
}

/// The security page. Every form posts `csrf`; the WebAuthn buttons are driven by
/// `/static/webauthn.js` (`data-webauthn` attributes).
#[derive(Debug, Clone)]
pub struct SecurityPage<'a> {
    pub lang: Lang,
    pub csrf: &'a str,
    /// Who is signed in (login as typed at registration).
    pub user: &'a str,
    pub factors: &'a [FactorRow<'a>],
    /// Whether a change is allowed now (a recent confirmation).
    pub elevated: bool,
    pub confirm: Confirm,
    pub notice: Option<SecurityNotice>,
}

struct Row {
    label: &'static str,
    name: String,
    added: String,
    last_used: Option<String>,
    remove: String,
}

#[derive(Template)]
#[template(path = "security.html")]
struct SecurityTemplate<'a> {
    page: Layout<'a>,
    t: &'static Texts,
    csrf: &'a str,
    user: &'a str,
    rows: Vec<Row>,
    elevated: bool,
    confirm: &'static str,
    notice: Option<&'static str>,
    notice_is_alert: bool,
}

impl SecurityPage<'_> {
    pub fn render(&self) -> String {
        let t = texts(self.lang);
        let (notice, alert) = match self.notice {
            Some(n) => {
                let (text, alert) = notice_text(n, self.lang);
                (Some(text), alert)
            }
            None => (None, false),
        };
        let template = SecurityTemplate {
            page: Layout::new(self.lang, t.heading),
            t,
            csrf: self.csrf,
            user: self.user,
            rows: self
                .factors
                .iter()
                .map(|f| Row {
                    label: f.kind.label(self.lang),
                    name: f.name.to_string(),
                    added: f.added.to_string(),
                    last_used: f.last_used.map(str::to_string),
                    remove: f.remove.to_string(),
                })
                .collect(),
            elevated: self.elevated,
            confirm: match self.confirm {
                Confirm::Code => "code",
                Confirm::Password => "password",
                Confirm::Key => "key",
            },
            notice,
            notice_is_alert: alert,
        };
        render_or_fallback(&template, self.lang)
    }
}

struct TotpTexts {
    heading: &'static str,
    lead: &'static str,
    manual: &'static str,
    code: &'static str,
    submit: &'static str,
    back: &'static str,
}

static TOTP_RU: TotpTexts = TotpTexts {
    heading: "Приложение-аутентификатор",
    lead: "Отсканируйте QR-код приложением-аутентификатором и введите код, который оно покажет.",
    manual: "Или добавьте вручную по ссылке:",
    code: "Код из приложения",
    submit: "Подключить",
    back: "Вернуться",
};

static TOTP_EN: TotpTexts = TotpTexts {
    heading: "Authenticator app",
    lead: "Scan the QR code with an authenticator app and enter the code it shows.",
    manual: "Or add it by hand with this link:",
    code: "Code from the app",
    submit: "Connect",
    back: "Back",
};

/// Enrolment of an authenticator app: the QR code (an SVG drawn on the server) and the
/// otpauth URI, confirmed by a first code (`POST action` with `csrf`, `id`, `code`).
#[derive(Debug, Clone)]
pub struct TotpEnrolPage<'a> {
    pub lang: Lang,
    pub action: &'a str,
    pub csrf: &'a str,
    pub id: &'a str,
    /// `<svg ...>` markup of the QR code (drawn by the server from `uri`; trusted).
    pub qr_svg: &'a str,
    pub uri: &'a str,
    pub wrong_code: bool,
}

#[derive(Template)]
#[template(path = "security_totp.html")]
struct TotpTemplate<'a> {
    page: Layout<'a>,
    t: &'static TotpTexts,
    action: &'a str,
    csrf: &'a str,
    id: &'a str,
    qr_svg: &'a str,
    uri: &'a str,
    error: Option<&'static str>,
}

impl TotpEnrolPage<'_> {
    pub fn render(&self) -> String {
        let t = match self.lang {
            Lang::Ru => &TOTP_RU,
            Lang::En => &TOTP_EN,
        };
        let template = TotpTemplate {
            page: Layout::new(self.lang, t.heading),
            t,
            action: self.action,
            csrf: self.csrf,
            id: self.id,
            qr_svg: self.qr_svg,
            uri: self.uri,
            error: self
                .wrong_code
                .then(|| notice_text(SecurityNotice::WrongCode, self.lang).0),
        };
        render_or_fallback(&template, self.lang)
    }
}

struct CodesTexts {
    heading: &'static str,
    lead: &'static str,
    back: &'static str,
}

static CODES_RU: CodesTexts = CodesTexts {
    heading: "Резервные коды",
    lead: "Сохраните эти коды: они показываются один раз. Каждый код можно использовать один раз вместо кода из приложения. Прежние коды больше не действуют.",
    back: "Я сохранил коды",
};

static CODES_EN: CodesTexts = CodesTexts {
    heading: "Recovery codes",
    lead: "Save these codes: they are shown only once. Each one can be used once instead of an app code. The previous codes no longer work.",
    back: "I have saved the codes",
};

/// The new recovery codes, shown once.
#[derive(Debug, Clone)]
pub struct RecoveryCodesPage<'a> {
    pub lang: Lang,
    pub codes: &'a [String],
}

#[derive(Template)]
#[template(path = "security_codes.html")]
struct CodesTemplate<'a> {
    page: Layout<'a>,
    t: &'static CodesTexts,
    codes: &'a [String],
}

impl RecoveryCodesPage<'_> {
    pub fn render(&self) -> String {
        let t = match self.lang {
            Lang::Ru => &CODES_RU,
            Lang::En => &CODES_EN,
        };
        let template = CodesTemplate {
            page: Layout::new(self.lang, t.heading),
            t,
            codes: self.codes,
        };
        render_or_fallback(&template, self.lang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_page_lists_factors_and_escapes() {
        let rows = [FactorRow {
            kind: FactorKind::Passkey,
            name: "<b>Ноутбук</b>",
            added: "23.11.2026 10:00",
            last_used: None,
            remove: "wa:1",
        }];
        let html = SecurityPage {
            lang: Lang::Ru,
            csrf: "c\"1",
            user: "ivan@example.ru",
            factors: &rows,
            elevated: true,
            confirm: Confirm::Code,
            notice: Some(SecurityNotice::Enrolled),
        }
        .render();
        assert!(html.contains("Ключ доступа (биометрия)"));
        assert!(html.contains("&#60;b&#62;Ноутбук"));
        assert!(html.contains("c&#34;1"));
        assert!(html.contains("value=\"wa:1\""));
        assert!(html.contains("/static/webauthn.js"));
        assert!(!html.contains("<script>"));
        let locked = SecurityPage {
            lang: Lang::En,
            csrf: "c",
            user: "u",
            factors: &[],
            elevated: false,
            confirm: Confirm::Password,
            notice: None,
        }
        .render();
        assert!(locked.contains("Confirm it is you"));
        assert!(locked.contains("name=\"password\""));
        assert!(!locked.contains("Remove"));
    }

    #[test]
    fn push_devices_are_listed_with_their_last_use() {
        let rows = [FactorRow {
            kind: FactorKind::PushDevice,
            name: "iPhone",
            added: "23.11.2026 10:00",
            last_used: Some("23.11.2026 11:00"),
            remove: "push:d1",
        }];
        for (lang, label) in [
            (Lang::Ru, "Приложение Пропуск (коды для входа)"),
            (Lang::En, "Propusk app (sign-in codes)"),
        ] {
            let html = SecurityPage {
                lang,
                csrf: "c",
                user: "u",
                factors: &rows,
                elevated: true,
                confirm: Confirm::Code,
                notice: None,
            }
            .render();
            assert!(html.contains(label), "{html}");
            assert!(html.contains("value=\"push:d1\""));
            assert!(html.contains("23.11.2026 11:00"));
        }
        assert_eq!(crate::Factor::from_value("push"), Some(crate::Factor::Push));
        assert!(crate::Factor::Push.is_sent());
    }

    #[test]
    fn totp_and_codes_pages_render() {
        let html = TotpEnrolPage {
            lang: Lang::En,
            action: "/account/security/totp/confirm",
            csrf: "c",
            id: "i",
            qr_svg: "<svg xmlns=\"http://www.w3.org/2000/svg\"></svg>",
            uri: "otpauth://totp/Propusk:ivan?secret=ABC&issuer=Propusk",
            wrong_code: true,
        }
        .render();
        assert!(html.contains("<svg xmlns"));
        assert!(html.contains("otpauth://totp/Propusk:ivan?secret=ABC&#38;issuer=Propusk"));
        assert!(html.contains("role=\"alert\""));
        let codes = ["ABCDE-FGHJK".to_string()];
        let html = RecoveryCodesPage {
            lang: Lang::Ru,
            codes: &codes,
        }
        .render();
        assert!(html.contains("ABCDE-FGHJK"));
    }
}
