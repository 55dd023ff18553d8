//! All user-visible texts, in Russian and English.

use crate::{ErrorKind, Lang, LoginError};

pub(crate) struct LoginTexts {
    /// The passkey sign-in button.
    pub passkey: &'static str,
    pub heading: &'static str,
    pub portal_before: &'static str,
    pub portal_after: &'static str,
    pub identifier: &'static str,
    pub password: &'static str,
    pub remember: &'static str,
    pub submit: &'static str,
    pub forgot_password: &'static str,
    pub forgot_login: &'static str,
}

static LOGIN_RU: LoginTexts = LoginTexts {
    passkey: "Войти по ключу доступа (биометрия)",
    heading: "Вход",
    portal_before: "Войдите, чтобы продолжить на портале «",
    portal_after: "».",
    identifier: "Телефон, почта, СНИЛС или ИНН",
    password: "Пароль",
    remember: "Запомнить меня",
    submit: "Войти",
    forgot_password: "Забыли пароль?",
    forgot_login: "Забыли логин?",
};

static LOGIN_EN: LoginTexts = LoginTexts {
    passkey: "Sign in with a passkey",
    heading: "Sign in",
    portal_before: "Sign in to continue to ",
    portal_after: ".",
    identifier: "Phone, e-mail, SNILS or INN",
    password: "Password",
    remember: "Remember me",
    submit: "Sign in",
    forgot_password: "Forgot your password?",
    forgot_login: "Forgot your login?",
};

pub(crate) fn login_texts(lang: Lang) -> &'static LoginTexts {
    match lang {
        Lang::Ru => &LOGIN_RU,
        Lang::En => &LOGIN_EN,
    }
}

pub(crate) fn login_error(error: LoginError, lang: Lang) -> &'static str {
    match (error, lang) {
        (LoginError::Passkey(p), lang) => crate::security::problem_text(p, lang),
        (LoginError::InvalidCredentials, Lang::Ru) => {
            "Неверный логин или пароль. Проверьте их и попробуйте ещё раз."
        }
        (LoginError::InvalidCredentials, Lang::En) => {
            "The login or password is incorrect. Check them and try again."
        }
        (LoginError::Locked, Lang::Ru) => {
            "Вход временно недоступен после нескольких неудачных попыток. Подождите немного и попробуйте снова."
        }
        (LoginError::Locked, Lang::En) => {
            "Signing in is paused after several unsuccessful attempts. Please wait a while and try again."
        }
        (LoginError::MissingFields, Lang::Ru) => "Введите логин и пароль.",
        (LoginError::MissingFields, Lang::En) => "Enter your login and password.",
        (LoginError::Expired, Lang::Ru) => {
            "Время на вход истекло. Вернитесь на сайт портала и начните вход заново."
        }
        (LoginError::Expired, Lang::En) => {
            "The time for signing in has run out. Go back to the portal and start again."
        }
        (LoginError::TooManyCodes, Lang::Ru) => {
            "Код введён неверно три раза. Войдите с паролем ещё раз."
        }
        (LoginError::TooManyCodes, Lang::En) => {
            "The code was wrong three times. Sign in with your password again."
        }
        (LoginError::BadIdentifier, Lang::Ru) => {
            "Введите телефон, электронную почту, СНИЛС или ИНН."
        }
        (LoginError::BadIdentifier, Lang::En) => {
            "Enter a phone number, an e-mail address, a SNILS or an INN."
        }
        (LoginError::BadSnils, Lang::Ru) => {
            "В СНИЛС ошибка: 11 цифр, последние две — контрольное число. Проверьте номер."
        }
        (LoginError::BadSnils, Lang::En) => {
            "This SNILS is not valid: 11 digits, the last two a check number. Check the number."
        }
        (LoginError::BadInn, Lang::Ru) => {
            "В ИНН ошибка: 12 цифр для человека (10 для организации) с контрольными цифрами в конце. Проверьте номер."
        }
        (LoginError::BadInn, Lang::En) => {
            "This INN is not valid: 12 digits for a person (10 for an organisation), ending in check digits. Check the number."
        }
        (LoginError::BadPhone, Lang::Ru) => {
            "Номер телефона должен быть российским: +7 и 10 цифр."
        }
        (LoginError::BadPhone, Lang::En) => {
            "The phone number must be Russian: +7 and 10 digits."
        }
        (LoginError::PasswordReset, Lang::Ru) => {
            "Пароль изменён, все сеансы завершены. Войдите с новым паролем."
        }
        (LoginError::PasswordReset, Lang::En) => {
            "Your password was changed and every session ended. Sign in with the new password."
        }
    }
}

pub(crate) struct ConsentTexts {
    pub heading: &'static str,
    pub portal_before: &'static str,
    pub portal_after: &'static str,
    pub signed_in_as: &'static str,
    pub note: &'static str,
    pub allow: &'static str,
    pub deny: &'static str,
}

static CONSENT_RU: ConsentTexts = ConsentTexts {
    heading: "Разрешить доступ к данным?",
    portal_before: "Портал «",
    portal_after: "» просит доступ к следующим сведениям:",
    signed_in_as: "Вы вошли как",
    note: "Разрешение можно отозвать в любой момент в личном кабинете Пропуска.",
    allow: "Разрешить",
    deny: "Отказать",
};

static CONSENT_EN: ConsentTexts = ConsentTexts {
    heading: "Allow access to your data?",
    portal_before: "",
    portal_after: " is asking for access to:",
    signed_in_as: "Signed in as",
    note: "You can withdraw this permission at any time in your Propusk account.",
    allow: "Allow",
    deny: "Deny",
};

pub(crate) fn consent_texts(lang: Lang) -> &'static ConsentTexts {
    match lang {
        Lang::Ru => &CONSENT_RU,
        Lang::En => &CONSENT_EN,
    }
}

/// A human description of a known scope, `None` for unknown scopes.
pub fn scope_description(scope: &str, lang: Lang) -> Option<&'static str> {
    let (ru, en) = match scope {
        "openid" => (
            "Подтверждение вашей личности при входе",
            "Confirmation of who you are when you sign in",
        ),
        "profile" => (
            "Основные сведения профиля: имя, дата рождения, пол",
            "Basic profile: name, date of birth, gender",
        ),
        "email" => ("Адрес электронной почты", "E-mail address"),
        "phone" => ("Номер телефона", "Phone number"),
        "address" => ("Почтовый адрес", "Postal address"),
        "offline_access" => (
            "Доступ к разрешённым данным, даже когда вы не на портале",
            "Access to the allowed data even when you are not using the portal",
        ),
        "fullname" => ("Фамилия, имя и отчество", "Full name"),
        "birthdate" => ("Дата рождения", "Date of birth"),
        "gender" => ("Пол", "Gender"),
        "birthplace" => ("Место рождения", "Place of birth"),
        "snils" => ("СНИЛС", "SNILS (individual insurance account number)"),
        "inn" => ("ИНН", "INN (taxpayer number)"),
        "id_doc" => (
            "Данные паспорта (документа, удостоверяющего личность)",
            "Passport (identity document) details",
        ),
        "mobile" => ("Номер мобильного телефона", "Mobile phone number"),
        "contacts" => (
            "Контактные данные: телефоны и электронная почта",
            "Contact details: phone numbers and e-mail",
        ),
        "addresses" => (
            "Адреса регистрации и проживания",
            "Registered and residential addresses",
        ),
        "usr_org" => (
            "Организации, в которых вы работаете",
            "Organisations you work for",
        ),
        "medical_doc" => ("Полис ОМС", "Compulsory medical insurance policy"),
        "drivers_licence_doc" => ("Водительское удостоверение", "Driving licence"),
        "foreign_passport_doc" => ("Заграничный паспорт", "Foreign travel passport"),
        "military_doc" => ("Военный билет", "Military ID"),
        "birth_cert_doc" => ("Свидетельство о рождении", "Birth certificate"),
        "propusk:push" => (
            "Получение кодов для входа в этом приложении",
            "Receiving sign-in codes in this app",
        ),
        _ => return None,
    };
    Some(match lang {
        Lang::Ru => ru,
        Lang::En => en,
    })
}

pub(crate) struct ErrorTexts {
    pub title: &'static str,
    pub next_step: &'static str,
}

pub(crate) fn error_texts(kind: ErrorKind, lang: Lang) -> ErrorTexts {
    let (title, next_step) = match (kind, lang) {
        (ErrorKind::InvalidClient, Lang::Ru) => (
            "Портал не найден",
            "Ссылка для входа неверна или портал не подключён к Пропуску. Вернитесь на сайт портала и попробуйте ещё раз. Если ошибка повторится, напишите в поддержку портала.",
        ),
        (ErrorKind::InvalidClient, Lang::En) => (
            "Portal not recognised",
            "The sign-in link is wrong or the portal is not connected to Propusk. Go back to the portal and try again. If this keeps happening, contact the portal's support.",
        ),
        (ErrorKind::InvalidRedirectUri, Lang::Ru) => (
            "Не получится вернуть вас на портал",
            "Ссылка, по которой вы пришли, неверна. Вернитесь на сайт портала и попробуйте войти снова. Если ошибка повторится, напишите в поддержку портала.",
        ),
        (ErrorKind::InvalidRedirectUri, Lang::En) => (
            "We can't take you back to the portal",
            "The link you followed is wrong. Go back to the portal and try signing in again. If this keeps happening, contact the portal's support.",
        ),
        (ErrorKind::BadRequest, Lang::Ru) => (
            "Что-то не так с запросом",
            "Вернитесь на предыдущую страницу и попробуйте ещё раз.",
        ),
        (ErrorKind::BadRequest, Lang::En) => (
            "Something is wrong with this request",
            "Go back to the previous page and try again.",
        ),
        (ErrorKind::SessionExpired, Lang::Ru) => (
            "Время ожидания истекло",
            "Вернитесь на сайт портала и войдите снова.",
        ),
        (ErrorKind::SessionExpired, Lang::En) => (
            "This page has expired",
            "Go back to the portal and sign in again.",
        ),
        (ErrorKind::LogoutFailed, Lang::Ru) => (
            "Не удалось выйти",
            "Попробуйте выйти ещё раз на сайте портала. Если не получится, закройте браузер — это тоже завершит вход.",
        ),
        (ErrorKind::LogoutFailed, Lang::En) => (
            "We couldn't sign you out",
            "Try signing out again on the portal. If that doesn't work, close your browser; that ends the session too.",
        ),
        (ErrorKind::NotFound, Lang::Ru) => (
            "Страница не найдена",
            "Проверьте адрес или вернитесь на сайт портала.",
        ),
        (ErrorKind::NotFound, Lang::En) => (
            "Page not found",
            "Check the address or go back to the portal.",
        ),
        (ErrorKind::TooManyRequests, Lang::Ru) => (
            "Слишком много входов",
            "С вашего адреса за последние минуты начато слишком много входов. Подождите несколько минут и попробуйте ещё раз.",
        ),
        (ErrorKind::TooManyRequests, Lang::En) => (
            "Too many sign-ins",
            "Too many sign-ins were started from your address in the last few minutes. Please wait a few minutes and try again.",
        ),
        (ErrorKind::Internal, Lang::Ru) => (
            "Что-то пошло не так",
            "Это ошибка на нашей стороне, вы ничего не сломали. Попробуйте ещё раз через несколько минут.",
        ),
        (ErrorKind::Internal, Lang::En) => (
            "Something went wrong",
            "This is a problem on our side, not yours. Please try again in a few minutes.",
        ),
    };
    ErrorTexts { title, next_step }
}

pub(crate) struct LogoutTexts {
    pub heading: &'static str,
    pub body: &'static str,
    pub submit: &'static str,
    pub cancel_hint: &'static str,
}

static LOGOUT_RU: LogoutTexts = LogoutTexts {
    heading: "Выйти из Пропуска?",
    body: "Вы выйдете из Пропуска в этом браузере. Чтобы снова попасть на порталы, нужно будет войти заново.",
    submit: "Выйти",
    cancel_hint: "Если вы не собирались выходить, просто закройте эту страницу.",
};

static LOGOUT_EN: LogoutTexts = LogoutTexts {
    heading: "Sign out of Propusk?",
    body: "You will be signed out of Propusk in this browser. You'll need to sign in again to use the portals.",
    submit: "Sign out",
    cancel_hint: "If you didn't mean to sign out, just close this page.",
};

pub(crate) fn logout_texts(lang: Lang) -> &'static LogoutTexts {
    match lang {
        Lang::Ru => &LOGOUT_RU,
        Lang::En => &LOGOUT_EN,
    }
}

pub(crate) struct LoggedOutTexts {
    pub heading: &'static str,
    pub body: &'static str,
}

static LOGGED_OUT_RU: LoggedOutTexts = LoggedOutTexts {
    heading: "Вы вышли из Пропуска",
    body: "Всё готово. Эту страницу можно закрыть.",
};

static LOGGED_OUT_EN: LoggedOutTexts = LoggedOutTexts {
    heading: "You have signed out of Propusk",
    body: "All done. You can close this page.",
};

pub(crate) fn logged_out_texts(lang: Lang) -> &'static LoggedOutTexts {
    match lang {
        Lang::Ru => &LOGGED_OUT_RU,
        Lang::En => &LOGGED_OUT_EN,
    }
}
