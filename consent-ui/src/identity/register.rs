//! Registration (name + contact -> code -> password) and the activation of an account an
//! operator created.

use askama::Template;

use super::tr;
use crate::{render_or_fallback, Lang, Layout};

// ---------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------

/// The steps of `/register`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterStep {
    /// Name and a phone or e-mail.
    Start,
    /// The one-time code sent to the contact.
    Code,
    /// The password.
    Password,
    /// Done: signed in.
    Done,
}

impl RegisterStep {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Code => "code",
            Self::Password => "password",
            Self::Done => "done",
        }
    }
}

/// A form field of the registration or profile page.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: &'static str,
    pub label: &'static str,
    pub value: String,
    pub kind: &'static str,
    pub autocomplete: &'static str,
    pub required: bool,
}

#[derive(Debug, Clone)]
pub struct RegisterPage<'a> {
    pub lang: Lang,
    pub step: RegisterStep,
    pub csrf: &'a str,
    /// The registration in progress (steps after the first).
    pub reg: Option<&'a str>,
    /// What was typed, by field name, to show again.
    pub values: &'a [(&'a str, &'a str)],
    /// Masked contact the code went to.
    pub sent_to: Option<&'a str>,
    /// A stable error code (see [`register_error`]) and, for the password, its messages.
    pub error: Option<&'a str>,
    pub error_text: Option<String>,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterTemplate<'a> {
    page: Layout<'a>,
    title: &'static str,
    lead: String,
    error: Option<String>,
    error_code: &'a str,
    action: &'static str,
    csrf: &'a str,
    step: &'static str,
    reg: Option<&'a str>,
    fields: Vec<Field>,
    submit: &'static str,
    /// A link under the form: (href, text).
    aside: Option<(&'static str, &'static str)>,
}

/// The password policy's complaints as one message (registration's password step).
pub fn password_problems_text(problems: &[crate::PasswordProblem], lang: Lang) -> String {
    problems
        .iter()
        .map(|p| crate::recovery::problem_text(*p, lang))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The message of a registration error code.
pub fn register_error(code: &str, lang: Lang) -> &'static str {
    match code {
        "missing_name" => tr(lang, "Укажите фамилию и имя.", "Enter your family and given name."),
        "bad_contact" => tr(
            lang,
            "Укажите мобильный телефон (+7…) или адрес электронной почты.",
            "Enter a mobile phone (+7…) or an e-mail address.",
        ),
        "taken" => tr(
            lang,
            "Этот телефон или адрес уже используется. Войдите или восстановите пароль.",
            "This phone or address is already in use. Sign in or recover your password.",
        ),
        "wrong_code" => tr(lang, "Код неверный. Проверьте и введите ещё раз.", "The code is wrong. Check it and try again."),
        "code_expired" => tr(
            lang,
            "Код больше не действует (истёк срок или было три неверные попытки). Начните регистрацию заново.",
            "The code is no longer valid (it expired or was entered wrongly three times). Start the registration again.",
        ),
        "mismatch" => tr(lang, "Пароли не совпадают.", "The passwords differ."),
        "throttled" => tr(lang, "Слишком много попыток. Подождите и попробуйте снова.", "Too many attempts. Wait and try again."),
        _ => tr(lang, "Проверьте введённые данные.", "Check what you entered."),
    }
}

impl RegisterPage<'_> {
    fn value(&self, name: &str) -> String {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    }

    pub fn render(&self) -> String {
        let l = self.lang;
        let field = |name, label, kind, autocomplete, required| Field {
            name,
            label,
            value: if kind == "password" {
                String::new()
            } else {
                self.value(name)
            },
            kind,
            autocomplete,
            required,
        };
        let (title, lead, fields, submit) = match self.step {
            RegisterStep::Start => (
                tr(l, "Регистрация", "Create an account"),
                tr(
                    l,
                    "Укажите имя и мобильный телефон или электронную почту — мы пришлём код подтверждения.",
                    "Enter your name and a mobile phone or e-mail; we will send a confirmation code.",
                )
                .to_string(),
                vec![
                    field("family_name", tr(l, "Фамилия", "Family name"), "text", "family-name", true),
                    field("given_name", tr(l, "Имя", "Given name"), "text", "given-name", true),
                    field("middle_name", tr(l, "Отчество (если есть)", "Patronymic (if any)"), "text", "additional-name", false),
                    field("contact", tr(l, "Мобильный телефон или эл. почта", "Mobile phone or e-mail"), "text", "username", true),
                ],
                tr(l, "Получить код", "Send the code"),
            ),
            RegisterStep::Code => (
                tr(l, "Подтверждение", "Confirm your contact"),
                match l {
                    Lang::Ru => format!("Мы отправили код на {}. Он действует 5 минут.", self.sent_to.unwrap_or("")),
                    Lang::En => format!("We sent a code to {}. It is valid for 5 minutes.", self.sent_to.unwrap_or("")),
                },
                vec![field("code", tr(l, "Код из сообщения", "Code from the message"), "text", "one-time-code", true)],
                tr(l, "Подтвердить", "Confirm"),
            ),
            RegisterStep::Password | RegisterStep::Done => (
                tr(l, "Пароль", "Choose a password"),
                tr(
                    l,
                    "Придумайте пароль: не короче 8 символов (лучше 12), заглавные и строчные буквы, цифра и спецсимвол.",
                    "Choose a password: at least 8 characters (12 is better), upper- and lower-case letters, a digit and a special character.",
                )
                .to_string(),
                vec![
                    field("password", tr(l, "Пароль", "Password"), "password", "new-password", true),
                    field("password2", tr(l, "Пароль ещё раз", "Password again"), "password", "new-password", true),
                ],
                tr(l, "Зарегистрироваться", "Create the account"),
            ),
        };
        let error = self.error.map(|c| {
            self.error_text
                .clone()
                .unwrap_or_else(|| register_error(c, l).to_string())
        });
        let t = RegisterTemplate {
            page: Layout::new(l, title),
            title,
            lead,
            error,
            error_code: self.error.unwrap_or(""),
            action: "/register",
            csrf: self.csrf,
            step: self.step.as_str(),
            reg: self.reg,
            fields,
            submit,
            aside: (self.step == RegisterStep::Start).then(|| {
                (
                    "/activate",
                    tr(
                        l,
                        "Учётную запись создали для вас в центре обслуживания? Активируйте её",
                        "Was an account created for you at a service centre? Activate it",
                    ),
                )
            }),
        };
        render_or_fallback(&t, l)
    }
}

// ---------------------------------------------------------------------------------------
// Activation of an account created by an operator
// ---------------------------------------------------------------------------------------

/// `/activate`: identifier -> code to the contact on file -> password. The same steps and
/// fields as the registration; the texts never say whether such an account exists.
#[derive(Debug, Clone)]
pub struct ActivatePage<'a> {
    pub lang: Lang,
    /// `Start` (identifier), `Code`, `Password`.
    pub step: RegisterStep,
    pub csrf: &'a str,
    pub act: Option<&'a str>,
    pub identifier: &'a str,
    /// An error code of [`register_error`] (`wrong_code`, `code_expired`, `throttled`,
    /// `password`, `bad_identifier`) and, for the password, its messages.
    pub error: Option<&'a str>,
    pub error_text: Option<String>,
}

impl ActivatePage<'_> {
    pub fn render(&self) -> String {
        let l = self.lang;
        let field = |name, label, kind, autocomplete, value: &str| Field {
            name,
            label,
            value: value.to_string(),
            kind,
            autocomplete,
            required: true,
        };
        let (title, lead, fields, submit) = match self.step {
            RegisterStep::Start => (
                tr(l, "Активация учётной записи", "Activate your account"),
                tr(
                    l,
                    "Если учётную запись создали для вас в центре обслуживания, укажите телефон, почту или СНИЛС, названные при её создании.",
                    "If an account was created for you at a service centre, enter the phone, e-mail or SNILS given when it was created.",
                ),
                vec![field("identifier", tr(l, "Телефон, почта или СНИЛС", "Phone, e-mail or SNILS"), "text", "username", self.identifier)],
                tr(l, "Получить код", "Send the code"),
            ),
            RegisterStep::Code => (
                tr(l, "Код активации", "Activation code"),
                tr(
                    l,
                    "Если такая учётная запись ждёт активации, мы отправили код на телефон или почту, указанные при её создании. Код действует 5 минут.",
                    "If such an account waits for activation, we sent a code to the phone or e-mail given when it was created. The code is valid for 5 minutes.",
                ),
                vec![field("code", tr(l, "Код из сообщения", "Code from the message"), "text", "one-time-code", "")],
                tr(l, "Подтвердить", "Confirm"),
            ),
            RegisterStep::Password | RegisterStep::Done => (
                tr(l, "Ваш пароль", "Choose your password"),
                tr(
                    l,
                    "Придумайте пароль: не короче 8 символов (лучше 12), заглавные и строчные буквы, цифра и спецсимвол.",
                    "Choose a password: at least 8 characters (12 is better), upper- and lower-case letters, a digit and a special character.",
                ),
                vec![
                    field("password", tr(l, "Пароль", "Password"), "password", "new-password", ""),
                    field("password2", tr(l, "Пароль ещё раз", "Password again"), "password", "new-password", ""),
                ],
                tr(l, "Активировать", "Activate"),
            ),
        };
        let error = self.error.map(|c| {
            self.error_text.clone().unwrap_or_else(|| match c {
                "bad_identifier" => tr(
                    l,
                    "Укажите телефон (+7…), адрес почты или СНИЛС.",
                    "Enter a phone (+7…), an e-mail address or a SNILS.",
                )
                .to_string(),
                "code_expired" => tr(
                    l,
                    "Код больше не действует (истёк срок или было три неверные попытки). Начните заново.",
                    "The code is no longer valid (it expired or was entered wrongly three times). Start again.",
                )
                .to_string(),
                other => register_error(other, l).to_string(),
            })
        });
        let t = RegisterTemplate {
            page: Layout::new(l, title),
            title,
            lead: lead.to_string(),
            error,
            error_code: self.error.unwrap_or(""),
            action: "/activate",
            csrf: self.csrf,
            step: self.step.as_str(),
            reg: self.act,
            fields,
            submit,
            aside: None,
        };
        render_or_fallback(&t, l)
    }
}
