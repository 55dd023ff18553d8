//! Pages of a step-up to the phishing-resistant level (a portal that needs a passkey or an
//! electronic-signature sign-in): "confirm with your passkey" after the password or over a
//! weaker session, and "this portal needs a passkey" for a person who has none.

use askama::Template;

use crate::{render_or_fallback, Lang, Layout, WebauthnProblem};

struct StepUpTexts {
    heading: &'static str,
    lead_before: &'static str,
    lead_after: &'static str,
    button: &'static str,
    unsupported: &'static str,
    cancel: &'static str,
}

static STEP_UP_RU: StepUpTexts = StepUpTexts {
    heading: "Подтвердите вход ключом доступа",
    lead_before: "Портал «",
    lead_after: "» требует вход с ключом доступа (passkey) или электронной подписью. \
                 Подтвердите вход ключом доступа, который вы добавили в Пропуск: \
                 отпечатком пальца, лицом или PIN-кодом устройства.",
    button: "Подтвердить ключом доступа",
    unsupported: "Этот браузер не поддерживает ключи доступа. Откройте страницу в другом \
                  браузере или на устройстве с ключом.",
    cancel: "Вернуться на портал",
};

static STEP_UP_EN: StepUpTexts = StepUpTexts {
    heading: "Confirm the sign-in with a passkey",
    lead_before: "",
    lead_after: " requires a passkey or electronic-signature sign-in. Confirm with a \
                 passkey you added to Propusk: your fingerprint, face or the device PIN.",
    button: "Confirm with a passkey",
    unsupported: "This browser does not support passkeys. Open the page in another browser \
                  or on the device that holds your passkey.",
    cancel: "Return to the portal",
};

/// "Confirm with your passkey": a WebAuthn form (`data-webauthn="get"`, started at
/// `start`, finished at `action`) with hidden `tx` and `csrf`, and a form that returns to
/// the portal (`cancel_action`).
#[derive(Debug, Clone)]
pub struct PasskeyStepUpPage<'a> {
    pub lang: Lang,
    pub client_name: &'a str,
    pub action: &'a str,
    pub start: &'a str,
    pub cancel_action: &'a str,
    pub tx: &'a str,
    pub csrf: &'a str,
    /// Why the previous answer was not accepted.
    pub error: Option<WebauthnProblem>,
}

#[derive(Template)]
#[template(path = "passkey_step_up.html")]
struct StepUpTemplate<'a> {
    page: Layout<'a>,
    t: &'static StepUpTexts,
    client_name: &'a str,
    action: &'a str,
    start: &'a str,
    cancel_action: &'a str,
    tx: &'a str,
    csrf: &'a str,
    error: Option<&'static str>,
}

impl PasskeyStepUpPage<'_> {
    pub fn render(&self) -> String {
        let t = match self.lang {
            Lang::Ru => &STEP_UP_RU,
            Lang::En => &STEP_UP_EN,
        };
        let template = StepUpTemplate {
            page: Layout::new(self.lang, t.heading),
            t,
            client_name: self.client_name,
            action: self.action,
            start: self.start,
            cancel_action: self.cancel_action,
            tx: self.tx,
            csrf: self.csrf,
            error: self.error.map(|p| crate::problem_text(p, self.lang)),
        };
        render_or_fallback(&template, self.lang)
    }
}

struct NeededTexts {
    heading: &'static str,
    lead_before: &'static str,
    lead_after: &'static str,
    how_heading: &'static str,
    steps: [&'static str; 3],
    security_link: &'static str,
    back: &'static str,
    back_hint: &'static str,
}

static NEEDED_RU: NeededTexts = NeededTexts {
    heading: "Нужен вход с ключом доступа",
    lead_before: "Портал «",
    lead_after: "» принимает только вход с ключом доступа (passkey) или электронной \
                 подписью. Пароля и кода для него недостаточно, а ключа доступа у вас пока нет.",
    how_heading: "Как добавить ключ доступа",
    steps: [
        "Откройте страницу «Безопасность» и войдите.",
        "Нажмите «Добавить ключ доступа» и подтвердите отпечатком пальца, лицом или PIN-кодом \
         устройства.",
        "Вернитесь на портал и войдите снова — Пропуск попросит ключ доступа.",
    ],
    security_link: "Открыть страницу «Безопасность»",
    back: "Вернуться на портал",
    back_hint: "Портал получит ответ, что вход не выполнен.",
};

static NEEDED_EN: NeededTexts = NeededTexts {
    heading: "This portal needs a passkey sign-in",
    lead_before: "",
    lead_after: " accepts only a passkey or electronic-signature sign-in. A password and a \
                 code are not enough for it, and you have no passkey yet.",
    how_heading: "How to add a passkey",
    steps: [
        "Open the Security page and sign in.",
        "Choose \u{201c}Add a passkey\u{201d} and confirm with your fingerprint, face or device PIN.",
        "Return to the portal and sign in again: Propusk will ask for the passkey.",
    ],
    security_link: "Open the Security page",
    back: "Return to the portal",
    back_hint: "The portal will be told that the sign-in did not happen.",
};

/// "This portal needs a passkey": how to add one (a link to `security_url`) and a form
/// `POST action` with hidden `tx` and `csrf` that returns to the portal.
#[derive(Debug, Clone)]
pub struct PasskeyNeededPage<'a> {
    pub lang: Lang,
    pub client_name: &'a str,
    pub security_url: &'a str,
    pub action: &'a str,
    pub tx: &'a str,
    pub csrf: &'a str,
}

#[derive(Template)]
#[template(path = "passkey_needed.html")]
struct NeededTemplate<'a> {
    page: Layout<'a>,
    t: &'static NeededTexts,
    client_name: &'a str,
    security_url: &'a str,
    action: &'a str,
    tx: &'a str,
    csrf: &'a str,
}

impl PasskeyNeededPage<'_> {
    pub fn render(&self) -> String {
        let t = match self.lang {
            Lang::Ru => &NEEDED_RU,
            Lang::En => &NEEDED_EN,
        };
        let template = NeededTemplate {
            page: Layout::new(self.lang, t.heading),
            t,
            client_name: self.client_name,
            security_url: self.security_url,
            action: self.action,
            tx: self.tx,
            csrf: self.csrf,
        };
        render_or_fallback(&template, self.lang)
    }
}

/// The note on a sign-in page whose portal needs a passkey (the passkey comes first).
pub(crate) fn passkey_first_note(lang: Lang) -> &'static str {
    match lang {
        Lang::Ru => {
            "Этот портал требует вход с ключом доступа (passkey) или электронной \
                     подписью. Войдите ключом доступа; после пароля Пропуск тоже попросит ключ."
        }
        Lang::En => {
            "This portal requires a passkey or electronic-signature sign-in. Sign in \
                     with a passkey; after a password Propusk will ask for the passkey as well."
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_up_page_has_the_webauthn_form_and_a_way_back() {
        let html = PasskeyStepUpPage {
            lang: Lang::Ru,
            client_name: "Налог<и>",
            action: "/login/passkey-step-up/finish",
            start: "/login/passkey-step-up/start",
            cancel_action: "/login/passkey-needed",
            tx: "t\"1",
            csrf: "c",
            error: Some(WebauthnProblem::Cancelled),
        }
        .render();
        assert!(html.contains("Подтвердите вход ключом доступа"));
        assert!(html.contains("Налог&#60;и&#62;") && html.contains("t&#34;1"));
        assert!(html.contains("data-webauthn=\"get\""));
        assert!(html.contains("data-start=\"/login/passkey-step-up/start\""));
        assert!(html.contains("/static/webauthn.js"));
        assert!(html.contains("action=\"/login/passkey-needed\""));
        assert!(html.contains("role=\"alert\""));
        assert!(!html.contains("<script>"), "no inline script");
        let en = PasskeyStepUpPage {
            lang: Lang::En,
            error: None,
            ..PasskeyStepUpPage {
                lang: Lang::Ru,
                client_name: "Tax",
                action: "/a",
                start: "/s",
                cancel_action: "/c",
                tx: "t",
                csrf: "c",
                error: None,
            }
        }
        .render();
        assert!(
            en.contains("Confirm the sign-in with a passkey") && !en.contains("role=\"alert\"")
        );
    }

    #[test]
    fn needed_page_explains_and_returns() {
        for (lang, needle) in [
            (Lang::Ru, "Как добавить ключ доступа"),
            (Lang::En, "How to add a passkey"),
        ] {
            let html = PasskeyNeededPage {
                lang,
                client_name: "Tax",
                security_url: "/account/security",
                action: "/login/passkey-needed",
                tx: "t",
                csrf: "c",
            }
            .render();
            assert!(html.contains(needle), "{html}");
            assert!(html.contains("href=\"/account/security\""));
            assert!(html.contains("method=\"post\" action=\"/login/passkey-needed\""));
            assert!(html.contains("name=\"csrf\" value=\"c\""));
        }
    }

    #[test]
    fn login_page_can_lead_with_the_passkey() {
        let page = crate::LoginPage {
            lang: Lang::En,
            client_name: "Tax",
            action: "/login",
            tx: "t",
            csrf: "c",
            identifier: None,
            error: None,
        };
        let first = page.render_passkey_first();
        let (passkey, password) = (
            first.find("id=\"passkey-form\"").unwrap(),
            first.find("action=\"/login\"").unwrap(),
        );
        assert!(passkey < password, "the passkey comes first: {first}");
        assert!(first.contains("id=\"passkey-required\"") && first.contains("requires a passkey"));
        assert_eq!(first.matches("id=\"passkey-form\"").count(), 1);
        let plain = page.render();
        assert!(
            plain.find("id=\"passkey-form\"").unwrap() > plain.find("action=\"/login\"").unwrap()
        );
        assert!(!plain.contains("passkey-required"));
    }
}
