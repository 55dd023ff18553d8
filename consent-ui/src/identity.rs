//! Pages of the person (issue 5): registration (name + contact -> code -> password), the
//! profile with the identity form (SNILS + passport) and the registry's answer, the "your
//! account level is too low for this portal" page, the blocked / pending account page, and
//! the withheld lines of the consent page. Texts in ru and en live here.

use askama::Template;

use crate::{render_or_fallback, texts, Lang, Layout};

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
                tr(l, "Регистрация не завершена", "Registration is not finished"),
                tr(
                    l,
                    "Контакт этой учётной записи ещё не подтверждён.",
                    "The contact of this account has not been confirmed yet.",
                ),
                tr(
                    l,
                    "Завершите регистрацию: подтвердите телефон или почту кодом, затем войдите снова.",
                    "Finish the registration: confirm your phone or e-mail with the code, then sign in again.",
                ),
            ),
        };
        let t = StatusTemplate {
            page: Layout::new(l, title),
            title,
            lead,
            next_step,
            status: self.status,
        };
        render_or_fallback(&t, l)
    }
}

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
        };
        render_or_fallback(&t, l)
    }
}

// ---------------------------------------------------------------------------------------
// Profile
// ---------------------------------------------------------------------------------------

/// The registry's answer to show on the profile.
#[derive(Debug, Clone)]
pub struct VerificationView<'a> {
    /// `pending`, `matched`, `mismatch`, `failed`.
    pub state: &'a str,
    /// Mismatch reason code (`name_mismatch`, ...), empty otherwise.
    pub reason: &'a str,
}

pub(crate) struct VerificationItem {
    pub state: String,
    pub reason: String,
    pub text: String,
    pub class: &'static str,
}

/// The message of a registry mismatch reason.
pub fn mismatch_text(reason: &str, lang: Lang) -> &'static str {
    match reason {
        "name_mismatch" => tr(
            lang,
            "Фамилия, имя или отчество не совпадают с данными, зарегистрированными для этого СНИЛС. Проверьте написание (как в паспорте).",
            "The name does not match the one registered for this SNILS. Check the spelling (as in the passport).",
        ),
        "birth_date_mismatch" => tr(
            lang,
            "Дата рождения не совпадает с данными реестра.",
            "The birth date does not match the registry.",
        ),
        "snils_not_found" => tr(
            lang,
            "СНИЛС не найден в реестре Социального фонда. Проверьте номер.",
            "The SNILS was not found in the Social Fund registry. Check the number.",
        ),
        "document_expired" => tr(
            lang,
            "Паспорт недействителен (заменён, утрачен или истёк срок). Укажите действующий паспорт.",
            "The passport is not valid (replaced, lost or expired). Enter your current passport.",
        ),
        "document_not_found" => tr(
            lang,
            "Паспорт с такой серией и номером не найден в реестре МВД. Проверьте данные.",
            "No passport with this series and number in the Interior Ministry registry. Check the details.",
        ),
        _ => tr(lang, "Данные не подтверждены.", "The details were not confirmed."),
    }
}

/// The message of an identity form error code (`PersonError::code`).
pub fn identity_error(code: &str, lang: Lang) -> String {
    let field = |f: &str| -> &'static str {
        match f {
            "family_name" => tr(lang, "фамилию", "the family name"),
            "given_name" => tr(lang, "имя", "the given name"),
            "middle_name" => tr(lang, "отчество", "the patronymic"),
            "birth_date" => tr(lang, "дату рождения", "the birth date"),
            "birth_place" => tr(lang, "место рождения", "the place of birth"),
            "snils" => tr(lang, "СНИЛС", "the SNILS"),
            "passport_issue_date" => tr(lang, "дату выдачи паспорта", "the passport issue date"),
            "passport_issued_by" => tr(lang, "кем выдан паспорт", "who issued the passport"),
            _ => tr(lang, "поле", "the field"),
        }
    };
    if let Some(f) = code.strip_prefix("missing_") {
        return match lang {
            Lang::Ru => format!("Укажите {}.", field(f)),
            Lang::En => format!("Enter {}.", field(f)),
        };
    }
    if let Some(f) = code.strip_prefix("too_long_") {
        return match lang {
            Lang::Ru => format!("Слишком длинное значение: {}.", field(f)),
            Lang::En => format!("Too long: {}.", field(f)),
        };
    }
    if let Some(f) = code.strip_prefix("bad_date_") {
        return match lang {
            Lang::Ru => format!("Неверная дата: {} (ДД.ММ.ГГГГ).", field(f)),
            Lang::En => format!("Not a valid date: {} (DD.MM.YYYY).", field(f)),
        };
    }
    match code {
        "snils_invalid" => tr(
            lang,
            "СНИЛС указан неверно: не сходится контрольное число.",
            "The SNILS is wrong: its check number does not match.",
        ),
        "inn_invalid" => tr(lang, "ИНН указан неверно.", "The INN is wrong."),
        "birth_date_out_of_range" => tr(
            lang,
            "Дата рождения не может быть в будущем.",
            "The birth date cannot be in the future.",
        ),
        "passport_series" => tr(
            lang,
            "Серия паспорта — 4 цифры.",
            "The passport series is 4 digits.",
        ),
        "passport_number" => tr(
            lang,
            "Номер паспорта — 6 цифр.",
            "The passport number is 6 digits.",
        ),
        "division_code" => tr(
            lang,
            "Код подразделения — в виде 000-000.",
            "The division code is written 000-000.",
        ),
        "issued_before_14" => tr(
            lang,
            "Паспорт выдаётся не раньше 14 лет: проверьте дату выдачи и дату рождения.",
            "A passport is issued at 14 or later: check the issue and birth dates.",
        ),
        "issued_in_future" => tr(
            lang,
            "Дата выдачи паспорта не может быть в будущем.",
            "The passport issue date cannot be in the future.",
        ),
        "pending" => tr(
            lang,
            "Проверка уже идёт. Дождитесь ответа реестра.",
            "A check is already under way. Wait for the registry's answer.",
        ),
        "snils_taken" => tr(
            lang,
            "Этот СНИЛС уже указан в другой учётной записи. Обратитесь в центр обслуживания.",
            "This SNILS is already used by another account. Visit a service centre.",
        ),
        _ => tr(
            lang,
            "Проверьте введённые данные.",
            "Check what you entered.",
        ),
    }
    .to_string()
}

#[derive(Debug, Clone)]
pub struct ProfilePage<'a> {
    pub lang: Lang,
    pub csrf: &'a str,
    pub user_display: &'a str,
    pub level: &'a str,
    pub status: &'a str,
    /// (label, value) rows: name, birth date, SNILS (masked), passport (masked), ...
    pub facts: &'a [(String, String)],
    pub verification: Option<VerificationView<'a>>,
    /// Show the identity form (simplified account, no check under way).
    pub show_form: bool,
    /// Values to show again in the form.
    pub values: &'a [(&'a str, String)],
    /// An identity form error code.
    pub error: Option<&'a str>,
    pub notice: Option<&'a str>,
    /// (date, what) rows of the change history.
    pub history: &'a [(String, String)],
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfileTemplate<'a> {
    page: Layout<'a>,
    title: &'static str,
    user_display: &'a str,
    level_label: &'static str,
    level_text: &'static str,
    level_code: &'a str,
    status_code: &'a str,
    verification: Option<VerificationItem>,
    error: Option<String>,
    error_code: &'a str,
    notice: Option<&'static str>,
    data_heading: &'static str,
    facts: &'a [(String, String)],
    show_form: bool,
    form_heading: &'static str,
    form_hint: &'static str,
    csrf: &'a str,
    fields: Vec<Field>,
    submit: &'static str,
    history_heading: &'static str,
    history: &'a [(String, String)],
}

/// The identity form's fields: (name, ru, en).
const IDENTITY_FIELDS: [(&str, &str, &str); 11] = [
    ("family_name", "Фамилия", "Family name"),
    ("given_name", "Имя", "Given name"),
    ("middle_name", "Отчество", "Patronymic"),
    (
        "birth_date",
        "Дата рождения (ДД.ММ.ГГГГ)",
        "Date of birth (DD.MM.YYYY)",
    ),
    ("birth_place", "Место рождения", "Place of birth"),
    ("snils", "СНИЛС", "SNILS"),
    ("passport_series", "Серия паспорта", "Passport series"),
    ("passport_number", "Номер паспорта", "Passport number"),
    (
        "passport_issue_date",
        "Дата выдачи (ДД.ММ.ГГГГ)",
        "Issue date (DD.MM.YYYY)",
    ),
    ("passport_issued_by", "Кем выдан", "Issued by"),
    (
        "passport_division_code",
        "Код подразделения",
        "Division code",
    ),
];

impl ProfilePage<'_> {
    pub fn render(&self) -> String {
        let l = self.lang;
        let title = tr(l, "Профиль", "Profile");
        let verification = self.verification.as_ref().map(|v| {
            let (text, class) = match v.state {
                "pending" => (
                    tr(l, "Документы отправлены на проверку в государственные реестры. Обычно это занимает несколько минут.", "Your documents were sent to the state registries for checking. This usually takes a few minutes.").to_string(),
                    "notice",
                ),
                "matched" => (
                    tr(l, "Документы проверены: учётная запись стандартная.", "Your documents were checked: the account is standard.").to_string(),
                    "notice",
                ),
                "mismatch" => (
                    match l {
                        Lang::Ru => format!("Проверка не пройдена. {}", mismatch_text(v.reason, l)),
                        Lang::En => format!("The check failed. {}", mismatch_text(v.reason, l)),
                    },
                    "alert",
                ),
                _ => (
                    tr(l, "Реестры не ответили. Отправьте данные ещё раз позже.", "The registries did not answer. Submit the details again later.").to_string(),
                    "alert",
                ),
            };
            VerificationItem {
                state: v.state.to_string(),
                reason: v.reason.to_string(),
                text,
                class,
            }
        });
        let fields = IDENTITY_FIELDS
            .iter()
            .map(|(name, ru, en)| Field {
                name,
                label: tr(l, ru, en),
                value: self
                    .values
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                kind: "text",
                autocomplete: "off",
                required: false,
            })
            .collect();
        let t = ProfileTemplate {
            page: Layout::new(l, title),
            title,
            user_display: self.user_display,
            level_label: tr(l, "Уровень учётной записи", "Account level"),
            level_text: level_name(self.level, l),
            level_code: self.level,
            status_code: self.status,
            verification,
            error: self.error.map(|c| identity_error(c, l)),
            error_code: self.error.unwrap_or(""),
            notice: self.notice.map(|_| {
                tr(l, "Данные отправлены на проверку.", "Your details were sent for checking.")
            }),
            data_heading: tr(l, "Личные данные", "Personal data"),
            facts: self.facts,
            show_form: self.show_form,
            form_heading: tr(l, "Подтвердить личность документами", "Confirm your identity with documents"),
            form_hint: tr(
                l,
                "СНИЛС и паспорт проверяются в реестрах Социального фонда и МВД. После проверки учётная запись станет стандартной.",
                "The SNILS and passport are checked against the Social Fund and Interior Ministry registries. After the check the account becomes standard.",
            ),
            csrf: self.csrf,
            fields,
            submit: tr(l, "Отправить на проверку", "Submit for checking"),
            history_heading: tr(l, "История изменений", "Change history"),
            history: self.history,
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
            }
            .render();
            assert!(html.contains("data-reason=\"name_mismatch\""));
            assert!(html.contains("name=\"passport_division_code\""));
            assert!(!html.contains("<b>"), "values are escaped");
        }
    }
}
