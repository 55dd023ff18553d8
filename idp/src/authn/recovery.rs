//! Recovery codes: ten one-time codes shown once, stored as keyed hashes (the key is the
//! vault's index key, which is not in the database, so a leaked table does not let anyone
//! try codes offline). A code is 10 characters of a 32-letter alphabet without look-alikes
//! (50 bits), shown as `ABCDE-FGHJK`.

use ring::rand::{SecureRandom, SystemRandom};

/// Codes issued at once.
pub const COUNT: usize = 10;
const LEN: usize = 10;
/// Crockford's base32 alphabet: no I, L, O, U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Ten fresh codes in display form (`ABCDE-FGHJK`).
pub fn generate() -> Option<Vec<String>> {
    let rng = SystemRandom::new();
    (0..COUNT)
        .map(|_| {
            let mut b = [0u8; LEN];
            rng.fill(&mut b).ok()?;
            let s: String = b
                .iter()
                .map(|x| char::from(ALPHABET[usize::from(x & 31)]))
                .collect();
            Some(format!("{}-{}", &s[..5], &s[5..]))
        })
        .collect()
}

/// The canonical form of a typed code (upper case, no separators, look-alikes mapped as
/// Crockford's base32 does), or `None` if it cannot be a code.
pub fn normalize(input: &str) -> Option<String> {
    let mut out = String::with_capacity(LEN);
    for c in input.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            other => other,
        };
        if !ALPHABET.contains(&u8::try_from(c).ok()?) {
            return None;
        }
        out.push(c);
    }
    (out.len() == LEN).then_some(out)
}

/// The stored hash of a normalised code.
pub fn hash(vault: &keys::Vault, normalized: &str) -> String {
    vault.blind_index(&format!("recovery:{normalized}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_distinct_and_normalise() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), COUNT);
        for c in &codes {
            assert_eq!(c.len(), 11);
            assert_eq!(normalize(c).unwrap(), c.replace('-', ""));
        }
        let set: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(set.len(), COUNT);
    }

    #[test]
    fn typing_variants() {
        assert_eq!(normalize("abcde-fghjk").as_deref(), Some("ABCDEFGHJK"));
        assert_eq!(normalize("0O1IL-23456").as_deref(), Some("0011123456"));
        assert_eq!(normalize("ABCDE"), None);
        assert_eq!(normalize("ABCDE-FGHJKX"), None);
        assert_eq!(normalize("ABCDE-FGHJ!"), None);
        assert_eq!(normalize("ABCDE-FGHJУ"), None);
    }
}
