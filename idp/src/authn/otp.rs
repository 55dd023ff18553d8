//! One-time codes sent by SMS, voice call, e-mail or push: 6 digits, valid 5 minutes, 3
//! attempts, another code only after a cooldown and within a budget per person (or per typed
//! contact). Kept in the ephemeral store, never in clear: the challenge holds a keyed hash
//! (the vault's index key, which is in neither the database nor Redis) bound to its scope,
//! so a dump of Redis does not let anyone try the million codes offline.
//!
//! Keys (`scope` names one sign-in or recovery, e.g. `login:<tx>`):
//! `otp:<scope>` the challenge (TTL = code lifetime), `otp:<scope>:tries` wrong entries
//! (an atomic counter, so parallel guesses cannot exceed the limit), `otp:<scope>:cool` the
//! resend cooldown (`put_if_absent`: of two racing requests one sends), `otp:<scope>:spent`
//! the hash of the code last accepted (a replay is told apart from an expired code), and
//! `otp:sends:<who>` the send budget.

use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::ephemeral::{EphResult, Ephemeral};

/// Digits of a code.
pub const DIGITS: usize = 6;

/// `[otp]`: one-time codes and the recovery flows that use them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtpConfig {
    /// How long a code is valid (seconds).
    pub code_ttl_secs: u64,
    /// Wrong entries allowed for one code; then it is void.
    pub max_attempts: u64,
    /// Seconds before another code may be requested ("send again").
    pub resend_after_secs: u64,
    /// Codes one person (or one typed contact) may be sent per `send_window_secs`.
    pub max_sends: u64,
    /// The window of `max_sends` (seconds).
    pub send_window_secs: u64,
    /// Shortest answer of a forgot-password / forgot-login request (milliseconds): known and
    /// unknown contacts are answered after the same time.
    pub recovery_min_response_ms: u64,
    /// How recent the sign-in behind an access token must be (seconds since its
    /// `auth_time`) for the mobile app to register a push device with it: a new factor is
    /// enrolled only right after confirming with the existing ones.
    pub push_enrol_max_auth_age_secs: u64,
}

impl Default for OtpConfig {
    fn default() -> Self {
        Self {
            code_ttl_secs: 300,
            max_attempts: 3,
            resend_after_secs: 60,
            max_sends: 5,
            send_window_secs: 3600,
            recovery_min_response_ms: 400,
            push_enrol_max_auth_age_secs: 300,
        }
    }
}

impl OtpConfig {
    /// Refuses settings that would make codes unusable or unlimited.
    pub fn validate(&self) -> Result<(), String> {
        if self.code_ttl_secs == 0 || self.max_attempts == 0 || self.max_sends == 0 {
            return Err("otp: code_ttl_secs, max_attempts and max_sends must be positive".into());
        }
        if self.send_window_secs == 0 {
            return Err("otp: send_window_secs must be positive".into());
        }
        Ok(())
    }
}

/// How a code is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeChannel {
    Sms,
    Voice,
    Email,
    Push,
}

impl CodeChannel {
    pub const ALL: [CodeChannel; 4] = [Self::Sms, Self::Voice, Self::Email, Self::Push];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Voice => "voice",
            Self::Email => "email",
            Self::Push => "push",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The RFC 8176 `amr` value of a sign-in confirmed through this channel: `sms` for a
    /// text message, `tel` for a voice call, `otp` for a code by e-mail or push (RFC 8176
    /// has no value for those; `otp` is "one-time password").
    pub fn amr(self) -> &'static str {
        match self {
            Self::Sms => "sms",
            Self::Voice => "tel",
            Self::Email | Self::Push => "otp",
        }
    }

    /// The outbox channel.
    pub fn notify(self) -> crate::notify::Channel {
        use crate::notify::Channel;
        match self {
            Self::Sms => Channel::Sms,
            Self::Voice => Channel::Voice,
            Self::Email => Channel::Email,
            Self::Push => Channel::Push,
        }
    }
}

/// A code waiting to be entered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Challenge {
    /// Serialisation version.
    pub v: u8,
    pub channel: CodeChannel,
    /// The contact, masked (`+7 *** ***-45-67`), for the page.
    pub masked_to: String,
    /// Keyed hash of the code, bound to the scope.
    pub code_hash: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The push device the code went to (its id), for a code by push.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// What a challenge keeps of its recipient: the masked contact for the page, and for a
/// code by push the device it went to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    pub masked_to: String,
    pub device: Option<String>,
}

/// Why no code was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Another code was sent less than the cooldown ago; wait this many seconds.
    TooSoon { wait_secs: u64 },
    /// The send budget of the window is used up.
    TooMany,
}

/// What an entered code turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Right,
    /// Wrong; this many attempts remain.
    Wrong {
        left: u64,
    },
    /// Wrong, and it was the last attempt: the code is void.
    Exhausted,
    /// No code is waiting (it expired, was voided, or none was sent).
    Expired,
    /// This code was already accepted once.
    Used,
    /// Not 6 digits.
    Malformed,
}

/// A fresh code of [`DIGITS`] digits, uniformly drawn (rejection sampling, no modulo bias).
pub fn generate() -> Option<String> {
    const LIMIT: u32 = 4_294_000_000; // the largest multiple of 10^6 below 2^32
    let rng = SystemRandom::new();
    loop {
        let mut b = [0u8; 4];
        rng.fill(&mut b).ok()?;
        let n = u32::from_be_bytes(b);
        if n < LIMIT {
            return Some(format!("{:06}", n % 1_000_000));
        }
    }
}

/// The code as typed, without spaces and dashes, if it is 6 ASCII digits.
pub fn normalize(input: &str) -> Option<String> {
    let s: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    (s.len() == DIGITS && s.bytes().all(|b| b.is_ascii_digit())).then_some(s)
}

/// `+79001234567` -> `+7 *** ***-45-67`; anything else keeps only its last two characters.
pub fn mask_phone(phone: &str) -> String {
    let digits: Vec<char> = phone.chars().filter(char::is_ascii_digit).collect();
    if digits.len() == 11 {
        return format!(
            "+7 *** ***-{}{}-{}{}",
            digits[7], digits[8], digits[9], digits[10]
        );
    }
    let tail: String = digits.iter().rev().take(2).rev().collect();
    format!("***{tail}")
}

/// `ivan@example.ru` -> `i***@example.ru`.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// The masked form of a contact of `channel`.
pub fn mask(channel: CodeChannel, to: &str) -> String {
    match channel {
        CodeChannel::Email => mask_email(to),
        CodeChannel::Sms | CodeChannel::Voice => mask_phone(to),
        CodeChannel::Push => "***".into(),
    }
}

/// Seconds still to wait before another code, given when the last one was sent.
pub fn wait_secs(issued_at: DateTime<Utc>, now: DateTime<Utc>, cfg: &OtpConfig) -> u64 {
    let elapsed = (now - issued_at).num_seconds().max(0) as u64;
    cfg.resend_after_secs.saturating_sub(elapsed).max(1)
}

/// The text of the message carrying `code`.
pub fn message_text(code: &str, purpose: Purpose, locale: &str, ttl_secs: u64) -> String {
    let minutes = (ttl_secs / 60).max(1);
    match (purpose, locale) {
        (Purpose::SignIn, "en") => format!(
            "Propusk sign-in code: {code}. Valid for {minutes} min. Do not tell it to anyone."
        ),
        (Purpose::Recovery, "en") => format!(
            "Propusk password reset code: {code}. Valid for {minutes} min. If you did not ask for it, ignore this message."
        ),
        (Purpose::SignIn, _) => format!(
            "Код для входа в Пропуск: {code}. Действует {minutes} мин. Никому его не сообщайте."
        ),
        (Purpose::Recovery, _) => format!(
            "Код для восстановления пароля в Пропуске: {code}. Действует {minutes} мин. Если вы его не запрашивали, ничего не делайте."
        ),
    }
}

/// What a code is for (the message text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    SignIn,
    Recovery,
}

/// Codes of one node (state in the ephemeral store).
pub struct Codes<'a> {
    pub eph: &'a dyn Ephemeral,
    pub cfg: &'a OtpConfig,
    pub vault: &'a keys::Vault,
}

fn key(scope: &str) -> String {
    format!("otp:{scope}")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n.max(1))
}

impl Codes<'_> {
    fn hash(&self, scope: &str, code: &str) -> String {
        self.vault.blind_index(&format!("otp:{scope}:{code}"))
    }

    /// The code waiting in `scope`, if any.
    pub async fn current(&self, scope: &str) -> EphResult<Option<Challenge>> {
        Ok(self
            .eph
            .get(&key(scope))
            .await?
            .and_then(|b| serde_json::from_slice::<Challenge>(&b).ok())
            .filter(|c| c.v == 1))
    }

    /// Makes a new code for `scope` (replacing any earlier one, with fresh attempts), unless
    /// the cooldown has not passed or `who` (a person, or the blind index of a typed contact)
    /// has used up the send budget. Returns the code to send; the caller sends it (or, for a
    /// contact no account has, sends nothing: the answer is the same).
    pub async fn issue(
        &self,
        scope: &str,
        who: &str,
        channel: CodeChannel,
        to: &str,
        now: DateTime<Utc>,
    ) -> EphResult<Result<String, Refused>> {
        let shown = Shown {
            masked_to: mask(channel, to),
            device: None,
        };
        self.issue_shown(scope, who, channel, shown, now).await
    }

    /// [`Codes::issue`] with what the page shows of the recipient given by the caller (a
    /// push device is shown by its name, not by its token).
    pub async fn issue_shown(
        &self,
        scope: &str,
        who: &str,
        channel: CodeChannel,
        shown: Shown,
        now: DateTime<Utc>,
    ) -> EphResult<Result<String, Refused>> {
        let cool = format!("{}:cool", key(scope));
        if !self
            .eph
            .put_if_absent(&cool, b"1", secs(self.cfg.resend_after_secs))
            .await?
        {
            let issued = self.current(scope).await?.map(|c| c.issued_at);
            let wait_secs =
                issued.map_or(self.cfg.resend_after_secs, |t| wait_secs(t, now, self.cfg));
            return Ok(Err(Refused::TooSoon { wait_secs }));
        }
        let sent = self
            .eph
            .incr(&format!("otp:sends:{who}"), secs(self.cfg.send_window_secs))
            .await?;
        if sent > self.cfg.max_sends {
            return Ok(Err(Refused::TooMany));
        }
        let Some(code) = generate() else {
            return Err(crate::ephemeral::EphemeralError::Unavailable(
                "no randomness".into(),
            ));
        };
        let ttl = self.cfg.code_ttl_secs;
        let challenge = Challenge {
            v: 1,
            channel,
            masked_to: shown.masked_to,
            code_hash: self.hash(scope, &code),
            issued_at: now,
            expires_at: now + chrono::Duration::seconds(ttl as i64),
            device: shown.device,
        };
        let bytes = serde_json::to_vec(&challenge).unwrap_or_default();
        self.eph.delete(&format!("{}:tries", key(scope))).await?;
        self.eph.put(&key(scope), &bytes, secs(ttl)).await?;
        Ok(Ok(code))
    }

    /// Checks an entered code. A right code is taken atomically: of two requests with it,
    /// one gets `Right` and the other `Used`.
    pub async fn verify(&self, scope: &str, input: &str, now: DateTime<Utc>) -> EphResult<Verdict> {
        let Some(code) = normalize(input) else {
            return Ok(Verdict::Malformed);
        };
        let hash = self.hash(scope, &code);
        let spent_key = format!("{}:spent", key(scope));
        let Some(challenge) = self.current(scope).await?.filter(|c| c.expires_at > now) else {
            let spent = self.eph.get(&spent_key).await?;
            let used = spent.is_some_and(|s| keys::constant_time_eq(&s, hash.as_bytes()));
            return Ok(if used {
                Verdict::Used
            } else {
                Verdict::Expired
            });
        };
        let tries_key = format!("{}:tries", key(scope));
        let ttl = secs(self.cfg.code_ttl_secs);
        let n = self.eph.incr(&tries_key, ttl).await?;
        if n > self.cfg.max_attempts {
            self.eph.delete(&key(scope)).await?;
            return Ok(Verdict::Exhausted);
        }
        if !keys::constant_time_eq(hash.as_bytes(), challenge.code_hash.as_bytes()) {
            if n >= self.cfg.max_attempts {
                self.eph.delete(&key(scope)).await?;
                return Ok(Verdict::Exhausted);
            }
            return Ok(Verdict::Wrong {
                left: self.cfg.max_attempts - n,
            });
        }
        if self.eph.take(&key(scope)).await?.is_none() {
            return Ok(Verdict::Used);
        }
        self.eph.put(&spent_key, hash.as_bytes(), ttl).await?;
        self.eph.delete(&tries_key).await?;
        Ok(Verdict::Right)
    }

    /// Voids any code of `scope`.
    pub async fn discard(&self, scope: &str) -> EphResult<()> {
        self.eph.delete(&key(scope)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock};
    use crate::ephemeral::MemoryEphemeral;

    fn vault() -> keys::Vault {
        keys::Vault::new(
            keys::DataKey::generate().unwrap(),
            vec![],
            keys::DataKey::generate().unwrap(),
        )
    }

    /// A fixed clock, a memory store on it, the default settings and a vault: what `Codes`
    /// borrows in every test.
    struct Fixture {
        clock: FixedClock,
        eph: MemoryEphemeral,
        cfg: OtpConfig,
        vault: keys::Vault,
    }

    impl Fixture {
        fn new() -> Self {
            let clock = FixedClock::new(Utc::now());
            let eph = MemoryEphemeral::new(std::sync::Arc::new(clock.clone()));
            Fixture {
                clock,
                eph,
                cfg: OtpConfig::default(),
                vault: vault(),
            }
        }

        fn codes(&self) -> Codes<'_> {
            Codes {
                eph: &self.eph,
                cfg: &self.cfg,
                vault: &self.vault,
            }
        }
    }

    #[test]
    fn codes_are_six_digits_and_vary() {
        let a: Vec<String> = (0..20).map(|_| generate().unwrap()).collect();
        assert!(a
            .iter()
            .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit())));
        assert!(a.iter().any(|c| c != &a[0]));
        assert_eq!(normalize(" 123-456 ").as_deref(), Some("123456"));
        assert_eq!(normalize("12345"), None);
        assert_eq!(normalize("12345a"), None);
        assert_eq!(
            normalize("１２３４５６"),
            None,
            "full-width digits are not ASCII"
        );
    }

    #[test]
    fn masks_and_amr() {
        assert_eq!(mask_phone("+79001234567"), "+7 *** ***-45-67");
        assert_eq!(mask_email("ivan@example.ru"), "i***@example.ru");
        assert_eq!(CodeChannel::Sms.amr(), "sms");
        assert_eq!(CodeChannel::Voice.amr(), "tel");
        assert_eq!(CodeChannel::Email.amr(), "otp");
        for c in CodeChannel::ALL {
            assert_eq!(CodeChannel::parse(c.as_str()), Some(c));
        }
        let t = message_text("123456", Purpose::SignIn, "ru", 300);
        assert!(t.contains("123456") && t.contains("5 мин"));
    }

    #[tokio::test]
    async fn right_wrong_exhausted_expired_replayed() {
        let fx = Fixture::new();
        let (clock, codes) = (&fx.clock, fx.codes());
        let now = clock.now();
        let code = codes
            .issue("s", "who", CodeChannel::Sms, "+79001234567", now)
            .await
            .unwrap()
            .unwrap();
        let wrong = if code == "000000" { "111111" } else { "000000" };
        assert_eq!(
            codes.verify("s", "12", now).await.unwrap(),
            Verdict::Malformed
        );
        assert_eq!(
            codes.verify("s", wrong, now).await.unwrap(),
            Verdict::Wrong { left: 2 }
        );
        assert_eq!(codes.verify("s", &code, now).await.unwrap(), Verdict::Right);
        assert_eq!(codes.verify("s", &code, now).await.unwrap(), Verdict::Used);
        assert_eq!(
            codes.verify("t", &code, now).await.unwrap(),
            Verdict::Expired
        );

        // Three wrong codes void it.
        clock.advance(chrono::Duration::seconds(61));
        let now = clock.now();
        let code = codes
            .issue("s", "who", CodeChannel::Sms, "+79001234567", now)
            .await
            .unwrap()
            .unwrap();
        let wrong = if code == "000000" { "111111" } else { "000000" };
        codes.verify("s", wrong, now).await.unwrap();
        codes.verify("s", wrong, now).await.unwrap();
        assert_eq!(
            codes.verify("s", wrong, now).await.unwrap(),
            Verdict::Exhausted
        );
        assert_eq!(
            codes.verify("s", &code, now).await.unwrap(),
            Verdict::Expired
        );

        // Five minutes later the code is gone.
        clock.advance(chrono::Duration::seconds(61));
        let now = clock.now();
        let code = codes
            .issue("s", "who", CodeChannel::Email, "a@b.ru", now)
            .await
            .unwrap()
            .unwrap();
        clock.advance(chrono::Duration::seconds(301));
        assert_eq!(
            codes.verify("s", &code, clock.now()).await.unwrap(),
            Verdict::Expired
        );
    }

    #[tokio::test]
    async fn a_push_code_keeps_its_device_and_shows_its_name() {
        let fx = Fixture::new();
        let (clock, codes) = (&fx.clock, fx.codes());
        let shown = Shown {
            masked_to: "Pixel 8".into(),
            device: Some("dev-1".into()),
        };
        let code = codes
            .issue_shown("p", "who", CodeChannel::Push, shown, clock.now())
            .await
            .unwrap()
            .unwrap();
        let c = codes.current("p").await.unwrap().unwrap();
        assert_eq!(c.channel, CodeChannel::Push);
        assert_eq!(c.masked_to, "Pixel 8");
        assert_eq!(c.device.as_deref(), Some("dev-1"));
        assert_eq!(CodeChannel::Push.amr(), "otp");
        assert_eq!(
            codes.verify("p", &code, clock.now()).await.unwrap(),
            Verdict::Right
        );
        // A challenge stored before push existed still reads (no `device`).
        let old = serde_json::json!({
            "v": 1, "channel": "sms", "masked_to": "***67", "code_hash": "h",
            "issued_at": clock.now(), "expires_at": clock.now(),
        });
        let c: Challenge = serde_json::from_value(old).unwrap();
        assert_eq!(c.device, None);
        assert!(!serde_json::to_string(&c).unwrap().contains("device"));
    }

    #[tokio::test]
    async fn resend_cooldown_and_budget() {
        let fx = Fixture::new();
        let (clock, codes) = (&fx.clock, fx.codes());
        let issue = |scope: &'static str| {
            let now = clock.now();
            let codes = &codes;
            async move {
                codes
                    .issue(scope, "who", CodeChannel::Sms, "+79001234567", now)
                    .await
                    .unwrap()
            }
        };
        assert!(issue("s").await.is_ok());
        clock.advance(chrono::Duration::seconds(20));
        assert_eq!(issue("s").await, Err(Refused::TooSoon { wait_secs: 40 }));
        for _ in 0..4 {
            clock.advance(chrono::Duration::seconds(60));
            assert!(issue("s").await.is_ok());
        }
        clock.advance(chrono::Duration::seconds(60));
        assert_eq!(issue("s").await, Err(Refused::TooMany), "six in an hour");
        clock.advance(chrono::Duration::seconds(3600));
        assert!(issue("s").await.is_ok(), "the window ends");
    }
}
