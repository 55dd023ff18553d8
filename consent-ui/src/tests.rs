use super::*;

const LANGS: [Lang; 2] = [Lang::Ru, Lang::En];
const ALL_KINDS: [ErrorKind; 8] = [
    ErrorKind::InvalidClient,
    ErrorKind::InvalidRedirectUri,
    ErrorKind::BadRequest,
    ErrorKind::SessionExpired,
    ErrorKind::LogoutFailed,
    ErrorKind::NotFound,
    ErrorKind::TooManyRequests,
    ErrorKind::Internal,
];
const EVIL: &str = "<script>alert(\"x\")</script>&'";

/// Hidden inputs as the conformance suite parses them.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let marker = "<input type=\"hidden\" name=\"";
    let mut rest = html;
    while let Some(start) = rest.find(marker) {
        rest = &rest[start + marker.len()..];
        let Some(name_end) = rest.find('"') else {
            break;
        };
        let name = rest[..name_end].to_string();
        rest = &rest[name_end..];
        let Some(after) = rest.strip_prefix("\" value=\"") else {
            continue;
        };
        let Some(value_end) = after.find('"') else {
            break;
        };
        out.push((name, after[..value_end].to_string()));
        rest = &after[value_end..];
    }
    out
}

fn assert_csp_clean(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"), "doctype: {html}");
    assert!(html.contains("href=\"/static/propusk.css\""), "css link");
    assert!(!html.contains(" style="), "style attribute in {html}");
    assert!(!html.contains("<style"), "style block in {html}");
    let mut rest = html;
    while let Some(i) = rest.find("<script") {
        let tag_end = rest[i..].find('>').map(|e| i + e).unwrap_or(rest.len());
        let tag = &rest[i..tag_end];
        assert!(tag.contains(" src=\"/static/"), "inline script: {tag}");
        let after = &rest[tag_end..];
        assert!(after.starts_with("></script>"), "script with body: {tag}");
        rest = after;
    }
    assert!(!html.contains("javascript:"));
    let lower = html.to_ascii_lowercase();
    for (i, _) in lower.match_indices(" on") {
        let name: String = lower[i + 3..]
            .chars()
            .take_while(char::is_ascii_alphabetic)
            .collect();
        let after = &lower[i + 3 + name.len()..];
        assert!(
            name.is_empty() || !after.starts_with('='),
            "event handler attribute on{name} in {html}"
        );
    }
}

fn assert_lang(html: &str, lang: Lang) {
    assert!(
        html.contains(&format!("<html lang=\"{}\">", lang.code())),
        "lang in {html}"
    );
    match lang {
        Lang::Ru => assert!(html.contains("Пропуск")),
        Lang::En => assert!(html.contains("Propusk")),
    }
}

fn login(lang: Lang) -> LoginPage<'static> {
    LoginPage {
        lang,
        client_name: "Госуслуги",
        action: "/login",
        tx: "tx-123_AB",
        csrf: "csrf-XYZ_9",
        identifier: None,
        error: None,
    }
}

fn all_pages(lang: Lang) -> Vec<String> {
    let scopes = ["openid", "fullname", "snils", "custom:thing"];
    let hidden = [
        ("post_logout_redirect_uri", "https://rp.example/bye"),
        ("state", "s1"),
    ];
    let fields = [("code", "c0de"), ("state", "st")];
    let mut pages = vec![
        login(lang).render(),
        LoginPage {
            identifier: Some("ivan@example.ru"),
            error: Some(LoginError::InvalidCredentials),
            ..login(lang)
        }
        .render(),
        ConsentPage {
            lang,
            client_name: "Портал",
            action: "/consent",
            tx: "t",
            csrf: "c",
            scopes: &scopes,
            user_display: "Иван И.",
        }
        .render(),
        LogoutConfirmPage {
            lang,
            action: "/logout",
            csrf: "c",
            hidden: &hidden,
        }
        .render(),
        LoggedOutPage { lang }.render(),
    ];
    for kind in ALL_KINDS {
        pages.push(
            ErrorPage {
                lang,
                kind,
                detail: Some("x"),
            }
            .render(),
        );
    }
    for error in [
        LoginError::InvalidCredentials,
        LoginError::Locked,
        LoginError::MissingFields,
        LoginError::Expired,
    ] {
        pages.push(
            LoginPage {
                error: Some(error),
                ..login(lang)
            }
            .render(),
        );
    }
    if lang == Lang::Ru {
        pages.push(
            FormPostPage {
                action: "https://rp.example/cb",
                fields: &fields,
            }
            .render(),
        );
    }
    pages
}

#[test]
fn negotiate_cases() {
    assert_eq!(Lang::negotiate(Some("en-US ru"), None), Lang::En);
    assert_eq!(Lang::negotiate(Some("ru en"), Some("en")), Lang::Ru);
    assert_eq!(
        Lang::negotiate(Some("fr"), Some("en-GB,en;q=0.8")),
        Lang::En
    );
    assert_eq!(Lang::negotiate(Some("fr de"), None), Lang::Ru);
    assert_eq!(Lang::negotiate(None, Some("en;q=0.1, ru;q=0.9")), Lang::Ru);
    assert_eq!(Lang::negotiate(None, Some("ru;q=0.1, en;q=0.9")), Lang::En);
    assert_eq!(Lang::negotiate(None, Some("fr-FR, en;q=0.5")), Lang::En);
    assert_eq!(Lang::negotiate(None, Some("en;q=0, ru;q=0.2")), Lang::Ru);
    assert_eq!(Lang::negotiate(None, Some("en;q=0")), Lang::Ru);
    assert_eq!(Lang::negotiate(None, Some("EN-us")), Lang::En);
    assert_eq!(Lang::negotiate(None, Some("en, ru")), Lang::En);
    assert_eq!(Lang::negotiate(None, Some("*")), Lang::Ru);
    assert_eq!(Lang::negotiate(Some(""), Some("")), Lang::Ru);
    assert_eq!(Lang::negotiate(None, None), Lang::Ru);
    assert_eq!(
        Lang::negotiate(Some(";;;,,"), Some("@@@;q=zz,,;")),
        Lang::Ru
    );
    assert_eq!(Lang::negotiate(None, Some("en;q=abc, ru;q=0.1")), Lang::Ru);
    assert_eq!(Lang::negotiate(None, Some("english")), Lang::Ru);
    assert_eq!(Lang::En.code(), "en");
    assert_eq!(Lang::Ru.code(), "ru");
}

#[test]
fn every_page_renders_in_both_languages_without_inline_code() {
    for lang in LANGS {
        for html in all_pages(lang) {
            assert_csp_clean(&html);
            assert_lang(&html, lang);
            assert!(html.trim_end().ends_with("</html>"));
        }
    }
}

#[test]
fn login_page_has_form_fields() {
    for lang in LANGS {
        let html = LoginPage {
            identifier: Some("+7 900 000-00-00"),
            ..login(lang)
        }
        .render();
        assert!(html.contains("<form method=\"post\" action=\"/login\">"));
        assert!(html.contains("<input type=\"hidden\" name=\"tx\" value=\"tx-123_AB\">"));
        assert!(html.contains("<input type=\"hidden\" name=\"csrf\" value=\"csrf-XYZ_9\">"));
        assert_eq!(
            hidden_inputs(&html),
            vec![
                ("tx".to_string(), "tx-123_AB".to_string()),
                ("csrf".to_string(), "csrf-XYZ_9".to_string())
            ]
        );
        assert!(html.contains("name=\"identifier\" value=\"+7 900 000-00-00\""));
        // `webauthn`: passkeys are offered in the identifier's autofill (conditional UI).
        assert!(html.contains("autocomplete=\"username webauthn\""));
        assert!(html.contains("name=\"password\" autocomplete=\"current-password\""));
        assert!(html.contains("name=\"remember\" value=\"on\""));
        assert!(html.contains("<label for=\"identifier\">"));
        assert!(html.contains("<label for=\"password\">"));
        assert!(html.contains("<label for=\"remember\">"));
        assert!(html.contains("type=\"submit\""));
        assert!(html.contains("Госуслуги"));
    }
    let ru = login(Lang::Ru).render();
    assert!(ru.contains("Телефон, почта, СНИЛС или ИНН"));
    assert!(ru.contains("Запомнить меня"));
    let en = login(Lang::En).render();
    assert!(en.contains("Phone, e-mail, SNILS or INN"));
    assert!(en.contains("Remember me"));
}

#[test]
fn login_errors_are_shown() {
    let html = LoginPage {
        error: Some(LoginError::InvalidCredentials),
        ..login(Lang::Ru)
    }
    .render();
    assert!(html.contains("role=\"alert\""));
    assert!(html.contains("Неверный логин или пароль"));
    let html = LoginPage {
        error: Some(LoginError::Locked),
        ..login(Lang::En)
    }
    .render();
    assert!(html.contains("try again"));
    assert!(!login(Lang::En).render().contains("role=\"alert\""));
}

#[test]
fn values_are_escaped() {
    for lang in LANGS {
        let pages = [
            LoginPage {
                lang,
                client_name: EVIL,
                action: EVIL,
                tx: EVIL,
                csrf: EVIL,
                identifier: Some(EVIL),
                error: None,
            }
            .render(),
            ConsentPage {
                lang,
                client_name: EVIL,
                action: EVIL,
                tx: EVIL,
                csrf: EVIL,
                scopes: &[EVIL],
                user_display: EVIL,
            }
            .render(),
            ErrorPage {
                lang,
                kind: ErrorKind::BadRequest,
                detail: Some(EVIL),
            }
            .render(),
            LogoutConfirmPage {
                lang,
                action: EVIL,
                csrf: EVIL,
                hidden: &[(EVIL, EVIL)],
            }
            .render(),
            FormPostPage {
                action: EVIL,
                fields: &[(EVIL, EVIL)],
            }
            .render(),
        ];
        for html in pages {
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains("alert(\""), "{html}");
            assert!(html.contains("&#60;script&#62;"), "{html}");
            assert_csp_clean(&html);
        }
    }
}

#[test]
fn hidden_values_with_quotes_stay_parseable() {
    let html = LoginPage {
        tx: "a\"b",
        ..login(Lang::Ru)
    }
    .render();
    let inputs = hidden_inputs(&html);
    assert_eq!(inputs.len(), 2);
    assert!(!inputs[0].1.contains('"'));
}

#[test]
fn consent_page_shows_scope_descriptions() {
    let scopes = [
        "openid",
        "profile",
        "email",
        "phone",
        "address",
        "offline_access",
        "fullname",
        "birthdate",
        "gender",
        "birthplace",
        "snils",
        "inn",
        "id_doc",
        "mobile",
        "contacts",
        "addresses",
        "usr_org",
        "x-unknown",
        "snils",
    ];
    for lang in LANGS {
        let html = ConsentPage {
            lang,
            client_name: "Налоговая",
            action: "/consent",
            tx: "T1",
            csrf: "C1",
            scopes: &scopes,
            user_display: "Иванов И. И.",
        }
        .render();
        for scope in &scopes[..17] {
            let text = scope_description(scope, lang);
            assert!(text.is_some(), "no text for {scope}");
            let text = text.unwrap_or_default();
            assert!(html.contains(&escape_html(text)), "{scope} missing");
        }
        assert!(html.contains("<code>x-unknown</code>"));
        assert_eq!(html.matches("<li>").count(), 18, "duplicates removed");
        assert!(html.contains("name=\"decision\" value=\"allow\""));
        assert!(html.contains("name=\"decision\" value=\"deny\""));
        assert!(html.contains("<input type=\"hidden\" name=\"tx\" value=\"T1\">"));
        assert!(html.contains("<input type=\"hidden\" name=\"csrf\" value=\"C1\">"));
        assert!(html.contains("Иванов И. И."));
        assert!(html.contains("Налоговая"));
    }
    assert_eq!(scope_description("snils", Lang::Ru), Some("СНИЛС"));
    assert_eq!(scope_description("nope", Lang::En), None);
}

#[test]
fn error_pages_have_distinct_texts() {
    for lang in LANGS {
        let mut seen = Vec::new();
        for kind in ALL_KINDS {
            let t = texts::error_texts(kind, lang);
            assert!(!seen.contains(&t.title), "duplicate title {}", t.title);
            seen.push(t.title);
            let html = ErrorPage {
                lang,
                kind,
                detail: None,
            }
            .render();
            assert!(html.contains(&escape_html(t.title)));
            assert!(html.contains(&escape_html(t.next_step)));
            assert!(!html.contains("class=\"muted detail\""));
        }
    }
    let html = ErrorPage {
        lang: Lang::En,
        kind: ErrorKind::NotFound,
        detail: Some("Reference 42"),
    }
    .render();
    assert!(html.contains("Reference 42"));
    assert_eq!(ErrorKind::NotFound.status(), 404);
    assert_eq!(ErrorKind::InvalidRedirectUri.status(), 400);
}

#[test]
fn logout_pages() {
    let hidden = [
        ("state", "abc"),
        ("post_logout_redirect_uri", "https://rp/x?a=1&b=2"),
    ];
    let html = LogoutConfirmPage {
        lang: Lang::Ru,
        action: "/logout",
        csrf: "CS",
        hidden: &hidden,
    }
    .render();
    assert!(html.contains("Выйти из Пропуска?"));
    assert!(html.contains("name=\"confirm\" value=\"yes\""));
    assert!(html.contains("<form method=\"post\" action=\"/logout\">"));
    assert_eq!(
        hidden_inputs(&html),
        vec![
            ("csrf".to_string(), "CS".to_string()),
            ("state".to_string(), "abc".to_string()),
            (
                "post_logout_redirect_uri".to_string(),
                "https://rp/x?a=1&#38;b=2".to_string()
            ),
        ]
    );
    let en = LogoutConfirmPage {
        lang: Lang::En,
        action: "/logout",
        csrf: "CS",
        hidden: &[],
    }
    .render();
    assert!(en.contains("Sign out of Propusk?"));
    assert!(LoggedOutPage { lang: Lang::Ru }
        .render()
        .contains("Вы вышли"));
    assert!(LoggedOutPage { lang: Lang::En }
        .render()
        .contains("signed out"));
}

#[test]
fn form_post_page() {
    let fields = [
        ("code", "abc"),
        ("state", "x y"),
        ("iss", "https://idp.example"),
    ];
    let html = FormPostPage {
        action: "https://rp.example/cb",
        fields: &fields,
    }
    .render();
    assert!(html.contains("<form method=\"post\" action=\"https://rp.example/cb\">"));
    assert!(html.contains("<script src=\"/static/form_post.js\" defer></script>"));
    assert!(html.contains("type=\"submit\""));
    assert_eq!(
        hidden_inputs(&html),
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    );
    assert_csp_clean(&html);
}

#[test]
fn static_assets() {
    let (css, ct) = static_asset("propusk.css").unwrap_or_default();
    assert!(ct.starts_with("text/css"));
    assert!(!css.is_empty());
    let (js, ct) = static_asset("form_post.js").unwrap_or_default();
    assert!(ct.starts_with("text/javascript"));
    assert!(std::str::from_utf8(js)
        .unwrap_or_default()
        .contains("submit()"));
    assert!(static_asset("../Cargo.toml").is_none());
    assert!(static_asset("").is_none());
}

#[test]
fn escape_html_escapes_all_specials() {
    assert_eq!(
        escape_html("<a href=\"x\">&'</a>"),
        "&#60;a href=&#34;x&#34;&#62;&#38;&#39;&#60;/a&#62;"
    );
    let page = fallback_page(Lang::En, "<b>", "&");
    assert!(page.contains("&#60;b&#62;"));
    assert!(page.contains("<html lang=\"en\">"));
}
