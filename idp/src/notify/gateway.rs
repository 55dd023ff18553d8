//! SMS, voice calls and push through an HTTP gateway.
//!
//! Contract (`docs/design/notify.md`): one `POST` per message with a JSON body
//! `{"id", "channel", "to", "text", "locale"}` (for push also `"platform"` and `"title"`,
//! `docs/design/push.md`) and, when configured, `Authorization: Bearer <token>`. 2xx = accepted; 408, 429 and 5xx, timeouts and connection errors = try again
//! later; any other 4xx = refused for good. Redirects are not followed (they would carry the
//! token elsewhere).

use std::time::Duration;

use serde::Serialize;

use super::{
    read_secret_file, split_push_recipient, Channel, Message, NotifyError, SendError, Sender,
};
use crate::config::notify::GatewayConfig;

/// The request body. `id` is stable across retries, so the gateway can drop duplicates.
#[derive(Serialize)]
struct GatewayRequest<'a> {
    id: &'a str,
    channel: &'static str,
    to: &'a str,
    text: &'a str,
    locale: &'a str,
    /// Push only: which push service the token belongs to (`android`: FCM, `ios`: APNs,
    /// `huawei`: HMS).
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<&'a str>,
    /// Push only: the notification title.
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
}

pub struct HttpGatewaySender {
    client: reqwest::Client,
    url: url::Url,
    token: Option<String>,
}

impl std::fmt::Debug for HttpGatewaySender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpGatewaySender")
            .field("url", &self.url.as_str())
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl HttpGatewaySender {
    pub fn new(
        url: url::Url,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<HttpGatewaySender, NotifyError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| NotifyError::Config(format!("gateway http client: {e}")))?;
        Ok(HttpGatewaySender { client, url, token })
    }

    /// A sender for the configured gateway; reads the token file now.
    pub fn from_config(cfg: &GatewayConfig) -> Result<HttpGatewaySender, NotifyError> {
        let raw = cfg
            .url()
            .ok_or_else(|| NotifyError::Config("gateway.url is not set".into()))?;
        let url =
            url::Url::parse(raw).map_err(|e| NotifyError::Config(format!("gateway.url: {e}")))?;
        let token = cfg
            .token_file
            .as_deref()
            .map(read_secret_file)
            .transpose()?;
        HttpGatewaySender::new(url, token, Duration::from_secs(cfg.timeout_secs.max(1)))
    }
}

/// What an HTTP status means for the message.
fn classify_status(status: reqwest::StatusCode) -> Result<(), SendError> {
    let code = status.as_u16();
    match code {
        200..=299 => Ok(()),
        // Request Timeout and Too Many Requests: the gateway asks to come back later.
        408 | 429 => Err(SendError::Temporary(format!("gateway: HTTP {code}"))),
        400..=499 => Err(SendError::Permanent(format!("gateway: HTTP {code}"))),
        _ => Err(SendError::Temporary(format!("gateway: HTTP {code}"))),
    }
}

#[async_trait::async_trait]
impl Sender for HttpGatewaySender {
    async fn send(&self, m: &Message) -> Result<(), SendError> {
        let (platform, to, title) = match m.channel {
            Channel::Push => {
                let (platform, token) = split_push_recipient(&m.recipient);
                (platform, token, m.subject.as_deref())
            }
            _ => (None, m.recipient.as_str(), None),
        };
        let body = GatewayRequest {
            id: &m.id,
            channel: m.channel.as_str(),
            to,
            text: &m.text,
            locale: &m.locale,
            platform,
            title,
        };
        let mut req = self.client.post(self.url.clone()).json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        // reqwest's error text names the URL, not the body; still, only the class is kept.
        let resp = req.send().await.map_err(|e| {
            SendError::Temporary(
                if e.is_timeout() {
                    "gateway: timeout"
                } else if e.is_connect() {
                    "gateway: connection failed"
                } else {
                    "gateway: request failed"
                }
                .into(),
            )
        })?;
        classify_status(resp.status())
    }
}
