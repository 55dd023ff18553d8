//! E-mail through an SMTP relay (lettre, rustls with ring).

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{read_secret_file, Channel, Message, NotifyError, SendError, Sender};
use crate::config::notify::{SmtpConfig, SmtpTls};

/// Subject of an e-mail queued without one.
const DEFAULT_SUBJECT: &str = "Propusk";

/// Sends [`Channel::Email`] messages as `text/plain; charset=utf-8` mail. One connection
/// per message: volumes are small and a relay may drop idle connections.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    /// Domain part of generated Message-IDs.
    helo_name: String,
}

impl std::fmt::Debug for SmtpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSender")
            .field("from", &self.from.email.to_string())
            .finish_non_exhaustive()
    }
}

impl SmtpSender {
    /// A sender for the configured relay; reads the password and CA files now.
    pub fn from_config(cfg: &SmtpConfig) -> Result<SmtpSender, NotifyError> {
        let host = cfg
            .host()
            .ok_or_else(|| NotifyError::Config("smtp.host is not set".into()))?;
        let from: Mailbox = cfg.from.parse().map_err(|_| {
            NotifyError::Config(format!(
                "smtp.from: `{}` is not an e-mail address",
                cfg.from
            ))
        })?;
        let tls_err =
            |e: lettre::transport::smtp::Error| NotifyError::Config(format!("smtp tls: {e}"));
        let tls = match cfg.tls {
            SmtpTls::None => Tls::None,
            mode => {
                let mut params = TlsParameters::builder(host.to_string());
                if let Some(path) = &cfg.ca_file {
                    let pem = std::fs::read(path).map_err(|source| NotifyError::ReadFile {
                        path: path.display().to_string(),
                        source,
                    })?;
                    params =
                        params.add_root_certificate(Certificate::from_pem(&pem).map_err(tls_err)?);
                }
                let params = params.build_rustls().map_err(tls_err)?;
                if mode == SmtpTls::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(cfg.port)
            .tls(tls)
            .hello_name(ClientId::Domain(cfg.helo_name.clone()))
            .timeout(Some(Duration::from_secs(cfg.timeout_secs.max(1))));
        if let (Some(user), Some(file)) = (&cfg.username, &cfg.password_file) {
            let password = read_secret_file(file)?;
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(SmtpSender {
            transport: builder.build(),
            from,
            helo_name: cfg.helo_name.clone(),
        })
    }
}

/// Maps a transport error to a class that holds no reply text (a relay's reply may quote the
/// recipient address).
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let code = e.status().map(|c| format!(" ({c})")).unwrap_or_default();
    if e.is_permanent() {
        SendError::Permanent(format!("smtp: rejected{code}"))
    } else if e.is_transient() {
        SendError::Temporary(format!("smtp: deferred{code}"))
    } else if e.is_timeout() {
        SendError::Temporary("smtp: timeout".into())
    } else if e.is_tls() {
        SendError::Temporary("smtp: tls failed".into())
    } else if e.is_response() {
        SendError::Temporary("smtp: bad reply".into())
    } else {
        SendError::Temporary("smtp: connection failed".into())
    }
}

#[async_trait::async_trait]
impl Sender for SmtpSender {
    async fn send(&self, m: &Message) -> Result<(), SendError> {
        if m.channel != Channel::Email {
            return Err(SendError::Permanent(format!(
                "smtp: cannot send a {} message",
                m.channel
            )));
        }
        let to: Mailbox = m
            .recipient
            .parse()
            .map_err(|_| SendError::Permanent("smtp: invalid recipient address".into()))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.as_deref().unwrap_or(DEFAULT_SUBJECT))
            .message_id(Some(format!("<{}@{}>", m.id, self.helo_name)))
            .date(m.created_at.into())
            .header(ContentType::TEXT_PLAIN)
            .body(m.text.clone())
            .map_err(|_| SendError::Permanent("smtp: cannot build the message".into()))?;
        self.transport
            .send(email)
            .await
            .map(|_| ())
            .map_err(|e| classify(&e))
    }
}
