//! The profile: the person's data, the identity form (SNILS + passport) and the registry's
//! answer, contact and address edits.

use askama::Template;

use super::{level_name, tr, Field};
use crate::{render_or_fallback, Lang, Layout};

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
    /// The sign-in e-mail and mobile phone, editable.
    pub contacts: &'a [ContactView],
    /// Registration and residence addresses, editable.
    pub addresses: &'a [AddressView],
    /// A contact change waiting for its code.
    pub code_for: Option<CodeView<'a>>,
}

/// A sign-in contact on the profile page.
#[derive(Debug, Clone)]
pub struct ContactView {
    /// `email` or `mobile`.
    pub kind: &'static str,
    /// The value, if the person has one.
    pub value: Option<String>,
    /// It is the login.
    pub is_login: bool,
}

/// An address on the profile page.
#[derive(Debug, Clone)]
pub struct AddressView {
    /// `registration` or `living`.
    pub kind: &'static str,
    pub formatted: String,
    pub zip: String,
    pub country: String,
}

/// A contact change waiting for the code sent to the new value.
#[derive(Debug, Clone)]
pub struct CodeView<'a> {
    pub change: &'a str,
    /// Masked new value.
    pub sent_to: &'a str,
}

pub(crate) struct ContactRow {
    kind: &'static str,
    label: &'static str,
    value: String,
    has_value: bool,
    input_type: &'static str,
    placeholder: &'static str,
    login_mark: &'static str,
}

pub(crate) struct AddressRow {
    kind: &'static str,
    label: &'static str,
    formatted: String,
    zip: String,
    country: String,
}

/// Words of the contacts and addresses sections.
pub(crate) struct EditWords {
    contacts_heading: &'static str,
    none: &'static str,
    new_value: &'static str,
    send_code: &'static str,
    remove: &'static str,
    code_label: &'static str,
    code_lead: String,
    confirm: &'static str,
    addresses_heading: &'static str,
    address_kind: &'static str,
    kind_registration: &'static str,
    kind_living: &'static str,
    address_formatted: &'static str,
    address_zip: &'static str,
    address_country: &'static str,
    save_address: &'static str,
}

/// The message of a contact or address error code of the profile page.
pub fn profile_edit_error(code: &str, lang: Lang) -> Option<&'static str> {
    Some(match code {
        "confirm_first" => tr(
            lang,
            "Чтобы изменить контакты, подтвердите, что это вы: войдите заново (страница «Безопасность» → «Подтвердить»), затем вернитесь сюда.",
            "To change your contacts, confirm it is you: sign in again (Security page -> Confirm), then come back here.",
        ),
        "bad_email" => tr(lang, "Укажите адрес электронной почты, например ivan@example.ru.", "Enter an e-mail address, e.g. ivan@example.ru."),
        "bad_phone" => tr(lang, "Укажите мобильный телефон в формате +7 900 123-45-67.", "Enter a mobile phone as +7 900 123-45-67."),
        "contact_same" => tr(lang, "Это и есть ваш текущий контакт.", "This is already your contact."),
        "contact_taken" => tr(
            lang,
            "Этот контакт нельзя привязать: он уже используется в другой учётной записи. Если она ваша, войдите в неё или восстановите пароль и удалите контакт там.",
            "This contact cannot be added: another account uses it. If that account is yours, sign in to it (or recover its password) and remove the contact there.",
        ),
        "last_contact" => tr(
            lang,
            "Нельзя удалить единственный подтверждённый телефон или адрес почты: добавьте сначала другой.",
            "You cannot remove your only confirmed phone or e-mail: add another one first.",
        ),
        "wrong_code" => tr(lang, "Код неверный. Проверьте и введите ещё раз.", "The code is wrong. Check it and try again."),
        "code_expired" => tr(
            lang,
            "Код больше не действует (истёк срок или было три неверные попытки). Ничего не изменено — запросите новый код.",
            "The code is no longer valid (it expired or was entered wrongly three times). Nothing was changed; ask for a new code.",
        ),
        "throttled" => tr(lang, "Слишком много кодов. Подождите и попробуйте снова.", "Too many codes. Wait and try again."),
        "address_kind" => tr(lang, "Выберите вид адреса: регистрации или проживания.", "Choose the kind of address: registration or residence."),
        "address_missing" => tr(lang, "Укажите адрес.", "Enter the address."),
        "address_too_long" => tr(lang, "Адрес слишком длинный (до 300 символов) или содержит недопустимые символы.", "The address is too long (up to 300 characters) or has characters that are not allowed."),
        "address_short" => tr(lang, "Адрес слишком короткий: укажите город, улицу и дом.", "The address is too short: give the town, street and house."),
        "address_zip" => tr(lang, "Почтовый индекс — 6 цифр.", "The postal code is 6 digits."),
        "address_country" => tr(lang, "Страна — трёхбуквенный код, например RUS.", "The country is a three-letter code, e.g. RUS."),
        "address_not_found" => tr(lang, "Такого адреса нет в профиле.", "There is no such address in your profile."),
        _ => return None,
    })
}

fn profile_notice(code: &str, lang: Lang) -> &'static str {
    match code {
        "contact_changed" => tr(
            lang,
            "Контакт сохранён. Теперь по нему можно входить.",
            "The contact was saved. You can sign in with it now.",
        ),
        "contact_removed" => tr(lang, "Контакт удалён.", "The contact was removed."),
        "address_saved" => tr(lang, "Адрес сохранён.", "The address was saved."),
        "address_removed" => tr(lang, "Адрес удалён.", "The address was removed."),
        _ => tr(
            lang,
            "Данные отправлены на проверку.",
            "Your details were sent for checking.",
        ),
    }
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
    notice_code: &'a str,
    contacts: Vec<ContactRow>,
    addresses: Vec<AddressRow>,
    code_for: Option<&'a CodeView<'a>>,
    w: EditWords,
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
            error: self.error.map(|c| {
                profile_edit_error(c, l)
                    .map(str::to_string)
                    .unwrap_or_else(|| identity_error(c, l))
            }),
            error_code: self.error.unwrap_or(""),
            notice: self.notice.map(|c| profile_notice(c, l)),
            notice_code: self.notice.unwrap_or(""),
            contacts: self.contacts.iter().map(|c| contact_row(c, l)).collect(),
            addresses: self
                .addresses
                .iter()
                .map(|a| AddressRow {
                    kind: a.kind,
                    label: address_kind_name(a.kind, l),
                    formatted: a.formatted.clone(),
                    zip: a.zip.clone(),
                    country: a.country.clone(),
                })
                .collect(),
            code_for: self.code_for.as_ref(),
            w: edit_words(l, self.code_for.as_ref().map_or("", |c| c.sent_to)),
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

fn address_kind_name(kind: &str, l: Lang) -> &'static str {
    match kind {
        "registration" => tr(l, "Адрес регистрации", "Registration address"),
        _ => tr(l, "Адрес проживания", "Residence address"),
    }
}

fn contact_row(c: &ContactView, l: Lang) -> ContactRow {
    let (label, input_type, placeholder) = match c.kind {
        "email" => (
            tr(l, "Электронная почта", "E-mail"),
            "email",
            "ivan@example.ru",
        ),
        _ => (
            tr(l, "Мобильный телефон", "Mobile phone"),
            "tel",
            "+7 900 123-45-67",
        ),
    };
    ContactRow {
        kind: c.kind,
        label,
        value: c.value.clone().unwrap_or_default(),
        has_value: c.value.is_some(),
        input_type,
        placeholder,
        login_mark: if c.is_login {
            tr(l, "(логин)", "(login)")
        } else {
            ""
        },
    }
}

fn edit_words(l: Lang, sent_to: &str) -> EditWords {
    EditWords {
        contacts_heading: tr(l, "Контакты", "Contacts"),
        none: tr(l, "не указан", "not set"),
        new_value: tr(l, "Новое значение", "New value"),
        send_code: tr(l, "Получить код", "Send a code"),
        remove: tr(l, "Удалить", "Remove"),
        code_label: tr(l, "Код из сообщения", "Code from the message"),
        code_lead: match l {
            Lang::Ru => {
                format!("Мы отправили код на {sent_to}. Введите его, чтобы сохранить контакт.")
            }
            Lang::En => format!("We sent a code to {sent_to}. Enter it to save the contact."),
        },
        confirm: tr(l, "Подтвердить", "Confirm"),
        addresses_heading: tr(l, "Адреса", "Addresses"),
        address_kind: tr(l, "Вид адреса", "Kind of address"),
        kind_registration: address_kind_name("registration", l),
        kind_living: address_kind_name("living", l),
        address_formatted: tr(
            l,
            "Адрес (город, улица, дом, квартира)",
            "Address (town, street, house, flat)",
        ),
        address_zip: tr(l, "Индекс", "Postal code"),
        address_country: tr(l, "Страна (код)", "Country (code)"),
        save_address: tr(l, "Сохранить адрес", "Save the address"),
    }
}
