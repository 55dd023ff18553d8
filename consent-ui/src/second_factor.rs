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
}

impl Factor {
    /// The form value of `method`.
    pub fn value(self) -> &'static str {
        match self {
            Factor::Totp => "totp",
            Factor::RecoveryCode => "recovery",
        }
    }

    /// The factor named by a form value.
    pub fn from_value(v: &str) -> Option<Factor> {
        match v {
            "totp" => Some(Factor::Totp),
            "recovery" => Some(Factor::RecoveryCode),
            _ => None,
        }
    }

    fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Factor::Totp, Lang::Ru) => "Код из приложения-аутентификатора",
            (Factor::Totp, Lang::En) => "Code from the authenticator app",
            (Factor::RecoveryCode, Lang::Ru) => "Резервный код",
            (Factor::RecoveryCode, Lang::En) => "Recovery code",
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
}

fn error_text(e: FactorError, lang: Lang) -> &'static str {
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
    }
}

struct Texts {
    heading: &'static str,
    lead: &'static str,
    method: &'static str,
    code: &'static str,
    hint: &'static str,
    submit: &'static str,
}

static RU: Texts = Texts {
    heading: "Подтверждение входа",
    lead: "Пароль верный. Подтвердите, что это вы, вторым способом.",
    method: "Способ подтверждения",
    code: "Код",
    hint: "Код в приложении меняется каждые 30 секунд.",
    submit: "Подтвердить",
};

static EN: Texts = Texts {
    heading: "Confirm sign-in",
    lead: "The password is right. Confirm it is you with a second method.",
    method: "Method",
    code: "Code",
    hint: "The code in the app changes every 30 seconds.",
    submit: "Confirm",
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
    error: Option<&'static str>,
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
        }
        .render();
        assert!(en.contains("Confirm sign-in") && !en.contains("role=\"alert\""));
    }

    #[test]
    fn form_values_round_trip() {
        for f in [Factor::Totp, Factor::RecoveryCode] {
            assert_eq!(Factor::from_value(f.value()), Some(f));
        }
        assert_eq!(Factor::from_value("sms"), None);
    }
}
