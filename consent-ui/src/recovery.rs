//! Password pages: change the password (knowing the current one), set a new one after a
//! temporary password or a recovery code; forgot password / forgot login (contact, code);
//! and the short notice pages that follow them.

use askama::Template;

use crate::{render_or_fallback, Lang, Layout};

/// What a password page is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordPurpose {
    /// `/account/password`: the current password and a new one.
    Change,
    /// First sign-in with a temporary password set by an operator.
    Temporary,
    /// After a recovery code: a new password for a forgotten one.
    Reset,
}

/// One reason a password was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordProblem {
    TooShort(usize),
    TooLong(usize),
    NoLowercase,
    NoUppercase,
    NoDigit,
    NoSpecial,
    Sequence,
    Repeated,
    ContainsName,
    ContainsBirthDate,
    ContainsPhone,
    Breached,
    /// The two new passwords differ.
    Mismatch,
    /// The current password is wrong.
    WrongCurrent,
    /// A field was left empty.
    Missing,
    /// The new password is the current one.
    SameAsCurrent,
    /// Too many attempts; wait.
    Throttled,
}

pub(crate) fn problem_text(p: PasswordProblem, lang: Lang) -> String {
    use PasswordProblem as P;
    let ru = matches!(lang, Lang::Ru);
    let s = |r: &str, e: &str| if ru { r.to_string() } else { e.to_string() };
    match p {
        P::TooShort(n) if ru => {
            format!("Пароль должен быть не короче {n} символов (лучше 12 и больше).")
        }
        P::TooShort(n) => {
            format!("The password must have at least {n} characters (12 or more is better).")
        }
        P::TooLong(n) if ru => format!("Пароль должен быть не длиннее {n} символов."),
        P::TooLong(n) => format!("The password must have at most {n} characters."),
        P::NoLowercase => s("Добавьте строчную букву.", "Add a lower-case letter."),
        P::NoUppercase => s("Добавьте заглавную букву.", "Add an upper-case letter."),
        P::NoDigit => s("Добавьте цифру.", "Add a digit."),
        P::NoSpecial => s(
            "Добавьте специальный символ (например, ! или %).",
            "Add a special character (such as ! or %).",
        ),
        P::Sequence => s(
            "Уберите последовательности вроде qwerty, 1234 или abcd.",
            "Remove runs such as qwerty, 1234 or abcd.",
        ),
        P::Repeated => s(
            "Уберите повторы вроде aaaa или 1111.",
            "Remove repeats such as aaaa or 1111.",
        ),
        P::ContainsName => s(
            "Пароль не должен содержать ваше имя.",
            "The password must not contain your name.",
        ),
        P::ContainsBirthDate => s(
            "Пароль не должен содержать дату рождения.",
            "The password must not contain your birth date.",
        ),
        P::ContainsPhone => s(
            "Пароль не должен содержать номер телефона.",
            "The password must not contain your phone number.",
        ),
        P::Breached => s(
            "Этот пароль есть в списках утёкших паролей. Придумайте другой.",
            "This password appears in lists of leaked passwords. Choose another one.",
        ),
        P::Mismatch => s(
            "Новые пароли не совпадают.",
            "The new passwords do not match.",
        ),
        P::WrongCurrent => s("Текущий пароль неверный.", "The current password is wrong."),
        P::Missing => s("Заполните все поля.", "Fill in every field."),
        P::SameAsCurrent => s(
            "Новый пароль совпадает с текущим. Придумайте другой.",
            "The new password is the current one. Choose another one.",
        ),
        P::Throttled => s(
            "Слишком много попыток. Подождите немного и попробуйте снова.",
            "Too many attempts. Please wait a while and try again.",
        ),
    }
}

struct PasswordTexts {
    heading: &'static str,
    lead: &'static str,
}

fn password_texts(p: PasswordPurpose, lang: Lang) -> PasswordTexts {
    let (heading, lead) = match (p, lang) {
        (PasswordPurpose::Change, Lang::Ru) => (
            "Смена пароля",
            "Введите текущий пароль и новый. Все другие ваши сеансы будут завершены.",
        ),
        (PasswordPurpose::Change, Lang::En) => (
            "Change password",
            "Enter your current password and a new one. All your other sessions will be ended.",
        ),
        (PasswordPurpose::Temporary, Lang::Ru) => (
            "Придумайте новый пароль",
            "Вы вошли с временным паролем. Чтобы продолжить, задайте свой пароль.",
        ),
        (PasswordPurpose::Temporary, Lang::En) => (
            "Choose a new password",
            "You signed in with a temporary password. Set your own password to continue.",
        ),
        (PasswordPurpose::Reset, Lang::Ru) => (
            "Новый пароль",
            "Код подтверждён. Задайте новый пароль: все сеансы будут завершены.",
        ),
        (PasswordPurpose::Reset, Lang::En) => (
            "New password",
            "The code is confirmed. Set a new password: every session will be ended.",
        ),
    };
    PasswordTexts { heading, lead }
}

/// A password form: `POST action` with the `hidden` fields, `csrf`, optionally `current`,
/// and `new_password`, `confirm`.
#[derive(Debug, Clone)]
pub struct PasswordPage<'a> {
    pub lang: Lang,
    pub purpose: PasswordPurpose,
    pub action: &'a str,
    /// Hidden inputs (`tx`, ...), in order.
    pub hidden: &'a [(&'a str, &'a str)],
    pub csrf: &'a str,
    pub problems: &'a [PasswordProblem],
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordTemplate<'a> {
    page: Layout<'a>,
    lead: &'static str,
    action: &'a str,
    hidden: &'a [(&'a str, &'a str)],
    csrf: &'a str,
    current: bool,
    problems: Vec<String>,
    l: FieldLabels,
}

struct FieldLabels {
    current: &'static str,
    new: &'static str,
    confirm: &'static str,
    hint: &'static str,
    submit: &'static str,
}

fn labels(lang: Lang) -> FieldLabels {
    match lang {
        Lang::Ru => FieldLabels {
            current: "Текущий пароль",
            new: "Новый пароль",
            confirm: "Новый пароль ещё раз",
            hint: "Не короче 8 символов (лучше 12+): заглавные и строчные буквы, цифры и специальный символ.",
            submit: "Сохранить пароль",
        },
        Lang::En => FieldLabels {
            current: "Current password",
            new: "New password",
            confirm: "New password again",
            hint: "At least 8 characters (12+ is better): upper and lower case letters, digits and a special character.",
            submit: "Save password",
        },
    }
}

impl PasswordPage<'_> {
    pub fn render(&self) -> String {
        let t = password_texts(self.purpose, self.lang);
        let template = PasswordTemplate {
            page: Layout::new(self.lang, t.heading),
            lead: t.lead,
            action: self.action,
            hidden: self.hidden,
            csrf: self.csrf,
            current: self.purpose == PasswordPurpose::Change,
            problems: self
                .problems
                .iter()
                .map(|p| problem_text(*p, self.lang))
                .collect(),
            l: labels(self.lang),
        };
        render_or_fallback(&template, self.lang)
    }
}

/// Which recovery flow a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgot {
    Password,
    Login,
}

/// Why a recovery step did not go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgotError {
    /// Not a phone number or an e-mail address.
    BadContact,
    /// The code is wrong; attempts left.
    WrongCode(u64),
    /// The code is void (expired, three wrong entries, or none sent).
    Expired,
    /// This code was already used.
    Used,
    /// Not 6 digits.
    Malformed,
    /// Another code too soon: seconds to wait.
    TooSoon(u64),
    /// Too many requests (this contact or this address).
    TooMany,
}

fn forgot_error_text(e: ForgotError, lang: Lang) -> String {
    let ru = matches!(lang, Lang::Ru);
    let s = |r: &str, e: &str| if ru { r.to_string() } else { e.to_string() };
    match e {
        ForgotError::BadContact => s(
            "Введите номер телефона (+7 и 10 цифр) или адрес электронной почты.",
            "Enter a phone number (+7 and 10 digits) or an e-mail address.",
        ),
        ForgotError::WrongCode(n) if ru => format!("Код не подходит. Осталось попыток: {n}."),
        ForgotError::WrongCode(n) => format!("The code is not right. Attempts left: {n}."),
        ForgotError::Expired => s(
            "Код недействителен: он устарел, был введён неверно три раза или не запрашивался. Запросите новый код.",
            "This code is no longer valid: it expired, was entered wrong three times, or none was sent. Ask for a new code.",
        ),
        ForgotError::Used => s("Этот код уже использован.", "This code has already been used."),
        ForgotError::Malformed => s("Код состоит из 6 цифр.", "The code has 6 digits."),
        ForgotError::TooSoon(n) if ru => format!("Новый код можно запросить через {n} с."),
        ForgotError::TooSoon(n) => format!("You can ask for a new code in {n} s."),
        ForgotError::TooMany => s(
            "Слишком много запросов. Попробуйте через час.",
            "Too many requests. Try again in an hour.",
        ),
    }
}

/// Step of a recovery page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgotStep {
    /// Type the phone or e-mail.
    Contact,
    /// Type the code sent to it.
    Code,
}

/// Forgot password / forgot login: `POST action` with hidden `tx`, `csrf` and `contact`
/// (contact step) or `code` (code step; a second form posts `resend=1` to `resend_action`).
#[derive(Debug, Clone)]
pub struct ForgotPage<'a> {
    pub lang: Lang,
    pub flow: Forgot,
    pub step: ForgotStep,
    pub action: &'a str,
    pub resend_action: &'a str,
    pub tx: &'a str,
    pub csrf: &'a str,
    /// Prefill of the contact field.
    pub contact: &'a str,
    pub error: Option<ForgotError>,
    /// Link back to the sign-in page.
    pub back: &'a str,
}

#[derive(Template)]
#[template(path = "forgot.html")]
struct ForgotTemplate<'a> {
    page: Layout<'a>,
    lead: &'static str,
    code_step: bool,
    action: &'a str,
    resend_action: &'a str,
    tx: &'a str,
    csrf: &'a str,
    contact: &'a str,
    error: Option<String>,
    back: &'a str,
    l: ForgotLabels,
}

struct ForgotLabels {
    contact: &'static str,
    code: &'static str,
    submit: &'static str,
    resend: &'static str,
    back: &'static str,
}

fn forgot_texts(flow: Forgot, step: ForgotStep, lang: Lang) -> (&'static str, &'static str) {
    match (flow, step, lang) {
        (Forgot::Password, ForgotStep::Contact, Lang::Ru) => (
            "Восстановление пароля",
            "Введите телефон или электронную почту, которые указаны в вашей учётной записи. Мы пришлём на них код.",
        ),
        (Forgot::Password, ForgotStep::Contact, Lang::En) => (
            "Reset your password",
            "Enter the phone number or e-mail address of your account. We will send a code to it.",
        ),
        (Forgot::Password, ForgotStep::Code, Lang::Ru) => (
            "Введите код",
            "Если этот телефон или почта указаны в учётной записи, мы отправили на них код. Он действует 5 минут.",
        ),
        (Forgot::Password, ForgotStep::Code, Lang::En) => (
            "Enter the code",
            "If an account uses this phone or e-mail, we have sent a code to it. It is valid for 5 minutes.",
        ),
        (Forgot::Login, _, Lang::Ru) => (
            "Восстановление логина",
            "Введите телефон или электронную почту. Если они указаны в учётной записи, мы сообщим на них ваш логин.",
        ),
        (Forgot::Login, _, Lang::En) => (
            "Forgot your login?",
            "Enter a phone number or an e-mail address. If an account uses it, we will send your login to it.",
        ),
    }
}

impl ForgotPage<'_> {
    pub fn render(&self) -> String {
        let (heading, lead) = forgot_texts(self.flow, self.step, self.lang);
        let l = match self.lang {
            Lang::Ru => ForgotLabels {
                contact: "Телефон или электронная почта",
                code: "Код",
                submit: "Продолжить",
                resend: "Отправить код ещё раз",
                back: "Вернуться ко входу",
            },
            Lang::En => ForgotLabels {
                contact: "Phone or e-mail",
                code: "Code",
                submit: "Continue",
                resend: "Send the code again",
                back: "Back to sign-in",
            },
        };
        let template = ForgotTemplate {
            page: Layout::new(self.lang, heading),
            lead,
            code_step: self.step == ForgotStep::Code,
            action: self.action,
            resend_action: self.resend_action,
            tx: self.tx,
            csrf: self.csrf,
            contact: self.contact,
            error: self.error.map(|e| forgot_error_text(e, self.lang)),
            back: self.back,
            l,
        };
        render_or_fallback(&template, self.lang)
    }
}

/// What a notice page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// The password was changed; this many other sessions ended.
    PasswordChanged(usize),
    /// Forgot login: the login was sent to the contact if an account uses it.
    LoginSent,
    /// `/account/password` without a live session.
    SignInFirst,
}

/// A short message with a link onwards.
#[derive(Debug, Clone)]
pub struct NoticePage<'a> {
    pub lang: Lang,
    pub notice: Notice,
    /// Where the link goes (`None`: no link).
    pub link: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "password_notice.html")]
struct NoticeTemplate<'a> {
    page: Layout<'a>,
    body: String,
    link: Option<&'a str>,
    link_text: &'static str,
}

impl NoticePage<'_> {
    pub fn render(&self) -> String {
        let ru = matches!(self.lang, Lang::Ru);
        let (title, body) = match (self.notice, ru) {
            (Notice::PasswordChanged(n), true) => (
                "Пароль изменён",
                format!("Новый пароль сохранён. Завершено других сеансов: {n}."),
            ),
            (Notice::PasswordChanged(n), false) => (
                "Password changed",
                format!("Your new password is saved. Other sessions ended: {n}."),
            ),
            (Notice::LoginSent, true) => (
                "Проверьте телефон или почту",
                "Если этот телефон или почта указаны в учётной записи, мы отправили на них ваш логин.".into(),
            ),
            (Notice::LoginSent, false) => (
                "Check your phone or e-mail",
                "If an account uses this phone or e-mail, we have sent your login to it.".into(),
            ),
            (Notice::SignInFirst, true) => (
                "Сначала войдите",
                "Чтобы сменить пароль, войдите в Пропуск через портал и откройте эту страницу снова.".into(),
            ),
            (Notice::SignInFirst, false) => (
                "Sign in first",
                "To change your password, sign in to Propusk through a portal and open this page again.".into(),
            ),
        };
        let template = NoticeTemplate {
            page: Layout::new(self.lang, title),
            body,
            link: self.link,
            link_text: if ru {
                "Продолжить"
            } else {
                "Continue"
            },
        };
        render_or_fallback(&template, self.lang)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_page_lists_problems_and_escapes() {
        let html = PasswordPage {
            lang: Lang::Ru,
            purpose: PasswordPurpose::Change,
            action: "/account/password",
            hidden: &[("tx", "a<b")],
            csrf: "c",
            problems: &[PasswordProblem::TooShort(8), PasswordProblem::Mismatch],
        }
        .render();
        assert!(html.contains("name=\"current\""));
        assert!(html.contains("не короче 8 символов"));
        assert!(html.contains("не совпадают"));
        assert!(html.contains("a&#60;b"));
        let en = PasswordPage {
            lang: Lang::En,
            purpose: PasswordPurpose::Temporary,
            action: "/login/new-password",
            hidden: &[],
            csrf: "c",
            problems: &[],
        }
        .render();
        assert!(!en.contains("name=\"current\"") && en.contains("temporary password"));
    }

    #[test]
    fn forgot_pages() {
        let html = ForgotPage {
            lang: Lang::En,
            flow: Forgot::Password,
            step: ForgotStep::Code,
            action: "/recover/password/code",
            resend_action: "/recover/password/resend",
            tx: "t",
            csrf: "c",
            contact: "",
            error: Some(ForgotError::TooSoon(30)),
            back: "/login?tx=t",
        }
        .render();
        assert!(html.contains("name=\"code\"") && html.contains("in 30 s"));
        assert!(html.contains("/recover/password/resend"));
        let n = NoticePage {
            lang: Lang::Ru,
            notice: Notice::PasswordChanged(2),
            link: None,
        }
        .render();
        assert!(n.contains("других сеансов: 2"));
    }
}
