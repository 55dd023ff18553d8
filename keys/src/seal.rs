//! Envelope encryption of secrets at rest (AES-256-GCM) and keyed blind indexes.
//!
//! # Sealed format (version 1)
//!
//! ```text
//! offset  size  content
//! 0       1     version = 0x01
//! 1       1     L = length of the master key id (1..=64)
//! 2       L     master key id, ASCII [A-Za-z0-9._-]
//! 2+L     12    random nonce
//! 14+L    n+16  AES-256-GCM ciphertext of the n plaintext bytes, then the 16-byte tag
//! ```
//!
//! The GCM additional data is the 2+L header bytes followed by the caller's `aad`, so the
//! version and key id are authenticated too, and a ciphertext moved to another context
//! (table, column, row id) fails to open. Nonces are random; with 96-bit random nonces a key
//! should seal fewer than 2^32 values, so rotate the master key well before that.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;
use ring::rand::SystemRandom;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::secret::SecretBytes;
use crate::util::{b64d, b64e, random_bytes};
use crate::KeyError;

const VERSION: u8 = 1;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
const MAX_ID_LEN: usize = 64;
/// Label of the HMAC that derives the blind-index key from a master key.
const BLIND_INDEX_LABEL: &[u8] = b"propusk/blind-index/v1";

/// A 256-bit master key with a short public id, for [`Sealer`].
///
/// Zeroized on drop; `Debug` prints only the id. The text form (see
/// [`MasterKey::from_encoded`]) is what a key file or secret store holds.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    id: String,
    key: [u8; KEY_LEN],
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

impl MasterKey {
    /// A fresh random key with a random 8-character id.
    pub fn generate() -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let id = b64e(&random_bytes(&rng, 6)?);
        let bytes = Zeroizing::new(random_bytes(&rng, KEY_LEN)?);
        Self::from_parts(&id, &bytes)
    }

    /// A key from its id (1 to 64 characters of `A-Z a-z 0-9 . _ -`) and exactly 32 bytes.
    pub fn from_parts(id: &str, key: &[u8]) -> Result<Self, KeyError> {
        if !valid_id(id) {
            return Err(KeyError::BadMasterKey(
                "id must be 1-64 characters of A-Z a-z 0-9 . _ -",
            ));
        }
        let key: [u8; KEY_LEN] = key
            .try_into()
            .map_err(|_| KeyError::BadMasterKey("key must be 32 bytes"))?;
        Ok(MasterKey {
            id: id.to_owned(),
            key,
        })
    }

    /// Parses the text form `<key_id>:<base64url of 32 bytes>` (no padding), ignoring
    /// surrounding whitespace, e.g. `2024a:3q2-7w...`.
    pub fn from_encoded(s: &str) -> Result<Self, KeyError> {
        let (id, b64) = s
            .trim()
            .split_once(':')
            .ok_or(KeyError::BadMasterKey("expected <key_id>:<base64url key>"))?;
        let bytes = Zeroizing::new(b64d(b64).ok_or(KeyError::BadMasterKey(
            "key is not base64url without padding",
        ))?);
        Self::from_parts(id, &bytes)
    }

    /// The text form `<key_id>:<base64url key>`, for writing a key file. It is the secret
    /// itself: write it with restrictive permissions and never log it.
    pub fn encode(&self) -> String {
        format!("{}:{}", self.id, b64e(&self.key))
    }

    /// The raw key bytes, for wrapping under another key.
    pub(crate) fn raw(&self) -> &[u8] {
        &self.key
    }

    /// The key id (not secret), recorded in every value sealed with this key.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn aead_key(&self) -> Result<LessSafeKey, KeyError> {
        UnboundKey::new(&AES_256_GCM, &self.key)
            .map(LessSafeKey::new)
            .map_err(|_| KeyError::Seal)
    }

    fn blind_index_key(&self) -> hmac::Key {
        let master = hmac::Key::new(hmac::HMAC_SHA256, &self.key);
        let derived = Zeroizing::new(hmac::sign(&master, BLIND_INDEX_LABEL).as_ref().to_vec());
        hmac::Key::new(hmac::HMAC_SHA256, &derived)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Seals and opens secrets with the current [`MasterKey`]; older master keys still open what
/// they sealed (rotation: make the new key current, keep the old one in `older` until every
/// value has been resealed, see [`Sealer::needs_reseal`]). `Debug` prints key ids only.
pub struct Sealer {
    current: MasterKey,
    older: Vec<MasterKey>,
    rng: SystemRandom,
}

impl Sealer {
    /// A sealer that seals with `current` and opens with `current` or any of `older`.
    pub fn new(current: MasterKey, older: Vec<MasterKey>) -> Self {
        Sealer {
            current,
            older,
            rng: SystemRandom::new(),
        }
    }

    /// The id of the master key new values are sealed with.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    fn key_by_id(&self, id: &str) -> Option<&MasterKey> {
        std::iter::once(&self.current)
            .chain(self.older.iter())
            .find(|k| k.id == id)
    }

    /// Encrypts `plaintext` with AES-256-GCM under the current master key (format in the
    /// module docs). `aad` binds the result to its context, e.g. `b"users.snils:<user id>"`;
    /// the same `aad` must be given to [`Sealer::open`].
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        let id = self.current.id.as_bytes();
        let id_len = u8::try_from(id.len()).map_err(|_| KeyError::Seal)?;
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes(&self.rng, NONCE_LEN)?
            .try_into()
            .map_err(|_| KeyError::Seal)?;

        let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
        out.push(VERSION);
        out.push(id_len);
        out.extend_from_slice(id);
        let header_len = out.len();
        let full_aad = [&out[..header_len], aad].concat();

        let mut buf = Zeroizing::new(plaintext.to_vec());
        self.current
            .aead_key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(&full_aad[..]),
                &mut *buf,
            )
            .map_err(|_| KeyError::Seal)?;
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts a value made by [`Sealer::seal`] with the same `aad`.
    ///
    /// Fails with [`KeyError::UnknownMasterKey`] if the value names a master key id this
    /// sealer does not hold, and with [`KeyError::Open`] if it is malformed, tampered with,
    /// or `aad` differs.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, KeyError> {
        let (header, id) = parse_header(sealed).ok_or(KeyError::Open)?;
        let rest = &sealed[header.len()..];
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(KeyError::Open);
        }
        let key = self
            .key_by_id(id)
            .ok_or_else(|| KeyError::UnknownMasterKey(id.to_owned()))?;
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Open)?;
        let full_aad = [header, aad].concat();

        let mut buf = Zeroizing::new(ciphertext.to_vec());
        let plain_len = key
            .aead_key()
            .map_err(|_| KeyError::Open)?
            .open_in_place(nonce, Aad::from(&full_aad[..]), &mut buf)
            .map_err(|_| KeyError::Open)?
            .len();
        buf.truncate(plain_len);
        Ok(SecretBytes::new(std::mem::take(&mut *buf)))
    }

    /// The master key id a sealed value names, if the value is well-formed enough to say.
    pub fn sealed_key_id(sealed: &[u8]) -> Option<&str> {
        parse_header(sealed).map(|(_, id)| id)
    }

    /// True when `sealed` was not sealed with the current master key (or is unreadable), so
    /// a rotation job should open and seal it again.
    pub fn needs_reseal(&self, sealed: &[u8]) -> bool {
        Self::sealed_key_id(sealed) != Some(self.current.id())
    }

    /// A keyed blind index of `value` for equality lookups of sealed data: HMAC-SHA256 under
    /// a key derived from the current master key (HMAC with the label
    /// `propusk/blind-index/v1`), base64url, 43 characters.
    ///
    /// Deterministic for a given master key, and different across master keys. Normalise
    /// `value` first (e.g. E.164 phone, SNILS digits only), and prefix a purpose label
    /// (`"snils:"`) if indexes of different columns must not be comparable. After a master
    /// key rotation look up with [`Sealer::blind_indexes`] until every row is re-indexed.
    pub fn blind_index(&self, value: &str) -> String {
        blind_index_with(&self.current, value)
    }

    /// The blind index of `value` under the current key, then under each older key, for
    /// lookups while a rotation is in progress.
    pub fn blind_indexes(&self, value: &str) -> Vec<String> {
        std::iter::once(&self.current)
            .chain(self.older.iter())
            .map(|k| blind_index_with(k, value))
            .collect()
    }
}

pub(crate) fn blind_index_with(key: &MasterKey, value: &str) -> String {
    b64e(hmac::sign(&key.blind_index_key(), value.as_bytes()).as_ref())
}

/// Splits off the header (`version, L, id`); `None` if it is malformed.
fn parse_header(sealed: &[u8]) -> Option<(&[u8], &str)> {
    let (&version, rest) = sealed.split_first()?;
    let (&id_len, rest) = rest.split_first()?;
    let id_len = usize::from(id_len);
    if version != VERSION || id_len == 0 || rest.len() < id_len {
        return None;
    }
    let id = std::str::from_utf8(&rest[..id_len]).ok()?;
    Some((&sealed[..2 + id_len], id))
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let older: Vec<&str> = self.older.iter().map(MasterKey::id).collect();
        f.debug_struct("Sealer")
            .field("current", &self.current.id)
            .field("older", &older)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(id: &str, byte: u8) -> MasterKey {
        MasterKey::from_parts(id, &[byte; 32]).unwrap()
    }

    #[test]
    fn round_trip() {
        let s = Sealer::new(MasterKey::generate().unwrap(), vec![]);
        for pt in [&b""[..], b"x", b"123-456-789 01", &[7u8; 1000]] {
            let sealed = s.seal(pt, b"users.snils:42").unwrap();
            assert_eq!(sealed.len(), 2 + 8 + 12 + pt.len() + 16);
            assert_eq!(sealed[0], 1);
            assert_eq!(Sealer::sealed_key_id(&sealed), Some(s.current_id()));
            assert!(!s.needs_reseal(&sealed));
            let opened = s.open(&sealed, b"users.snils:42").unwrap();
            assert_eq!(opened.expose(), pt);
        }
        // Random nonces: sealing twice differs.
        assert_ne!(s.seal(b"a", b"").unwrap(), s.seal(b"a", b"").unwrap());
    }

    #[test]
    fn wrong_aad_fails() {
        let s = Sealer::new(mk("k1", 1), vec![]);
        let sealed = s.seal(b"secret", b"users.phone:1").unwrap();
        assert!(matches!(
            s.open(&sealed, b"users.phone:2"),
            Err(KeyError::Open)
        ));
        assert!(matches!(s.open(&sealed, b""), Err(KeyError::Open)));
    }

    #[test]
    fn every_corrupted_byte_fails() {
        let s = Sealer::new(mk("k1", 1), vec![mk("k2", 2)]);
        let sealed = s.seal(b"secret", b"ctx").unwrap();
        for i in 0..sealed.len() {
            let mut c = sealed.clone();
            c[i] ^= 0x01;
            assert!(s.open(&c, b"ctx").is_err(), "byte {i}");
        }
        for n in 0..sealed.len() {
            assert!(s.open(&sealed[..n], b"ctx").is_err(), "truncated to {n}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(matches!(s.open(&longer, b"ctx"), Err(KeyError::Open)));
        assert!(matches!(s.open(b"", b"ctx"), Err(KeyError::Open)));
    }

    #[test]
    fn wrong_key_bytes_with_same_id_fails() {
        let a = Sealer::new(mk("k1", 1), vec![]);
        let b = Sealer::new(mk("k1", 9), vec![]);
        let sealed = a.seal(b"secret", b"").unwrap();
        assert!(matches!(b.open(&sealed, b""), Err(KeyError::Open)));
    }

    #[test]
    fn unknown_key_id_is_named() {
        let a = Sealer::new(mk("old", 1), vec![]);
        let b = Sealer::new(mk("new", 2), vec![]);
        let sealed = a.seal(b"secret", b"").unwrap();
        assert_eq!(
            b.open(&sealed, b"").unwrap_err(),
            KeyError::UnknownMasterKey("old".into())
        );
    }

    #[test]
    fn older_key_still_opens_after_rotation() {
        let before = Sealer::new(mk("2024", 1), vec![]);
        let sealed = before.seal(b"totp-secret", b"t").unwrap();
        let after = Sealer::new(mk("2025", 2), vec![mk("2024", 1)]);
        assert!(after.needs_reseal(&sealed));
        assert_eq!(after.open(&sealed, b"t").unwrap().expose(), b"totp-secret");
        let resealed = after.seal(b"totp-secret", b"t").unwrap();
        assert!(!after.needs_reseal(&resealed));
        assert_eq!(Sealer::sealed_key_id(&resealed), Some("2025"));
    }

    #[test]
    fn blind_index_deterministic_and_keyed() {
        let a = Sealer::new(mk("a", 1), vec![]);
        let a2 = Sealer::new(mk("a", 1), vec![]);
        let b = Sealer::new(mk("b", 2), vec![mk("a", 1)]);
        let ia = a.blind_index("+79991234567");
        assert_eq!(ia.len(), 43);
        assert_eq!(ia, a.blind_index("+79991234567"));
        assert_eq!(ia, a2.blind_index("+79991234567"));
        assert_ne!(ia, a.blind_index("+79991234568"));
        assert_ne!(ia, b.blind_index("+79991234567"));
        assert_eq!(b.blind_indexes("+79991234567")[1], ia);
        assert_eq!(b.blind_indexes("+79991234567").len(), 2);
    }

    #[test]
    fn master_key_text_form() {
        let k = MasterKey::generate().unwrap();
        assert_eq!(k.id().len(), 8);
        let text = k.encode();
        let k2 = MasterKey::from_encoded(&format!("  {text}\n")).unwrap();
        assert_eq!(k2.id(), k.id());
        assert_eq!(k2.encode(), text);
        // Same key: opens what the other sealed.
        let sealed = Sealer::new(k, vec![]).seal(b"x", b"").unwrap();
        assert_eq!(
            Sealer::new(k2, vec![]).open(&sealed, b"").unwrap().expose(),
            b"x"
        );

        let key32 = crate::util::b64e(&[5u8; 32]);
        assert!(MasterKey::from_encoded(&format!("k1:{key32}")).is_ok());
        for bad in [
            String::new(),
            key32.clone(),
            format!(":{key32}"),
            format!("k 1:{key32}"),
            format!("k:1:{key32}"),
            format!("{}:{key32}", "a".repeat(65)),
            format!("k1:{key32}="),
            format!("k1:{}", crate::util::b64e(&[5u8; 31])),
            format!("k1:{}", crate::util::b64e(&[5u8; 33])),
        ] {
            assert!(
                matches!(
                    MasterKey::from_encoded(&bad),
                    Err(KeyError::BadMasterKey(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let k = MasterKey::from_parts("kid1", &[0xAB; 32]).unwrap();
        let secret_b64 = crate::util::b64e(&[0xAB; 32]);
        let d = format!("{k:?}");
        assert_eq!(d, r#"MasterKey { id: "kid1", .. }"#);
        assert!(!d.contains(&secret_b64) && !d.contains("171"));
        let s = Sealer::new(k, vec![mk("old", 1)]);
        let d = format!("{s:?}");
        assert!(d.contains("kid1") && d.contains("old"));
        assert!(!d.contains(&secret_b64) && !d.contains("171"));
        let opened = s
            .open(&s.seal(b"PASSPORT-4510", b"").unwrap(), b"")
            .unwrap();
        assert_eq!(format!("{opened:?}"), "[redacted]");
    }
}
