//! Notification delivery settings (`[notify]`): the outbox dispatcher, the SMTP relay for
//! e-mail and the HTTP gateway for SMS, voice calls and push. See `docs/design/notify.md`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The outbox and its senders. With neither `smtp.host` nor `gateway.url` set, every message
/// goes to the in-memory dev mailbox (demo mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// Attempts per message before it is given up (each claim by a dispatcher counts).
    pub max_attempts: u32,
    /// Delay before the second attempt (seconds); each later attempt waits twice as long.
    pub backoff_base_secs: u64,
    /// Upper bound of the delay between attempts (seconds).
    pub backoff_max_secs: u64,
    /// How long a dispatcher holds a claimed message before another node may retry it
    /// (seconds). Longer than the slowest send (SMTP or gateway timeout).
    pub lease_secs: u64,
    /// Messages claimed per round.
    pub batch_size: u32,
    /// How often each node looks for due messages (milliseconds).
    pub poll_interval_ms: u64,
    /// How long sent and given-up messages are kept before they are deleted (days).
    pub retention_days: u32,
    /// Messages the dev mailbox keeps in memory (the newest ones).
    pub dev_mailbox_size: usize,
    pub smtp: SmtpConfig,
    pub gateway: GatewayConfig,
}

/// How the connection to the SMTP relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text; only for a relay on the same host or a test server.
    None,
    /// Plain connection upgraded with STARTTLS, which is required (usually port 587).
    Starttls,
    /// TLS from the first byte ("SMTPS", usually port 465).
    Tls,
}

/// E-mail through an SMTP relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Relay host name. Unset: e-mail goes to the dev mailbox.
    pub host: Option<String>,
    /// Relay port.
    pub port: u16,
    /// `starttls`, `tls` or `none`.
    pub tls: SmtpTls,
    /// User name for SMTP AUTH; unset: no authentication.
    pub username: Option<String>,
    /// File holding the SMTP AUTH password (trailing newline ignored).
    pub password_file: Option<PathBuf>,
    /// `From` address, optionally with a display name: `Propusk <no-reply@id.example.ru>`.
    pub from: String,
    /// Name this node gives in EHLO; a fully qualified host name is best.
    pub helo_name: String,
    /// PEM file with extra CA certificates that may sign the relay's certificate.
    pub ca_file: Option<PathBuf>,
    /// Connect and command timeout (seconds).
    pub timeout_secs: u64,
}

/// SMS, voice calls and push through an HTTP gateway (JSON contract in `docs/design/notify.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Endpoint that accepts `POST` of one message. Unset: these channels go to the dev
    /// mailbox. https, except on a loopback address.
    pub url: Option<String>,
    /// File holding a bearer token sent as `Authorization: Bearer ...` (trailing newline
    /// ignored); unset: no `Authorization` header.
    pub token_file: Option<PathBuf>,
    /// Whole-request timeout (seconds); a timeout is retried later.
    pub timeout_secs: u64,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            backoff_base_secs: 10,
            backoff_max_secs: 3_600,
            lease_secs: 120,
            batch_size: 20,
            poll_interval_ms: 1_000,
            retention_days: 7,
            dev_mailbox_size: 50,
            smtp: SmtpConfig::default(),
            gateway: GatewayConfig::default(),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: None,
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password_file: None,
            from: "Propusk <no-reply@localhost>".into(),
            helo_name: "localhost".into(),
            ca_file: None,
            timeout_secs: 30,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            url: None,
            token_file: None,
            timeout_secs: 10,
        }
    }
}

impl SmtpConfig {
    /// The relay host, when one is configured (an empty string counts as unset).
    pub fn host(&self) -> Option<&str> {
        self.host
            .as_deref()
            .map(str::trim)
            .filter(|h| !h.is_empty())
    }
}

impl GatewayConfig {
    /// The gateway URL, when one is configured (an empty string counts as unset).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref().map(str::trim).filter(|u| !u.is_empty())
    }
}

impl NotifyConfig {
    /// Checks values that would make delivery fail or loop. `dev` allows a plain-http gateway
    /// on a non-loopback host.
    pub fn validate(&self, dev: bool) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("notify.max_attempts: must be at least 1".into());
        }
        if self.backoff_base_secs == 0 || self.backoff_max_secs < self.backoff_base_secs {
            return Err(
                "notify: backoff_base_secs must be positive and at most backoff_max_secs".into(),
            );
        }
        if self.batch_size == 0 || self.poll_interval_ms == 0 {
            return Err("notify: batch_size and poll_interval_ms must be positive".into());
        }
        let slowest = self.smtp.timeout_secs.max(self.gateway.timeout_secs);
        if self.lease_secs <= slowest {
            return Err(format!(
                "notify.lease_secs: must exceed the longest send timeout ({slowest} s), or a \
                 slow send could be retried by another node while it is still running"
            ));
        }
        if self.retention_days == 0 {
            return Err("notify.retention_days: must be at least 1".into());
        }
        if self.smtp.host().is_some() {
            if self.smtp.timeout_secs == 0 {
                return Err("notify.smtp.timeout_secs: must be positive".into());
            }
            if self.smtp.username.is_some() != self.smtp.password_file.is_some() {
                return Err("notify.smtp: set both username and password_file, or neither".into());
            }
            if self.smtp.from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(format!(
                    "notify.smtp.from: `{}` is not an e-mail address",
                    self.smtp.from
                ));
            }
        }
        if let Some(u) = self.gateway.url() {
            let url = url::Url::parse(u).map_err(|e| format!("notify.gateway.url: {e}"))?;
            let loopback = matches!(
                url.host_str(),
                Some("127.0.0.1") | Some("localhost") | Some("[::1]")
            );
            match url.scheme() {
                "https" => {}
                "http" if loopback || dev => {}
                _ => {
                    return Err(
                        "notify.gateway.url: must be https (http only on loopback or in dev mode)"
                            .into(),
                    )
                }
            }
            if self.gateway.timeout_secs == 0 {
                return Err("notify.gateway.timeout_secs: must be positive".into());
            }
        }
        Ok(())
    }

    /// Whether any message would go to the dev mailbox (a channel without a real sender).
    pub fn uses_dev_mailbox(&self) -> bool {
        self.smtp.host().is_none() || self.gateway.url().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_defaults_are_valid_and_use_the_dev_mailbox() {
        let c = NotifyConfig::default();
        c.validate(false).unwrap();
        assert!(c.uses_dev_mailbox());
        assert_eq!(c.smtp.host(), None);
        assert_eq!(c.gateway.url(), None);
    }

    #[test]
    fn notify_config_round_trips_through_toml_and_refuses_unknown_keys() {
        let text = toml::to_string_pretty(&NotifyConfig::default()).unwrap();
        let back: NotifyConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, NotifyConfig::default());
        let parsed: NotifyConfig = toml::from_str(
            "max_attempts = 3\n[smtp]\nhost = \"mail.example.ru\"\ntls = \"tls\"\nport = 465\n",
        )
        .unwrap();
        assert_eq!(parsed.smtp.tls, SmtpTls::Tls);
        assert_eq!(parsed.smtp.host(), Some("mail.example.ru"));
        assert!(toml::from_str::<NotifyConfig>("[smtp]\nhots = \"x\"\n").is_err());
        assert!(toml::from_str::<NotifyConfig>("[smtp]\ntls = \"ssl\"\n").is_err());
    }

    #[test]
    fn notify_validate_names_the_bad_setting() {
        let mut c = NotifyConfig::default();
        c.gateway.url = Some("http://sms.example.ru/send".into());
        assert!(c.validate(false).unwrap_err().contains("gateway.url"));
        c.validate(true).unwrap();
        c.gateway.url = Some("http://127.0.0.1:9/send".into());
        c.validate(false).unwrap();

        let mut c = NotifyConfig::default();
        c.lease_secs = c.smtp.timeout_secs;
        assert!(c.validate(false).unwrap_err().contains("lease_secs"));

        let mut c = NotifyConfig::default();
        c.smtp.host = Some("mail.example.ru".into());
        c.smtp.username = Some("propusk".into());
        assert!(c.validate(false).unwrap_err().contains("password_file"));
        c.smtp.username = None;
        c.smtp.from = "not an address".into();
        assert!(c.validate(false).unwrap_err().contains("smtp.from"));
    }
}
