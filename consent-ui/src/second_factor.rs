//! The second-factor page: after the password, the user picks a method (authenticator app,
//! recovery code) and enters its code.

use askama::Template;

use crate::{render_or_fallback, Lang, Layout};

/// A second factor the user has set up, in the order to offer them (the last used first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// A code from an authenticator app (TOTP).
    Totp,
    /// One of the one-time recovery codes.
    RecoveryCode,
    /// A one-time code by SMS to the confirmed phone.
    Sms,
    /// A one-time code read out in a voice call to the confirmed phone.
    Voice,
    /// A one-time code by e-mail to the confirmed address.
    Email,
    /// A security key (WebAuthn): a button, not a code (`/static/webauthn.js`).
    SecurityKey,
    /// A one-time code by push to the person's registered mobile app.
    Push,
}

impl Factor {
    /// The form value of `method`.
    pub fn value(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::RecoveryCode => "recovery",
            Factor::Sms => "sms",
            Factor::Voice => "voice",
            Factor::Email => "email",
            Factor::SecurityKey => "security_key",
            Factor::Push => "push",
        }
    }

    /// Whether the code of this factor is sent to the person (asked for first).
    pub fn is_sent(self) -> bool {
        matches!(
            self,
            Factor::Sms | Factor::Voice | Factor::Email | Factor::Push
        )
    }

    /// The factor named by a form value.
    pub fn from_value(v: &str) -> Option<Factor> {
        match v {
            "totp" => Some(Factor::Totp),
            "recovery" => Some(Factor::RecoveryCode),
            "sms" => Some(Factor::Sms),
            "voice" => Some(Factor::Voice),
            "email" => Some(Factor::Email),
            "push" => Some(Factor::Push),
            _ => None,
        }
    }

    fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Factor::Totp, Lang::Ru) => "Код из приложения-аутентификатора",
            (Factor::Totp, Lang::En) => "Code from the authenticator app",
            (Factor::RecoveryCode, Lang::Ru) => "Резервный код",
            (Factor::RecoveryCode, Lang::En) => "Recovery code",
            (Factor::Sms, Lang::Ru) => "Код по SMS",
            (Factor::Sms, Lang::En) => "Code by SMS",
            (Factor::Voice, Lang::Ru) => "Код голосовым звонком",
            (Factor::Voice, Lang::En) => "Code by voice call",
            (Factor::Email, Lang::Ru) => "Код на электронную почту",
            (Factor::Email, Lang::En) => "Code by e-mail",
            (Factor::SecurityKey, Lang::Ru) => "Подтвердить аппаратным ключом",
            (Factor::SecurityKey, Lang::En) => "Confirm with a security key",
            (Factor::Push, Lang::Ru) => "Код в приложении Пропуск",
            (Factor::Push, Lang::En) => "Code in the Propusk app",
        }
    }

    fn send_label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Factor::Voice, Lang::Ru) => "Позвонить и продиктовать код",
            (Factor::Voice, Lang::En) => "Call me with a code",
            (Factor::Email, Lang::Ru) => "Отправить код на почту",
            (Factor::Email, Lang::En) => "E-mail me a code",
            (Factor::Push, Lang::Ru) => "Отправить код в приложение",
            (Factor::Push, Lang::En) => "Send a code to the app",
            (_, Lang::Ru) => "Отправить код по SMS",
            (_, Lang::En) => "Text me a code",
        }
    }
}

/// Why the previous code was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorError {
    /// The code is wrong (or expired).
    WrongCode,
    /// The code was already used.
    UsedCode,
    /// The code is not in the expected format.
    Malformed,
    /// The portal asks for a stronger sign-in than the password alone.
    StepUp,
    /// No code is waiting: it expired (5 minutes), was voided, or none was asked for.
    Expired,
    /// Another code was asked for too soon; this many seconds remain.
    TooSoon(u64),
    /// Too many codes were asked for in the last hour.
    TooManySends,
    /// The code was wrong; this many attempts remain for it.
    WrongLeft(u64),
    /// The security key was not accepted (the precise reason).
    SecurityKey(crate::WebauthnProblem),
}

fn error_text(e: FactorError, lang: Lang) -> String {
    match (e, lang) {
        (FactorError::Expired, Lang::Ru) => {
            "Код недействителен: он устарел (код действует 5 минут) или ещё не запрошен. Запросите новый код.".into()
        }
        (FactorError::Expired, Lang::En) => {
            "This code is no longer valid: it has expired (a code lasts 5 minutes) or none was sent. Ask for a new code.".into()
        }
        (FactorError::TooSoon(s), Lang::Ru) => {
            format!("Новый код можно запросить через {s} с. Предыдущий код ещё действует.")
        }
        (FactorError::TooSoon(s), Lang::En) => {
            format!("You can ask for a new code in {s} s. The previous code is still valid.")
        }
        (FactorError::TooManySends, Lang::Ru) => {
            "Слишком много запросов кода. Попробуйте через час или выберите другой способ.".into()
        }
        (FactorError::TooManySends, Lang::En) => {
            "Too many codes were requested. Try again in an hour or choose another method.".into()
        }
        (FactorError::WrongLeft(n), Lang::Ru) => {
            format!("Код не подходит. Осталось попыток: {n}.")
        }
        (FactorError::WrongLeft(n), Lang::En) => {
            format!("The code is not right. Attempts left: {n}.")
        }
        (FactorError::SecurityKey(p), lang) => crate::problem_text(p, lang).into(),
        (e, lang) => fixed_error_text(e, lang).into(),
    }
}

fn fixed_error_text(e: FactorError, lang: Lang) -> &'static str {
    match (e, lang) {
        (FactorError::WrongCode, Lang::Ru) => "Код не подходит. Проверьте его и попробуйте ещё раз.",
        (FactorError::WrongCode, Lang::En) => "The code is not right. Check it and try again.",
        (FactorError::UsedCode, Lang::Ru) => {
            "Этот код уже использован. Дождитесь нового кода в приложении или введите другой резервный код."
        }
        (FactorError::UsedCode, Lang::En) => {
            "This code has already been used. Wait for a new code in the app or enter another recovery code."
        }
        (FactorError::Malformed, Lang::Ru) => {
            "Код из приложения состоит из 6 цифр, резервный код — из 10 букв и цифр."
        }
        (FactorError::Malformed, Lang::En) => {
            "An app code has 6 digits; a recovery code has 10 letters and digits."
        }
        (FactorError::StepUp, Lang::Ru) => {
            "Портал просит подтвердить вход вторым способом."
        }
        (FactorError::StepUp, Lang::En) => {
            "The portal asks you to confirm the sign-in with a second method."
        }
        (_, Lang::Ru) => "Код не подходит.",
        (_, Lang::En) => "The code is not right.",
    }
}

struct Texts {
    heading: &'static str,
    lead: &'static str,
    method: &'static str,
    code: &'static str,
    hint: &'static str,
    submit: &'static str,
    sent_to: &'static str,
    get_code: &'static str,
    resend_hint: &'static str,
}

static RU: Texts = Texts {
    heading: "Подтверждение входа",
    lead: "Пароль верный. Подтвердите, что это вы, вторым способом.",
    method: "Способ подтверждения",
    code: "Код",
    hint: "Код в приложении меняется каждые 30 секунд.",
    submit: "Подтвердить",
    sent_to: "Код отправлен: ",
    get_code: "Получить код",
    resend_hint: "Код не пришёл? Новый можно запросить через 60 секунд.",
};

static EN: Texts = Texts {
    heading: "Confirm sign-in",
    lead: "The password is right. Confirm it is you with a second method.",
    method: "Method",
    code: "Code",
    hint: "The code in the app changes every 30 seconds.",
    submit: "Confirm",
    sent_to: "Code sent to ",
    get_code: "Get a code",
    resend_hint: "No code? You can ask for a new one after 60 seconds.",
};

/// The second-factor form: `POST action` with hidden `tx`, `csrf`, a radio `method`
/// (`totp`, `recovery`) and `code`.
#[derive(Debug, Clone)]
pub struct SecondFactorPage<'a> {
    pub lang: Lang,
    pub action: &'a str,
    pub tx: &'a str,
    pub csrf: &'a str,
    /// The methods to offer, the preselected one first.
    pub factors: &'a [Factor],
    pub error: Option<FactorError>,
    /// Where the "send me a code" buttons post the form (`channel` = `sms`, `voice`,
    /// `email`; the same hidden `tx` and `csrf`).
    pub send_action: &'a str,
    /// The factors whose code is sent, with the masked contact it goes to.
    pub senders: &'a [(Factor, &'a str)],
    /// Where the waiting code was sent (masked), when one was.
    pub sent_to: Option<&'a str>,
}

struct SendItem<'a> {
    value: &'static str,
    label: &'static str,
    to: &'a str,
}

struct MethodItem {
    value: &'static str,
    label: &'static str,
    checked: bool,
}

#[derive(Template)]
#[template(path = "second_factor.html")]
struct SecondFactorTemplate<'a> {
    page: Layout<'a>,
    t: &'static Texts,
    action: &'a str,
    tx: &'a str,
    csrf: &'a str,
    methods: Vec<MethodItem>,
    error: Option<String>,
    send_action: &'a str,
    senders: Vec<SendItem<'a>>,
    sent_to: Option<&'a str>,
}

impl SecondFactorPage<'_> {
    pub fn render(&self) -> String {
        let t = match self.lang {
            Lang::Ru => &RU,
            Lang::En => &EN,
        };
        let template = SecondFactorTemplate {
            page: Layout::new(self.lang, t.heading),
            t,
            action: self.action,
            tx: self.tx,
            csrf: self.csrf,
            methods: self
                .factors
                .iter()
                .enumerate()
                .map(|(i, f)| MethodItem {
                    value: f.value(),
                    label: f.label(self.lang),
                    checked: i == 0,
                })
                .collect(),
            error: self.error.map(|e| error_text(e, self.lang)),
            send_action: self.send_action,
            senders: self
                .senders
                .iter()
                .map(|(f, to)| SendItem {
                    value: f.value(),
                    label: f.send_label(self.lang),
                    to,
                })
                .collect(),
            sent_to: self.sent_to,
        };
        render_or_fallback(&template, self.lang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_methods_first_checked_and_escapes() {
        let html = SecondFactorPage {
            lang: Lang::Ru,
            action: "/login/second-factor",
            tx: "t<1>",
            csrf: "c\"2",
            factors: &[Factor::RecoveryCode, Factor::Totp],
            error: Some(FactorError::WrongCode),
            send_action: "/login/otp/send",
            senders: &[],
            sent_to: None,
        }
        .render();
        assert!(html.contains("Подтверждение входа"));
        assert!(html.contains("value=\"recovery\" checked"));
        assert!(!html.contains("value=\"totp\" checked"));
        assert!(html.contains("Код не подходит"));
        assert!(html.contains("t&#60;1&#62;") && html.contains("c&#34;2"));
        assert!(!html.contains("<script"));
        let en = SecondFactorPage {
            lang: Lang::En,
            action: "/x",
            tx: "t",
            csrf: "c",
            factors: &[Factor::Totp],
            error: None,
            send_action: "/login/otp/send",
            senders: &[],
            sent_to: None,
        }
        .render();
        assert!(en.contains("Confirm sign-in") && !en.contains("role=\"alert\""));
    }

    #[test]
    fn form_values_round_trip() {
        for f in [
            Factor::Totp,
            Factor::RecoveryCode,
            Factor::Sms,
            Factor::Voice,
            Factor::Email,
            Factor::Push,
        ] {
            assert_eq!(Factor::from_value(f.value()), Some(f));
        }
        assert_eq!(Factor::from_value("pigeon"), None);
    }

    #[test]
    fn code_senders_and_precise_errors() {
        let html = SecondFactorPage {
            lang: Lang::Ru,
            action: "/login/second-factor",
            tx: "t",
            csrf: "c",
            factors: &[Factor::Sms, Factor::Email],
            error: Some(FactorError::TooSoon(42)),
            send_action: "/login/otp/send",
            senders: &[
                (Factor::Sms, "+7 *** ***-45-67"),
                (Factor::Email, "i***@example.ru"),
            ],
            sent_to: Some("+7 *** ***-45-67"),
        }
        .render();
        assert!(html.contains(
            "formaction=\"/login/otp/send\" formnovalidate name=\"channel\" value=\"sms\""
        ));
        assert!(html.contains("через 42 с"));
        assert!(html.contains("Код отправлен: +7 *** ***-45-67"));
        assert!(html.contains("value=\"sms\" checked"));
        let en = SecondFactorPage {
            lang: Lang::En,
            action: "/x",
            tx: "t",
            csrf: "c",
            factors: &[Factor::Email],
            error: Some(FactorError::WrongLeft(2)),
            send_action: "/y",
            senders: &[(Factor::Email, "i***@example.ru")],
            sent_to: None,
        }
        .render();
        assert!(en.contains("Attempts left: 2") && en.contains("E-mail me a code"));
    }
}
