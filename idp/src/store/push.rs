//! A person's push devices: the citizen's mobile app, registered so that one-time sign-in
//! codes can be sent to it ("code in the app"). See `docs/design/push.md`.
//!
//! The device token is what a push service (FCM, APNs, HMS) routes by: whoever holds it can
//! send to the phone, so it is sealed in the database (bound to the row id), looked up only
//! through a keyed blind index, and never printed (`Debug` of [`PushToken`] shows nothing).
//! Removed devices stay as rows with `removed_at` (the history of factors), but are never
//! listed or sent to again.

use std::fmt;

use chrono::{DateTime, Utc};

use super::StoreResult;
use crate::audit::AuditEvent;

/// Longest device token accepted (FCM tokens are ~160 characters, APNs 64 hex digits, HMS
/// ~130; a generous bound, so a body cannot fill the database).
pub const MAX_TOKEN_LEN: usize = 4096;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Live devices one person may have; registering one more is refused.
pub const MAX_DEVICES: usize = 10;

/// The push service of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushPlatform {
    /// Firebase Cloud Messaging.
    Android,
    /// Apple Push Notification service.
    Ios,
    /// Huawei Push Kit (HMS), for phones without Google services.
    Huawei,
}

impl PushPlatform {
    pub const ALL: [PushPlatform; 3] = [Self::Android, Self::Ios, Self::Huawei];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Android => "android",
            Self::Ios => "ios",
            Self::Huawei => "huawei",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// A device token: a bearer-like address of one app installation. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct PushToken(String);

impl PushToken {
    /// A token as sent by the app: printable ASCII without spaces, 1..=[`MAX_TOKEN_LEN`]
    /// bytes (every push service's tokens are base64, hex or similar).
    pub fn parse(raw: &str) -> Option<PushToken> {
        let ok = !raw.is_empty()
            && raw.len() <= MAX_TOKEN_LEN
            && raw.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| PushToken(raw.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PushToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PushToken(***)")
    }
}

/// A display name as typed: trimmed, control characters dropped, at most
/// [`MAX_NAME_CHARS`] characters; `None` if nothing is left.
pub fn clean_name(raw: &str) -> Option<String> {
    let name: String = raw
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let name = name.trim().to_string();
    (!name.is_empty()).then_some(name)
}

/// A registered device.
#[derive(Debug, Clone, PartialEq)]
pub struct PushDevice {
    pub id: String,
    pub subject_id: String,
    pub platform: PushPlatform,
    pub token: PushToken,
    pub name: String,
    pub created_at: DateTime<Utc>,
    /// When a code sent to it was last entered.
    pub last_used_at: Option<DateTime<Utc>>,
    pub removed_at: Option<DateTime<Utc>>,
}

impl PushDevice {
    /// Where a code goes when a person has several devices: the one used last, else the
    /// newest.
    pub fn preferred(devices: &[PushDevice]) -> Option<&PushDevice> {
        devices
            .iter()
            .filter(|d| d.removed_at.is_none())
            .max_by_key(|d| (d.last_used_at, d.created_at))
    }
}

/// What [`PushDeviceStore::add_push_device`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushAdded {
    /// Registered; this many earlier registrations of the same token (of anyone) were
    /// removed, since a token reaches one installation only.
    Added { replaced: usize },
    /// The person already has [`MAX_DEVICES`] devices.
    TooMany,
}

/// Push devices of people.
pub trait PushDeviceStore {
    /// Registers `d` with `event` in one transaction. Live registrations of the same token
    /// are removed first (re-registration, or a phone that changed hands: codes of the
    /// previous owner must not reach it); then the person's live devices are counted.
    fn add_push_device(
        &self,
        d: &PushDevice,
        now: DateTime<Utc>,
        event: &AuditEvent,
    ) -> StoreResult<PushAdded>;
    /// The person's live devices, oldest first, tokens opened.
    fn list_push_devices(&self, subject_id: &str) -> StoreResult<Vec<PushDevice>>;
    /// Marks a live device of `subject_id` removed, with `event`; false if there was none.
    fn remove_push_device(
        &self,
        subject_id: &str,
        id: &str,
        now: DateTime<Utc>,
        event: &AuditEvent,
    ) -> StoreResult<bool>;
    /// Records that a code sent to the device was entered.
    fn touch_push_device(&self, id: &str, now: DateTime<Utc>) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_names_and_platforms_are_checked() {
        assert!(PushToken::parse("fcm:APA91b-_abc").is_some());
        assert!(PushToken::parse("").is_none());
        assert!(PushToken::parse("has space").is_none());
        assert!(PushToken::parse("кириллица").is_none());
        assert!(PushToken::parse(&"a".repeat(MAX_TOKEN_LEN + 1)).is_none());
        let t = PushToken::parse("secret-token").unwrap();
        assert!(
            !format!("{t:?}").contains("secret"),
            "Debug hides the token"
        );
        assert_eq!(clean_name("  Pixel 8\n "), Some("Pixel 8".into()));
        assert_eq!(clean_name(" \t"), None);
        assert_eq!(clean_name(&"я".repeat(100)).unwrap().chars().count(), 64);
        for p in PushPlatform::ALL {
            assert_eq!(PushPlatform::parse(p.as_str()), Some(p));
        }
        assert_eq!(PushPlatform::parse("windows"), None);
    }

    #[test]
    fn the_last_used_device_is_preferred() {
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let dev = |id: &str, created: i64, used: Option<i64>| PushDevice {
            id: id.into(),
            subject_id: "s".into(),
            platform: PushPlatform::Android,
            token: PushToken::parse(id).unwrap(),
            name: id.into(),
            created_at: t + chrono::Duration::seconds(created),
            last_used_at: used.map(|u| t + chrono::Duration::seconds(u)),
            removed_at: None,
        };
        let a = dev("a", 0, Some(100));
        let b = dev("b", 50, None);
        assert_eq!(
            PushDevice::preferred(&[a.clone(), b.clone()]).unwrap().id,
            "a"
        );
        let c = dev("c", 10, None);
        assert_eq!(
            PushDevice::preferred(&[b.clone(), c]).unwrap().id,
            "b",
            "newest"
        );
        assert!(PushDevice::preferred(&[]).is_none());
    }
}
