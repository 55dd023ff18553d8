//! Pages of the person (issue 5): registration (name + contact -> code -> password), the
//! profile with the identity form (SNILS + passport) and the registry's answer, the "your
//! account level is too low for this portal" page, the blocked / pending account page, and
//! the withheld lines of the consent page. Texts in ru and en live here.

use askama::Template;

use crate::{render_or_fallback, texts, Lang, Layout};

mod profile;
mod register;

pub use profile::*;
pub use register::*;

fn tr(lang: Lang, ru: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Ru => ru,
        Lang::En => en,
    }
}

/// The name of an account level (`simplified`, `standard`, `confirmed`).
pub fn level_name(code: &str, lang: Lang) -> &'static str {
    match code {
        "standard" => tr(lang, "стандартная", "standard"),
        "confirmed" => tr(lang, "подтверждённая", "confirmed"),
        _ => tr(lang, "упрощённая", "simplified"),
    }
}

// ---------------------------------------------------------------------------------------
// Consent: withheld scopes
// ---------------------------------------------------------------------------------------

/// A requested scope the person's account level does not allow.
#[derive(Debug, Clone)]
pub struct WithheldScope<'a> {
    pub scope: &'a str,
    /// The level it needs (`standard`, `confirmed`).
    pub needs: &'a str,
}

/// What the consent page says beyond the scope list.
#[derive(Debug, Clone, Default)]
pub struct ConsentExtra<'a> {
    /// Scopes that get their own marked line (personal numbers, documents).
    pub sensitive: &'a [&'a str],
    pub withheld: &'a [WithheldScope<'a>],
    /// The person's level.
    pub level: &'a str,
}

pub(crate) struct WithheldItem {
    pub name: String,
    pub text: String,
    pub reason: String,
}

pub(crate) struct ConsentWords {
    pub sensitive_mark: &'static str,
    pub withheld_heading: &'static str,
    pub withheld_hint: &'static str,
    pub profile_link: &'static str,
}

pub(crate) fn consent_words(lang: Lang) -> ConsentWords {
    ConsentWords {
        sensitive_mark: tr(
            lang,
            "(персональный номер или документ)",
            "(a personal number or document)",
        ),
        withheld_heading: tr(
            lang,
            "Эти сведения портал не получит:",
            "The portal will not receive:",
        ),
        withheld_hint: tr(
            lang,
            "Чтобы передавать их, повысьте уровень учётной записи: введите СНИЛС и паспорт в профиле.",
            "To share them, raise your account level: enter your SNILS and passport in your profile.",
        ),
        profile_link: tr(lang, "Перейти в профиль", "Go to your profile"),
    }
}

pub(crate) fn withheld_items(extra: &ConsentExtra<'_>, lang: Lang) -> Vec<WithheldItem> {
    extra
        .withheld
        .iter()
        .map(|w| {
            let text = texts::scope_description(w.scope, lang)
                .map(str::to_string)
                .unwrap_or_else(|| w.scope.to_string());
            let reason = match lang {
                Lang::Ru => format!(
                    "нужна {} учётная запись, у вас {}",
                    level_name(w.needs, lang),
                    level_name(extra.level, lang)
                ),
                Lang::En => format!(
                    "needs a {} account, yours is {}",
                    level_name(w.needs, lang),
                    level_name(extra.level, lang)
                ),
            };
            WithheldItem {
                name: w.scope.to_string(),
                text,
                reason,
            }
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Level too low for the portal
// ---------------------------------------------------------------------------------------

/// The portal requires a higher account level than the person has.
#[derive(Debug, Clone)]
pub struct LevelPage<'a> {
    pub lang: Lang,
    pub client_name: &'a str,
    /// Level codes.
    pub needs: &'a str,
    pub has: &'a str,
    /// Where "Cancel" goes: the portal's redirect with `error=access_denied`.
    pub cancel_url: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "level.html")]
struct LevelTemplate<'a> {
    page: Layout<'a>,
    title: &'static str,
    lead: String,
    how: &'static str,
    steps: Vec<&'static str>,
    profile_link: &'static str,
    cancel: &'static str,
    cancel_url: Option<&'a str>,
    needs_code: &'a str,
    has_code: &'a str,
}

impl LevelPage<'_> {
    pub fn render(&self) -> String {
        let l = self.lang;
        let title = tr(
            l,
            "Нужен более высокий уровень учётной записи",
            "A higher account level is needed",
        );
        let lead = match l {
            Lang::Ru => format!(
                "Портал «{}» принимает только {} учётные записи. Ваша учётная запись — {}.",
                self.client_name,
                match self.needs {
                    "confirmed" => "подтверждённые",
                    _ => "стандартные и подтверждённые",
                },
                level_name(self.has, l)
            ),
            Lang::En => format!(
                "{} accepts only {} accounts. Yours is {}.",
                self.client_name,
                match self.needs {
                    "confirmed" => "confirmed",
                    _ => "standard or confirmed",
                },
                level_name(self.has, l)
            ),
        };
        let mut steps = Vec::new();
        if self.has == "simplified" {
            steps.push(tr(
                l,
                "Стандартная: введите в профиле СНИЛС и паспортные данные — их проверят в государственных реестрах (обычно за несколько минут).",
                "Standard: enter your SNILS and passport in your profile; they are checked against the state registries (usually within minutes).",
            ));
        }
        if self.needs == "confirmed" || self.has != "confirmed" {
            steps.push(tr(
                l,
                "Подтверждённая: после проверки документов подтвердите личность в центре обслуживания (с паспортом), через свой банк или квалифицированной электронной подписью.",
                "Confirmed: after the documents are checked, prove your identity at a service centre (with your passport), through your bank, or with a qualified electronic signature.",
            ));
        }
        let t = LevelTemplate {
            page: Layout::new(l, title),
            title,
            lead,
            how: tr(l, "Как повысить уровень:", "How to raise it:"),
            steps,
            profile_link: tr(l, "Перейти в профиль", "Go to your profile"),
            cancel: tr(
                l,
                "Отменить и вернуться на портал",
                "Cancel and return to the portal",
            ),
            cancel_url: self.cancel_url,
            needs_code: self.needs,
            has_code: self.has,
        };
        render_or_fallback(&t, l)
    }
}

// ---------------------------------------------------------------------------------------
// Blocked or pending account
// ---------------------------------------------------------------------------------------

/// Sign-in refused because of the account's status (`blocked`, `pending_confirmation`).
#[derive(Debug, Clone)]
pub struct AccountStatusPage<'a> {
    pub lang: Lang,
    pub status: &'a str,
}

#[derive(Template)]
#[template(path = "level_status.html")]
struct StatusTemplate<'a> {
    page: Layout<'a>,
    title: &'static str,
    lead: &'static str,
    next_step: &'static str,
    status: &'a str,
    /// The activation link of a pending account: (href, text).
    activate: Option<(&'static str, &'static str)>,
}

impl AccountStatusPage<'_> {
    pub fn render(&self) -> String {
        let l = self.lang;
        let (title, lead, next_step) = match self.status {
            "blocked" => (
                tr(l, "Учётная запись заблокирована", "Your account is blocked"),
                tr(
                    l,
                    "Вход в эту учётную запись запрещён службой поддержки.",
                    "Signing in to this account has been blocked by support.",
                ),
                tr(
                    l,
                    "Чтобы разблокировать её, обратитесь в службу поддержки или в центр обслуживания с паспортом.",
                    "To unblock it, contact support or visit a service centre with your passport.",
                ),
            ),
            _ => (
                tr(l, "Учётная запись не активирована", "The account is not activated yet"),
                tr(
                    l,
                    "Эта учётная запись создана для вас в центре обслуживания и ждёт активации.",
                    "This account was created for you at a service centre and waits for activation.",
                ),
                tr(
                    l,
                    "Активируйте её: получите код на телефон или почту, указанные при создании, и задайте свой пароль.",
                    "Activate it: get a code to the phone or e-mail given when it was created, and choose your own password.",
                ),
            ),
        };
        let activate = (self.status != "blocked").then(|| {
            (
                "/activate",
                tr(l, "Активировать учётную запись", "Activate the account"),
            )
        });
        let t = StatusTemplate {
            page: Layout::new(l, title),
            title,
            lead,
            next_step,
            status: self.status,
            activate,
        };
        render_or_fallback(&t, l)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn level_page_names_both_levels_and_the_cancel_link() {
        let html = LevelPage {
            lang: Lang::En,
            client_name: "Tax office",
            needs: "standard",
            has: "simplified",
            cancel_url: Some("https://rp.example/cb?error=access_denied&state=s"),
        }
        .render();
        assert!(html.contains("data-needs=\"standard\""), "{html}");
        assert!(html.contains("Yours is simplified"), "{html}");
        assert!(html.contains("id=\"cancel\""));
        assert!(html.contains("error=access_denied"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn pending_status_page_links_activation_and_activation_pages_name_no_contact() {
        for lang in [Lang::Ru, Lang::En] {
            let html = AccountStatusPage {
                lang,
                status: "pending_confirmation",
            }
            .render();
            assert!(html.contains("href=\"/activate\""), "{html}");
            let html = AccountStatusPage {
                lang,
                status: "blocked",
            }
            .render();
            assert!(!html.contains("/activate"), "{html}");
            let html = ActivatePage {
                lang,
                step: RegisterStep::Code,
                csrf: "c",
                act: Some("a1"),
                identifier: "",
                error: Some("wrong_code"),
                error_text: None,
            }
            .render();
            assert!(html.contains("action=\"/activate\"") && html.contains("name=\"code\""));
            assert!(html.contains("data-error=\"wrong_code\""));
            assert!(
                !html.contains("***"),
                "the code page names no contact: {html}"
            );
        }
    }

    #[test]
    fn register_and_profile_pages_render_in_both_languages() {
        for lang in [Lang::Ru, Lang::En] {
            let html = RegisterPage {
                lang,
                step: RegisterStep::Code,
                csrf: "c",
                reg: Some("r1"),
                values: &[],
                sent_to: Some("i***@e***.ru"),
                error: Some("wrong_code"),
                error_text: None,
            }
            .render();
            assert!(html.contains("name=\"code\"") && html.contains("data-error=\"wrong_code\""));
            let html = ProfilePage {
                lang,
                csrf: "c",
                user_display: "ivan@example.ru",
                level: "simplified",
                status: "active",
                facts: &[],
                verification: Some(VerificationView {
                    state: "mismatch",
                    reason: "name_mismatch",
                }),
                show_form: true,
                values: &[("snils", "<b>".into())],
                error: Some("passport_series"),
                notice: None,
                history: &[],
                contacts: &[ContactView {
                    kind: "mobile",
                    value: Some("+79001234567".into()),
                    is_login: true,
                }],
                addresses: &[],
                code_for: Some(CodeView {
                    change: "ch1",
                    sent_to: "+7 *** ***-45-67",
                }),
            }
            .render();
            assert!(html.contains("action=\"/account/profile/contact/confirm\""));
            assert!(
                html.contains("data-contact=\"mobile\">+79001234567"),
                "{html}"
            );
            assert!(html.contains("data-reason=\"name_mismatch\""));
            assert!(html.contains("name=\"passport_division_code\""));
            assert!(!html.contains("<b>"), "values are escaped");
        }
    }
}
