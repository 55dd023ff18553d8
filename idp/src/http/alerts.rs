//! Security alerts to the account owner, through the notification outbox: sign-in locked,
//! recovery code used. Sent to the confirmed e-mail, else by SMS to the confirmed phone.

use crate::notify::{Channel, NewMessage, OutboxStore};
use crate::protocol::OAuthError;
use crate::state::AppState;
use crate::store::SubjectStore;

/// What happened, for the message text.
#[derive(Debug, Clone, Copy)]
pub enum Alert {
    /// Three wrong passwords locked password sign-in.
    Locked { minutes: u64 },
    /// A recovery code was used to sign in.
    RecoveryCodeUsed,
    /// The account became confirmed by a qualified electronic signature.
    ConfirmedByCertificate,
    /// A bank confirmed the account.
    ConfirmedByBank,
}

impl Alert {
    fn kind(self) -> &'static str {
        match self {
            Alert::Locked { .. } => "alert.login_locked",
            Alert::RecoveryCodeUsed => "alert.recovery_code_used",
            Alert::ConfirmedByCertificate => "alert.confirmed_by_certificate",
            Alert::ConfirmedByBank => "alert.confirmed_by_bank",
        }
    }

    fn text(self) -> (String, String) {
        match self {
            Alert::Locked { minutes } => (
                "Вход в аккаунт заблокирован".into(),
                format!(
                    "После трёх неверных паролей вход по паролю в ваш аккаунт заблокирован на {minutes} минут. \
                     Если это были не вы, смените пароль после разблокировки."
                ),
            ),
            Alert::RecoveryCodeUsed => (
                "Использован резервный код".into(),
                "Для входа в ваш аккаунт использован резервный код. Если это были не вы, \
                 смените пароль и выпустите новые резервные коды."
                    .into(),
            ),
            Alert::ConfirmedByCertificate => (
                "Учётная запись подтверждена".into(),
                "Ваша учётная запись подтверждена квалифицированной электронной подписью. \
                 Если это были не вы, обратитесь в службу поддержки."
                    .into(),
            ),
            Alert::ConfirmedByBank => (
                "Учётная запись подтверждена банком".into(),
                "Ваша учётная запись подтверждена банком. Если вы не обращались в банк за \
                 подтверждением, обратитесь в службу поддержки."
                    .into(),
            ),
        }
    }
}

/// Queues the alert for the owner of `subject_id` (nothing when they have no confirmed contact).
pub async fn alert_owner(
    state: &AppState,
    subject_id: &str,
    alert: Alert,
) -> Result<(), OAuthError> {
    let sub = subject_id.to_string();
    let now = state.now();
    state
        .store
        .call(move |s| {
            let Some(subject) = s.find_subject(&sub)? else {
                return Ok(());
            };
            let p = &subject.profile;
            let (subject_line, text) = alert.text();
            let message = match (&p.email, &p.phone_number) {
                (Some(e), _) if p.email_verified => {
                    NewMessage::new(Channel::Email, e.clone(), alert.kind(), text)
                        .with_subject(subject_line)
                }
                (_, Some(ph)) if p.phone_number_verified => {
                    NewMessage::new(Channel::Sms, ph.clone(), alert.kind(), text)
                }
                _ => return Ok(()),
            };
            s.enqueue(&message.with_locale("ru"), now).map(|_| ())
        })
        .await?;
    Ok(())
}

/// `GET /dev/mailbox` (dev mode only): the messages that went to the dev mailbox.
pub async fn dev_mailbox(state: actix_web::web::Data<AppState>) -> actix_web::HttpResponse {
    if !state.cfg.dev {
        return actix_web::HttpResponse::NotFound().finish();
    }
    let esc = consent_ui::escape_html;
    let mut rows = String::new();
    for m in state.mailbox.recent() {
        rows.push_str(&format!(
            "<li><p><strong>{}</strong> → {} · {}</p><p>{}</p><pre>{}</pre></li>\n",
            esc(m.channel.as_str()),
            esc(&m.to),
            esc(&m.created_at.format("%d.%m.%Y %H:%M:%S").to_string()),
            esc(m.subject.as_deref().unwrap_or("")),
            esc(&m.text),
        ));
    }
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"ru\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Почтовый ящик разработчика</title>\n<link rel=\"stylesheet\" href=\"/static/propusk.css\">\n\
         </head>\n<body>\n<main class=\"card\">\n<h1>Почтовый ящик разработчика</h1>\n\
         <p class=\"lead\">Только в режиме разработки: сообщения, которые не ушли бы наружу.</p>\n\
         <ul>\n{rows}</ul>\n</main>\n</body>\n</html>\n"
    );
    actix_web::HttpResponse::Ok()
        .insert_header(("Content-Type", "text/html; charset=utf-8"))
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}
