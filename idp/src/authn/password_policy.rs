//! The password policy of requirements.md "Passwords": a pure check run when a password is
//! set (registration, `idp users add`, change, recovery), never at sign-in.
//!
//! Rules, each reported as its own [`PolicyViolation`] so a page can list them all at once:
//! at least 8 characters (more if configured; at most 128); upper- and lower-case letters
//! (any script, Cyrillic counts); a digit; a special character (anything that is not a
//! letter, digit, space or control character); no run of 4 or more characters along the
//! alphabet, the digits or a keyboard row or column, forwards or backwards (`abcd`, `4321`,
//! `qwer`, `йцук`, `1qaz`), and no character 4 times in a row (`aaaa`); not containing the
//! person's name (as typed, transliterated, or typed in the other keyboard layout), birth
//! date or phone; not one of the ~100,000 most common leaked passwords (case-insensitive,
//! checked against an embedded Bloom filter, see `scripts/gen-breached-filter.py`).
//!
//! Decisions are in `docs/design/identifiers-and-passwords.md`.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use sha2::{Digest, Sha256};

/// The floor from requirements.md; a configured minimum can only raise it.
pub const MIN_LENGTH: usize = 8;
/// Upper bound, so that a huge input costs nothing to refuse (OWASP ASVS 2.1.2 allows 64+).
pub const MAX_LENGTH: usize = 128;
/// The length the pages recommend.
pub const RECOMMENDED_LENGTH: usize = 12;
/// Length of a forbidden run: `1234`, `aaaa`.
const RUN: usize = 4;
/// Shorter name parts (`Ли`, `Ян`) are not searched for: too many innocent matches.
const MIN_NAME_PART: usize = 3;
/// The trailing digits of a phone number that may not appear in the password.
const PHONE_TAIL: usize = 7;

/// The length to recommend on pages (12).
pub fn recommended_length() -> usize {
    RECOMMENDED_LENGTH
}

/// What the policy knows about the person; every field is optional. `Debug` prints no
/// personal data.
#[derive(Clone, Default)]
pub struct PolicyContext<'a> {
    /// Configured minimum length; anything below [`MIN_LENGTH`] means [`MIN_LENGTH`].
    pub min_length: usize,
    pub given_name: Option<&'a str>,
    pub family_name: Option<&'a str>,
    /// Patronymic.
    pub middle_name: Option<&'a str>,
    pub birthdate: Option<NaiveDate>,
    /// In any spelling (`+7 (912) 345-67-89`); only its digits are used.
    pub phone: Option<&'a str>,
}

impl PolicyContext<'_> {
    /// The minimum length in force.
    pub fn effective_min_length(&self) -> usize {
        self.min_length.max(MIN_LENGTH)
    }
}

impl fmt::Debug for PolicyContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyContext")
            .field("min_length", &self.min_length)
            .field("given_name", &self.given_name.is_some())
            .field("family_name", &self.family_name.is_some())
            .field("middle_name", &self.middle_name.is_some())
            .field("birthdate", &self.birthdate.is_some())
            .field("phone", &self.phone.is_some())
            .finish()
    }
}

/// One broken rule. Carries nothing of the password; [`PolicyViolation::code`] is the key of
/// the page's ru/en text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyViolation {
    TooShort {
        min: usize,
    },
    TooLong {
        max: usize,
    },
    NoLowercase,
    NoUppercase,
    NoDigit,
    NoSpecial,
    /// A run along the alphabet, the digits or the keyboard (`abcd`, `4321`, `qwer`, `йцук`).
    Sequence,
    /// One character 4 times in a row (`aaaa`, `1111`).
    Repeated,
    ContainsName,
    ContainsBirthDate,
    ContainsPhone,
    /// Among the most common leaked passwords.
    Breached,
}

impl PolicyViolation {
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "password.too_short",
            Self::TooLong { .. } => "password.too_long",
            Self::NoLowercase => "password.no_lowercase",
            Self::NoUppercase => "password.no_uppercase",
            Self::NoDigit => "password.no_digit",
            Self::NoSpecial => "password.no_special",
            Self::Sequence => "password.sequence",
            Self::Repeated => "password.repeated",
            Self::ContainsName => "password.contains_name",
            Self::ContainsBirthDate => "password.contains_birthdate",
            Self::ContainsPhone => "password.contains_phone",
            Self::Breached => "password.breached",
        }
    }
}

/// Checks `password` against every rule; `Err` lists the broken ones in a fixed order
/// (length, character classes, runs, personal data, breached).
pub fn check(password: &str, ctx: &PolicyContext<'_>) -> Result<(), Vec<PolicyViolation>> {
    let len = password.chars().count();
    if len > MAX_LENGTH {
        // Nothing else is looked at: refusing must stay cheap whatever is sent.
        return Err(vec![PolicyViolation::TooLong { max: MAX_LENGTH }]);
    }
    let mut v = Vec::new();
    let min = ctx.effective_min_length();
    if len < min {
        v.push(PolicyViolation::TooShort { min });
    }
    let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
    if !has(|c| c.is_lowercase()) {
        v.push(PolicyViolation::NoLowercase);
    }
    if !has(|c| c.is_uppercase()) {
        v.push(PolicyViolation::NoUppercase);
    }
    if !has(|c| c.is_numeric()) {
        v.push(PolicyViolation::NoDigit);
    }
    if !has(is_special) {
        v.push(PolicyViolation::NoSpecial);
    }
    let folded = fold(password);
    let chars: Vec<char> = folded.chars().collect();
    if has_sequence(&chars) {
        v.push(PolicyViolation::Sequence);
    }
    if has_repeat(&chars) {
        v.push(PolicyViolation::Repeated);
    }
    if contains_name(&folded, ctx) {
        v.push(PolicyViolation::ContainsName);
    }
    if ctx.birthdate.is_some_and(|d| contains_date(&folded, d)) {
        v.push(PolicyViolation::ContainsBirthDate);
    }
    if ctx.phone.is_some_and(|p| contains_phone(&folded, p)) {
        v.push(PolicyViolation::ContainsPhone);
    }
    if is_breached(password) {
        v.push(PolicyViolation::Breached);
    }
    if v.is_empty() {
        Ok(())
    } else {
        Err(v)
    }
}

/// A special character: not a letter or digit, not a space, not a control character.
fn is_special(c: &char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace() && !c.is_control()
}

/// Lower case, `ё` as `е`: the form every comparison below works on.
fn fold(s: &str) -> String {
    s.to_lowercase().replace('ё', "е")
}

// ---------------------------------------------------------------------------------------
// Runs
// ---------------------------------------------------------------------------------------

/// Orderings a run may follow, in lower case; each is also checked backwards.
const SEQUENCES: &[&str] = &[
    "abcdefghijklmnopqrstuvwxyz",
    // `ё` is folded to `е` before the check.
    "абвгдежзийклмнопрстуфхцчшщъыьэюя",
    "01234567890",
    // QWERTY rows, plain and shifted.
    "`1234567890-=",
    "~!@#$%^&*()_+",
    "qwertyuiop[]\\",
    "qwertyuiop{}|",
    "asdfghjkl;'",
    "asdfghjkl:\"",
    "zxcvbnm,./",
    "zxcvbnm<>?",
    // ЙЦУКЕН rows (the Russian layout).
    "йцукенгшщзхъ",
    "фывапролджэ",
    "ячсмитьбю.",
    // Number row shifted in the Russian layout.
    "!\"№;%:?*()_+",
    // Columns, top to bottom, both layouts.
    "1qaz",
    "2wsx",
    "3edc",
    "4rfv",
    "5tgb",
    "6yhn",
    "7ujm",
    "8ik,",
    "9ol.",
    "0p;/",
    "1йфя",
    "2цыч",
    "3увс",
    "4кам",
    "5епи",
    "6нрт",
    "7гоь",
    "8шлб",
    "9щдю",
    "0зж.",
];

fn has_sequence(chars: &[char]) -> bool {
    let orders: Vec<Vec<char>> = SEQUENCES.iter().map(|s| s.chars().collect()).collect();
    chars.windows(RUN).any(|w| {
        orders.iter().any(|o| {
            o.windows(RUN)
                .any(|x| x == w || x.iter().rev().eq(w.iter()))
        })
    })
}

fn has_repeat(chars: &[char]) -> bool {
    chars.windows(RUN).any(|w| w.iter().all(|c| *c == w[0]))
}

// ---------------------------------------------------------------------------------------
// Personal data
// ---------------------------------------------------------------------------------------

/// Russian letters in Latin: the passport (ICAO 9303) spelling and the everyday one.
const TRANSLIT: &[(char, &str, &str)] = &[
    ('а', "a", "a"),
    ('б', "b", "b"),
    ('в', "v", "v"),
    ('г', "g", "g"),
    ('д', "d", "d"),
    ('е', "e", "e"),
    ('ж', "zh", "zh"),
    ('з', "z", "z"),
    ('и', "i", "i"),
    ('й', "i", "y"),
    ('к', "k", "k"),
    ('л', "l", "l"),
    ('м', "m", "m"),
    ('н', "n", "n"),
    ('о', "o", "o"),
    ('п', "p", "p"),
    ('р', "r", "r"),
    ('с', "s", "s"),
    ('т', "t", "t"),
    ('у', "u", "u"),
    ('ф', "f", "f"),
    ('х', "kh", "h"),
    ('ц', "ts", "ts"),
    ('ч', "ch", "ch"),
    ('ш', "sh", "sh"),
    ('щ', "shch", "sch"),
    ('ъ', "ie", ""),
    ('ы', "y", "y"),
    ('ь', "", ""),
    ('э', "e", "e"),
    ('ю', "iu", "yu"),
    ('я', "ia", "ya"),
];

/// The same keys in the ЙЦУКЕН and QWERTY layouts: `Иван` typed with the wrong layout on
/// is `bdfy`, `John` is `ощрт`.
const LAYOUT: &[(char, char)] = &[
    ('й', 'q'),
    ('ц', 'w'),
    ('у', 'e'),
    ('к', 'r'),
    ('е', 't'),
    ('н', 'y'),
    ('г', 'u'),
    ('ш', 'i'),
    ('щ', 'o'),
    ('з', 'p'),
    ('х', '['),
    ('ъ', ']'),
    ('ф', 'a'),
    ('ы', 's'),
    ('в', 'd'),
    ('а', 'f'),
    ('п', 'g'),
    ('р', 'h'),
    ('о', 'j'),
    ('л', 'k'),
    ('д', 'l'),
    ('ж', ';'),
    ('э', '\''),
    ('я', 'z'),
    ('ч', 'x'),
    ('с', 'c'),
    ('м', 'v'),
    ('и', 'b'),
    ('т', 'n'),
    ('ь', 'm'),
    ('б', ','),
    ('ю', '.'),
];

fn transliterate(s: &str, passport: bool) -> String {
    s.chars()
        .map(|c| match TRANSLIT.iter().find(|(r, _, _)| *r == c) {
            Some((_, icao, common)) => {
                if passport {
                    (*icao).to_owned()
                } else {
                    (*common).to_owned()
                }
            }
            None => c.to_string(),
        })
        .collect()
}

fn other_layout(s: &str) -> String {
    s.chars()
        .map(|c| {
            LAYOUT
                .iter()
                .find_map(|&(ru, en)| {
                    if ru == c {
                        Some(en)
                    } else if en == c {
                        Some(ru)
                    } else {
                        None
                    }
                })
                .unwrap_or(c)
        })
        .collect()
}

/// Every spelling of every name part (split on spaces and hyphens) of 3+ letters.
fn name_forms(ctx: &PolicyContext<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let names = [ctx.given_name, ctx.family_name, ctx.middle_name];
    for part in names
        .iter()
        .flatten()
        .flat_map(|n| n.split(|c: char| c.is_whitespace() || c == '-'))
    {
        let part = fold(part);
        if part.chars().count() < MIN_NAME_PART {
            continue;
        }
        for form in [
            transliterate(&part, true),
            transliterate(&part, false),
            other_layout(&part),
            part,
        ] {
            if !out.contains(&form) {
                out.push(form);
            }
        }
    }
    out
}

fn contains_name(folded: &str, ctx: &PolicyContext<'_>) -> bool {
    name_forms(ctx).iter().any(|f| folded.contains(f.as_str()))
}

/// `1980`, and the forms without the full year: `170480`, `17.04.80`, `17-04-80`,
/// `17/04/80`, `1704`, `17.04`. Every full-date form (`17041980`, `17.04.1980`,
/// `1980-04-17`, `19800417`) contains the year.
fn date_forms(d: NaiveDate) -> Vec<String> {
    let (y, m, day) = (d.year(), d.month(), d.day());
    let yy = y.rem_euclid(100);
    vec![
        format!("{y:04}"),
        format!("{day:02}{m:02}{yy:02}"),
        format!("{day:02}.{m:02}.{yy:02}"),
        format!("{day:02}-{m:02}-{yy:02}"),
        format!("{day:02}/{m:02}/{yy:02}"),
        format!("{day:02}{m:02}"),
        format!("{day:02}.{m:02}"),
    ]
}

fn contains_date(folded: &str, d: NaiveDate) -> bool {
    date_forms(d).iter().any(|f| folded.contains(f.as_str()))
}

/// The last seven digits of the phone (the subscriber number), in the password with phone
/// punctuation removed: catches `9123456789`, `89123456789` and `345-67-89` alike.
fn contains_phone(folded: &str, phone: &str) -> bool {
    let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
    let Some(tail) = digits.get(digits.len().saturating_sub(PHONE_TAIL)..) else {
        return false;
    };
    if tail.len() < PHONE_TAIL {
        return false;
    }
    let squeezed: String = folded.chars().filter(|c| !" -().+".contains(*c)).collect();
    squeezed.contains(tail)
}

// ---------------------------------------------------------------------------------------
// Breached passwords
// ---------------------------------------------------------------------------------------

/// Bloom filter of the most common leaked passwords, lower-cased; built by
/// `scripts/gen-breached-filter.py`, which documents the source, the format and the hashing.
const BLOOM: &[u8] = include_bytes!("../../data/breached-passwords.bloom");
const BLOOM_MAGIC: &[u8; 8] = b"PBLOOM01";
const BLOOM_HEADER: usize = 24;

const fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut v = 0u64;
    let mut i = 0;
    while i < 8 {
        v |= (b[at + i] as u64) << (8 * i);
        i += 1;
    }
    v
}

const fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut v = 0u32;
    let mut i = 0;
    while i < 4 {
        v |= (b[at + i] as u32) << (8 * i);
        i += 1;
    }
    v
}

/// Bits in the filter (m).
const BLOOM_BITS: u64 = le_u64(BLOOM, 8);
/// Hash functions (k).
const BLOOM_HASHES: u32 = le_u32(BLOOM, 16);
/// Passwords in the filter (n).
#[cfg(test)]
const BLOOM_ENTRIES: u32 = le_u32(BLOOM, 20);

const fn bloom_well_formed() -> bool {
    let mut i = 0;
    while i < BLOOM_MAGIC.len() {
        if BLOOM[i] != BLOOM_MAGIC[i] {
            return false;
        }
        i += 1;
    }
    BLOOM_BITS > 0
        && BLOOM_HASHES > 0
        && BLOOM.len() as u64 == BLOOM_HEADER as u64 + BLOOM_BITS.div_ceil(8)
}

// A damaged data file fails the build, not a sign-up.
const _: () = assert!(
    bloom_well_formed(),
    "idp/data/breached-passwords.bloom is malformed"
);

/// Whether `password` (compared case-insensitively) is among the common leaked passwords.
/// False positives: about 1 in 100,000 (see the generator script).
pub fn is_breached(password: &str) -> bool {
    let digest = Sha256::digest(password.to_lowercase().as_bytes());
    let half = |at: usize| {
        digest
            .get(at..at + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_le_bytes)
            .unwrap_or_default()
    };
    let (h1, h2) = (half(0), half(8) | 1);
    (0..u64::from(BLOOM_HASHES)).all(|i| {
        let bit = h1.wrapping_add(i.wrapping_mul(h2)) % BLOOM_BITS;
        usize::try_from(bit / 8)
            .ok()
            .and_then(|byte| BLOOM.get(BLOOM_HEADER + byte))
            .is_some_and(|b| b >> (bit % 8) & 1 == 1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use PolicyViolation as V;

    fn none() -> PolicyContext<'static> {
        PolicyContext::default()
    }

    fn violations(password: &str, ctx: &PolicyContext<'_>) -> Vec<PolicyViolation> {
        check(password, ctx).err().unwrap_or_default()
    }

    fn ivan() -> PolicyContext<'static> {
        PolicyContext {
            min_length: 8,
            given_name: Some("Иван"),
            family_name: Some("Петров-Водкин"),
            middle_name: Some("Сергеевич"),
            birthdate: NaiveDate::from_ymd_opt(1980, 4, 17),
            phone: Some("+7 (912) 345-67-89"),
        }
    }

    /// Strong passwords pass every rule, with and without a person's data.
    const STRONG: [&str; 6] = [
        "Tr0ub4dor&3",
        "Zh7#kLq2!vRm",
        "Зелёный-Кот-42",
        "kOt.v.Sapogah-9",
        "Ёжик_в_тумане5",
        "Mx9&fPz!",
    ];

    #[test]
    fn password_policy_accepts_strong_passwords() {
        for p in STRONG {
            assert_eq!(check(p, &none()), Ok(()), "{p}");
            assert_eq!(check(p, &ivan()), Ok(()), "{p}");
        }
    }

    #[test]
    fn password_policy_recommended_length() {
        assert_eq!(recommended_length(), 12);
        assert!(recommended_length() > MIN_LENGTH);
    }

    #[test]
    fn password_policy_length() {
        assert_eq!(violations("Mx9&fPz", &none()), [V::TooShort { min: 8 }]);
        assert_eq!(check("Mx9&fPz!", &none()), Ok(()));
        // Length counts characters, not bytes: 8 Cyrillic letters and symbols pass.
        assert_eq!(check("Жук5!кОт", &none()), Ok(()));
        let ten = PolicyContext {
            min_length: 10,
            ..none()
        };
        assert_eq!(violations("Mx9&fPz!", &ten), [V::TooShort { min: 10 }]);
        assert_eq!(check("Mx9&fPz!w7", &ten), Ok(()));
        // A configured minimum below 8 does not lower the floor.
        let six = PolicyContext {
            min_length: 6,
            ..none()
        };
        assert_eq!(six.effective_min_length(), 8);
        assert_eq!(violations("Mx9&fPz", &six), [V::TooShort { min: 8 }]);
        // Too long: refused alone, without running the other checks.
        let long = "Aa1!".repeat(40);
        assert_eq!(violations(&long, &none()), [V::TooLong { max: 128 }]);
        let max = format!("{}{}", "Mx9&fPz!".repeat(15), "Mx9&fPz!");
        assert_eq!(max.chars().count(), 128);
        assert_eq!(check(&max, &none()), Ok(()));
    }

    #[test]
    fn password_policy_character_classes() {
        assert_eq!(violations("MX9&FPZ!", &none()), [V::NoLowercase]);
        assert_eq!(violations("mx9&fpz!", &none()), [V::NoUppercase]);
        assert_eq!(violations("Mxq&fPz!", &none()), [V::NoDigit]);
        assert_eq!(violations("Mx9afPzq", &none()), [V::NoSpecial]);
        // A space is not a special character.
        assert_eq!(violations("Mx9 fPzq", &none()), [V::NoSpecial]);
        // Cyrillic letters count as upper and lower case.
        assert_eq!(check("Жгут9!зеф", &none()), Ok(()));
        assert_eq!(violations("ЖГУТ9!ЗЕФ", &none()), [V::NoLowercase]);
        assert_eq!(violations("жгут9!зеф", &none()), [V::NoUppercase]);
        assert_eq!(
            violations("zzzzzzzz", &none()),
            [
                V::NoUppercase,
                V::NoDigit,
                V::NoSpecial,
                V::Repeated,
                V::Breached
            ]
        );
    }

    #[test]
    fn password_policy_sequences() {
        let runs = [
            "Xq!7qwerT",
            "Xq!7Asdf",
            "Xq!7zxcv",
            "Xq!7poiU", // keyboard rows, both ways
            "Xq!71234",
            "Xq!74321",
            "Xq!67890",
            "Xq!70123", // digits
            "Xq!7abcD",
            "Xq!7DCBA",
            "Xq!7mnop",
            "Xq!7wxyz", // alphabet
            "Xq!7йцук",
            "Xq!7КУЦЙ",
            "Xq!7фыва",
            "Xq!7ячсм", // ЙЦУКЕН rows
            "Xq!7абвг",
            "Xq!7ЬЭЮЯ",
            "Xq!7ёжзи", // Cyrillic alphabet (ё counts as е)
            "Xq!71qaz",
            "Xq!7zaq1",
            "Xq!71йфя", // keyboard columns
            "Xq7!@#$%",
            "Xq7)(*&", // shifted number row
        ];
        for p in runs {
            assert!(violations(p, &none()).contains(&V::Sequence), "{p}");
        }
        // Three in a row, and four that are not in one ordering, are fine.
        for p in [
            "Xq!7abc9", "Xq!7qwe9", "Xq!7123x", "Xq!7abdc", "Xq!7qwrt", "Xq!71357",
        ] {
            assert!(!violations(p, &none()).contains(&V::Sequence), "{p}");
        }
    }

    #[test]
    fn password_policy_repeats() {
        for p in ["Xq!7aaaa", "Xq!71111", "Xq!7!!!!", "Xq!7aAaA", "Xq!7яЯяя"] {
            assert!(violations(p, &none()).contains(&V::Repeated), "{p}");
        }
        for p in ["Xq!7aaa9", "Xq!7aaba", "Mx9&fPz!"] {
            assert!(!violations(p, &none()).contains(&V::Repeated), "{p}");
        }
    }

    #[test]
    fn password_policy_name() {
        let ctx = ivan();
        let with_name = [
            "Иван!2024x",       // as written
            "иВаН!2024x",       // any case
            "Ivan!2024x",       // transliterated
            "bdfy!2024X",       // typed with the English layout on
            "Petrov!24x",       // family name transliterated
            "Водкин!24X",       // each part of a double name
            "Serg!Sergeevich1", // patronymic, passport spelling
        ];
        for p in with_name {
            assert!(violations(p, &ctx).contains(&V::ContainsName), "{p}");
        }
        assert_eq!(check("Иван!2024x", &none()), Ok(()));
        // A Latin name typed with the Russian layout on.
        let john = PolicyContext {
            given_name: Some("John"),
            ..none()
        };
        assert!(violations("ощрт!2024X", &john).contains(&V::ContainsName));
        assert!(violations("JOHN!2024x", &john).contains(&V::ContainsName));
        // Two-letter names are not searched for.
        let li = PolicyContext {
            family_name: Some("Ли"),
            ..none()
        };
        assert_eq!(check("Лиса!2024x", &li), Ok(()));
        // ё and е are the same letter; Алёна -> alena / alyona is not required, alena is.
        let alena = PolicyContext {
            given_name: Some("Алёна"),
            ..none()
        };
        assert!(violations("Алена!2024x", &alena).contains(&V::ContainsName));
        assert!(violations("Alena!2024x", &alena).contains(&V::ContainsName));
    }

    #[test]
    fn password_policy_birth_date() {
        let ctx = ivan();
        let with_date = [
            "Xq!vRm1980",
            "Xq!vRm17041980",
            "Xq!vRm17.04.1980",
            "Xq!vRm1980-04-17",
            "Xq!vRm19800417",
            "Xq!vRm170480",
            "Xq!vRm17.04.80",
            "Xq!vRm1704z",
        ];
        for p in with_date {
            assert!(violations(p, &ctx).contains(&V::ContainsBirthDate), "{p}");
            assert!(!violations(p, &none()).contains(&V::ContainsBirthDate));
        }
        for p in ["Xq!vRm1981", "Xq!vRm1804z", "Xq!vRm0417z"] {
            assert!(!violations(p, &ctx).contains(&V::ContainsBirthDate), "{p}");
        }
    }

    #[test]
    fn password_policy_phone() {
        let ctx = ivan();
        for p in [
            "Xq!v+79123456789",
            "Xq!v89123456789",
            "Xq!v9123456789",
            "Xq!v3456789",
            "Xq!v345-67-89",
        ] {
            assert!(violations(p, &ctx).contains(&V::ContainsPhone), "{p}");
            assert!(!violations(p, &none()).contains(&V::ContainsPhone));
        }
        for p in ["Xq!v912345", "Xq!v456789z"] {
            assert!(!violations(p, &ctx).contains(&V::ContainsPhone), "{p}");
        }
        // A phone too short to mean anything is ignored.
        let short = PolicyContext {
            phone: Some("12-34"),
            ..none()
        };
        assert_eq!(check("Mx9&fPz!1234", &short).err(), Some(vec![V::Sequence]));
    }

    #[test]
    fn password_policy_breached_filter_finds_common_passwords() {
        for p in [
            "password1",
            "qwerty123",
            "123456789",
            "iloveyou",
            "PassWord1",
            "QWERTY123",
            "P@ssw0rd",
            "1q2w3e4r",
        ] {
            assert!(is_breached(p), "{p}");
        }
        for p in STRONG {
            assert!(!is_breached(p), "{p}");
        }
        // The other rules pass, the breached list catches it.
        assert_eq!(violations("P@ssw0rd", &none()), [V::Breached]);
        assert_eq!(violations("g00dPa$$w0rD", &none()), [V::Breached]);
    }

    #[test]
    fn password_policy_breached_filter_false_positive_rate() {
        // Deterministic xorshift64*: 10,000 random 12-character strings.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let alphabet: Vec<char> =
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*-_абвгдеж"
                .chars()
                .collect();
        let trials = 10_000;
        let hits = (0..trials)
            .filter(|_| {
                let s: String = (0..12)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect();
                is_breached(&s)
            })
            .count();
        // Designed for 1e-5 (0.1 expected here); 3 would already be wildly off.
        assert!(hits <= 2, "{hits} false positives in {trials}");
    }

    #[test]
    fn password_policy_breached_filter_parameters() {
        assert!(BLOOM.len() < 1024 * 1024);
        assert_eq!(BLOOM_ENTRIES, 96_518);
        assert_eq!(BLOOM_HASHES, 17);
        assert_eq!(BLOOM_BITS, 2_312_832);
        // Theoretical false-positive rate (1 - e^(-kn/m))^k.
        let (k, n, m) = (
            f64::from(BLOOM_HASHES),
            f64::from(BLOOM_ENTRIES),
            BLOOM_BITS as f64,
        );
        let fp = (1.0 - (-k * n / m).exp()).powf(k);
        assert!(fp < 1.1e-5, "{fp}");
        // Fill ratio near 1/2, as an optimal filter should be.
        let ones: u32 = BLOOM[BLOOM_HEADER..].iter().map(|b| b.count_ones()).sum();
        let ratio = f64::from(ones) / m;
        assert!((0.45..0.55).contains(&ratio), "{ratio}");
    }

    #[test]
    fn password_policy_reports_everything_in_order() {
        assert_eq!(
            violations("ivan1980", &ivan()),
            [
                V::NoUppercase,
                V::NoSpecial,
                V::ContainsName,
                V::ContainsBirthDate
            ]
        );
        assert_eq!(
            violations("qwerty", &none()),
            [
                V::TooShort { min: 8 },
                V::NoUppercase,
                V::NoDigit,
                V::NoSpecial,
                V::Sequence,
                V::Breached
            ]
        );
    }

    #[test]
    fn password_policy_codes_are_distinct() {
        let all = [
            V::TooShort { min: 8 },
            V::TooLong { max: 128 },
            V::NoLowercase,
            V::NoUppercase,
            V::NoDigit,
            V::NoSpecial,
            V::Sequence,
            V::Repeated,
            V::ContainsName,
            V::ContainsBirthDate,
            V::ContainsPhone,
            V::Breached,
        ];
        let mut codes: Vec<&str> = all.iter().map(PolicyViolation::code).collect();
        assert!(codes.iter().all(|c| c.starts_with("password.")));
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn password_policy_context_debug_hides_personal_data() {
        let d = format!("{:?}", ivan());
        for secret in ["Иван", "Петров", "1980", "912", "Сергеевич"] {
            assert!(!d.contains(secret), "{d}");
        }
    }
}
