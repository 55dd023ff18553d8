//! `/account/profile/certificate`: confirming the account with a qualified electronic
//! signature — the challenge to sign, the form for the signature, and every refusal in the
//! citizen's language.

use askama::Template;

use crate::{render_or_fallback, Lang, Layout};

fn tr(lang: Lang, ru: &'static str, en: &'static str) -> &'static str {
    match lang {
        Lang::Ru => ru,
        Lang::En => en,
    }
}

/// What the page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateState<'a> {
    /// The challenge and the form; `problem`: why the last signature was refused (a reason
    /// code of the provider's certificate check).
    Form {
        challenge: &'a str,
        problem: Option<&'a str>,
    },
    /// The account is now confirmed.
    Done,
    /// This way is not offered (no trusted CAs configured), or the account is not ready for
    /// it (`needs_standard`, `already_confirmed`).
    Unavailable(&'a str),
}

#[derive(Debug, Clone)]
pub struct CertificatePage<'a> {
    pub lang: Lang,
    pub csrf: &'a str,
    pub state: CertificateState<'a>,
}

#[derive(Template)]
#[template(path = "certificate.html")]
struct CertificateTemplate<'a> {
    page: Layout<'a>,
    lead: &'static str,
    csrf: &'a str,
    challenge: &'a str,
    problem: Option<&'static str>,
    reason: &'a str,
    done: Option<&'static str>,
    unavailable: Option<&'static str>,
    step_save: &'static str,
    step_sign: &'static str,
    step_paste: &'static str,
    challenge_label: &'static str,
    signature_label: &'static str,
    submit: &'static str,
    back: &'static str,
}

/// The citizen-facing text of a refusal reason.
pub fn certificate_problem(lang: Lang, reason: &str) -> &'static str {
    let l = lang;
    match reason {
        "malformed" => tr(
            l,
            "Это не похоже на электронную подпись. Вставьте подпись целиком, в формате PEM или base64.",
            "This does not look like an electronic signature. Paste the whole signature, as PEM or base64.",
        ),
        "signer_count" => tr(
            l,
            "Подпись должна быть сделана одним сертификатом — вашим.",
            "The signature must be made with exactly one certificate — yours.",
        ),
        "bad_signature" => tr(
            l,
            "Подпись не соответствует тексту запроса. Подпишите текст, показанный на этой странице, без изменений.",
            "The signature does not match the challenge. Sign the text shown on this page, unchanged.",
        ),
        "untrusted" => tr(
            l,
            "Сертификат выдан не аккредитованным удостоверяющим центром. Нужен квалифицированный сертификат.",
            "The certificate was not issued by an accredited certification authority. A qualified certificate is needed.",
        ),
        "expired" => tr(
            l,
            "Срок действия сертификата истёк или ещё не начался.",
            "The certificate has expired or is not valid yet.",
        ),
        "no_snils" => tr(
            l,
            "В сертификате нет СНИЛС. Нужен квалифицированный сертификат физического лица.",
            "The certificate carries no SNILS. A qualified certificate of a natural person is needed.",
        ),
        "snils_mismatch" => tr(
            l,
            "СНИЛС в сертификате не совпадает с подтверждённым СНИЛС вашей учётной записи.",
            "The SNILS in the certificate differs from the verified SNILS of your account.",
        ),
        "name_mismatch" => tr(
            l,
            "Фамилия в сертификате не совпадает с фамилией в вашей учётной записи.",
            "The surname in the certificate differs from the one in your account.",
        ),
        "expired_challenge" => tr(
            l,
            "Время на подпись истекло или запрос уже использован. Подпишите новый текст ниже.",
            "The challenge expired or was already used. Sign the new text below.",
        ),
        _ => tr(
            l,
            "Не удалось проверить подпись. Попробуйте ещё раз.",
            "The signature could not be checked. Please try again.",
        ),
    }
}

impl CertificatePage<'_> {
    pub fn render(&self) -> String {
        let l = self.lang;
        let title = tr(
            l,
            "Подтверждение электронной подписью",
            "Confirm with an electronic signature",
        );
        let (challenge, problem, reason, done, unavailable) = match self.state {
            CertificateState::Form { challenge, problem } => (
                challenge,
                problem.map(|p| certificate_problem(l, p)),
                problem.unwrap_or(""),
                None,
                None,
            ),
            CertificateState::Done => (
                "",
                None,
                "",
                Some(tr(
                    l,
                    "Готово: ваша учётная запись подтверждена.",
                    "Done: your account is confirmed.",
                )),
                None,
            ),
            CertificateState::Unavailable(why) => (
                "",
                None,
                "",
                None,
                Some(match why {
                    "needs_standard" => tr(
                        l,
                        "Сначала получите стандартную учётную запись: укажите СНИЛС и паспорт в профиле и дождитесь проверки.",
                        "First get a standard account: enter your SNILS and passport in the profile and wait for the check.",
                    ),
                    "already_confirmed" => tr(
                        l,
                        "Ваша учётная запись уже подтверждена.",
                        "Your account is already confirmed.",
                    ),
                    _ => tr(
                        l,
                        "Подтверждение электронной подписью здесь не предлагается. Подтвердите личность в центре обслуживания.",
                        "Confirmation by electronic signature is not offered here. Confirm your identity at a service centre.",
                    ),
                }),
            ),
        };
        let t = CertificateTemplate {
            page: Layout::new(l, title),
            lead: tr(
                l,
                "Квалифицированная электронная подпись физического лица подтверждает вашу личность так же, как визит в центр обслуживания.",
                "A qualified electronic signature of a natural person confirms your identity just as a visit to a service centre does.",
            ),
            csrf: self.csrf,
            challenge,
            problem,
            reason,
            done,
            unavailable,
            step_save: tr(
                l,
                "Сохраните текст запроса ниже в файл challenge.txt — точно как он показан.",
                "Save the challenge text below to a file challenge.txt — exactly as shown.",
            ),
            step_sign: tr(
                l,
                "Подпишите его своим сертификатом (откреплённая подпись CMS), например программой КриптоПро или командой:",
                "Sign it with your certificate (a detached CMS signature), e.g. with CryptoPro or the command:",
            ),
            step_paste: tr(
                l,
                "Вставьте подпись в поле и отправьте. Запрос действует 10 минут.",
                "Paste the signature into the field and send it. The challenge is valid for 10 minutes.",
            ),
            challenge_label: tr(l, "Текст запроса", "Challenge"),
            signature_label: tr(l, "Подпись (PEM или base64)", "Signature (PEM or base64)"),
            submit: tr(l, "Подтвердить", "Confirm"),
            back: tr(l, "Вернуться в профиль", "Back to the profile"),
        };
        render_or_fallback(&t, l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_renders_in_both_languages() {
        for lang in [Lang::Ru, Lang::En] {
            let form = CertificatePage {
                lang,
                csrf: "c<s>",
                state: CertificateState::Form {
                    challenge: "Propusk <nonce>",
                    problem: Some("snils_mismatch"),
                },
            }
            .render();
            assert!(form.contains("name=\"signature\""));
            assert!(form.contains("Propusk &#60;nonce&#62;"), "{form}");
            assert!(form.contains("data-reason=\"snils_mismatch\""));
            let done = CertificatePage {
                lang,
                csrf: "",
                state: CertificateState::Done,
            }
            .render();
            assert!(done.contains("id=\"certificate-done\""));
            let off = CertificatePage {
                lang,
                csrf: "",
                state: CertificateState::Unavailable("off"),
            }
            .render();
            assert!(off.contains("id=\"certificate-unavailable\""));
        }
    }

    #[test]
    fn every_reason_has_its_own_text() {
        let reasons = [
            "malformed",
            "signer_count",
            "bad_signature",
            "untrusted",
            "expired",
            "no_snils",
            "snils_mismatch",
            "name_mismatch",
            "expired_challenge",
        ];
        let texts: std::collections::BTreeSet<_> = reasons
            .iter()
            .map(|r| certificate_problem(Lang::En, r))
            .collect();
        assert_eq!(texts.len(), reasons.len());
    }
}
