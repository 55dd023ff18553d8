//! The identity submission that raises a simplified account to standard, and its
//! validators (each takes `today` where dates matter).

use std::fmt;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::{Field, PersonError};
use crate::domain::identifier::{Inn, InnKind, Snils};

/// What a citizen types to raise a simplified account to standard.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityForm {
    pub family_name: String,
    pub given_name: String,
    pub middle_name: String,
    pub birth_date: String,
    pub birth_place: String,
    pub snils: String,
    pub passport_series: String,
    pub passport_number: String,
    pub passport_issue_date: String,
    pub passport_issued_by: String,
    pub passport_division_code: String,
}

/// A validated submission: what the registry is asked about. Sealed when stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaim {
    pub family_name: String,
    pub given_name: String,
    pub middle_name: Option<String>,
    pub birth_date: NaiveDate,
    pub birth_place: String,
    /// 11 digits.
    pub snils: String,
    /// 4 digits.
    pub passport_series: String,
    /// 6 digits.
    pub passport_number: String,
    pub passport_issue_date: NaiveDate,
    pub passport_issued_by: String,
    /// `NNN-NNN`.
    pub passport_division_code: String,
}

impl fmt::Debug for IdentityClaim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdentityClaim(..)")
    }
}

const MAX_TEXT: usize = 200;

/// A date as `YYYY-MM-DD` or `DD.MM.YYYY` (the Russian form).
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    let s = raw.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%d.%m.%Y"))
        .ok()
}

/// Free text: trimmed, at most [`MAX_TEXT`] characters, no control characters; `None` if empty.
fn text(raw: &str, field: Field) -> Result<Option<String>, PersonError> {
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t.chars().count() > MAX_TEXT || t.chars().any(char::is_control) {
        return Err(PersonError::TooLong(field));
    }
    Ok(Some(t.to_string()))
}

/// Free text that must be given.
fn required_text(raw: &str, field: Field) -> Result<String, PersonError> {
    text(raw, field)?.ok_or(PersonError::Missing(field))
}

/// A date that must be given: `Missing` when empty, `BadDate` when not a date.
fn required_date(raw: &str, field: Field) -> Result<NaiveDate, PersonError> {
    match parse_date(raw) {
        Some(d) => Ok(d),
        None if raw.trim().is_empty() => Err(PersonError::Missing(field)),
        None => Err(PersonError::BadDate(field)),
    }
}

/// Exactly `len` digits, whitespace between them ignored; `err` otherwise.
fn fixed_digits(raw: &str, len: usize, err: PersonError) -> Result<String, PersonError> {
    let s: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    if s.len() == len && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s)
    } else {
        Err(err)
    }
}

/// Birth date: not in the future, not before 1900.
fn check_birth_date(birth: NaiveDate, today: NaiveDate) -> Result<NaiveDate, PersonError> {
    if birth > today || birth.year() < 1900 {
        return Err(PersonError::BirthDateOutOfRange);
    }
    Ok(birth)
}

/// SNILS: 11 digits with a valid check number (`112-233-445 95` accepted).
fn check_snils(raw: &str) -> Result<String, PersonError> {
    match Snils::parse(raw) {
        Ok(s) => Ok(s.as_str().to_string()),
        Err(_) if raw.trim().is_empty() => Err(PersonError::Missing(Field::Snils)),
        Err(_) => Err(PersonError::SnilsInvalid),
    }
}

/// Passport series: 4 digits (spaces allowed between: `45 08`).
pub fn check_passport_series(raw: &str) -> Result<String, PersonError> {
    fixed_digits(raw, 4, PersonError::PassportSeries)
}

/// Passport number: 6 digits.
pub fn check_passport_number(raw: &str) -> Result<String, PersonError> {
    fixed_digits(raw, 6, PersonError::PassportNumber)
}

/// Division code of the issuing office: `NNN-NNN` (also accepted as 6 bare digits).
pub fn check_division_code(raw: &str) -> Result<String, PersonError> {
    let s = raw.trim();
    let b = s.as_bytes();
    let ok_dashed =
        b.len() == 7 && b[3] == b'-' && b[..3].iter().chain(&b[4..]).all(u8::is_ascii_digit);
    if ok_dashed {
        return Ok(s.to_string());
    }
    if b.len() == 6 && b.iter().all(u8::is_ascii_digit) {
        return Ok(format!("{}-{}", &s[..3], &s[3..]));
    }
    Err(PersonError::DivisionCode)
}

/// Issue date: on or after the 14th birthday, not in the future.
pub fn check_issue_date(
    issue: NaiveDate,
    birth: NaiveDate,
    today: NaiveDate,
) -> Result<(), PersonError> {
    if issue > today {
        return Err(PersonError::IssuedInFuture);
    }
    let fourteenth = birth
        .with_year(birth.year() + 14)
        // 29 February: the 14th birthday is 1 March in a common year.
        .or_else(|| NaiveDate::from_ymd_opt(birth.year() + 14, 3, 1))
        .ok_or(PersonError::BirthDateOutOfRange)?;
    if issue < fourteenth {
        return Err(PersonError::IssuedBefore14);
    }
    Ok(())
}

/// A person's INN (12 digits, FNS check digits).
pub fn check_person_inn(raw: &str) -> Result<String, PersonError> {
    match Inn::parse(raw) {
        Ok(i) if i.kind() == InnKind::Person => Ok(i.as_str().to_string()),
        _ => Err(PersonError::InnInvalid),
    }
}

impl IdentityForm {
    /// Every field checked; the first error in form order is returned so the page can point
    /// at one field (all errors: [`IdentityForm::errors`]).
    pub fn validate(&self, today: NaiveDate) -> Result<IdentityClaim, PersonError> {
        self.check(today).map_err(|mut v| v.remove(0))
    }

    /// All the problems of the form, in form order.
    pub fn errors(&self, today: NaiveDate) -> Vec<PersonError> {
        self.check(today).err().unwrap_or_default()
    }

    fn check(&self, today: NaiveDate) -> Result<IdentityClaim, Vec<PersonError>> {
        fn keep<T>(errs: &mut Vec<PersonError>, r: Result<T, PersonError>) -> Option<T> {
            match r {
                Ok(v) => Some(v),
                Err(e) => {
                    errs.push(e);
                    None
                }
            }
        }
        let mut errs = Vec::new();
        let e = &mut errs;
        let family_name = keep(e, required_text(&self.family_name, Field::FamilyName));
        let given_name = keep(e, required_text(&self.given_name, Field::GivenName));
        let middle_name = keep(e, text(&self.middle_name, Field::MiddleName)).flatten();
        let birth_date = keep(
            e,
            required_date(&self.birth_date, Field::BirthDate)
                .and_then(|d| check_birth_date(d, today)),
        );
        let birth_place = keep(e, required_text(&self.birth_place, Field::BirthPlace));
        let snils = keep(e, check_snils(&self.snils));
        let series = keep(e, check_passport_series(&self.passport_series));
        let number = keep(e, check_passport_number(&self.passport_number));
        let issue = keep(
            e,
            required_date(&self.passport_issue_date, Field::PassportIssueDate),
        );
        let issued_by = keep(
            e,
            required_text(&self.passport_issued_by, Field::PassportIssuedBy),
        );
        let division = keep(e, check_division_code(&self.passport_division_code));
        if let (Some(i), Some(b)) = (issue, birth_date) {
            keep(e, check_issue_date(i, b, today));
        } else if let Some(i) = issue {
            if i > today {
                e.push(PersonError::IssuedInFuture);
            }
        }
        match (
            family_name,
            given_name,
            birth_date,
            birth_place,
            snils,
            series,
            number,
            issue,
            issued_by,
            division,
        ) {
            (
                Some(family_name),
                Some(given_name),
                Some(birth_date),
                Some(birth_place),
                Some(snils),
                Some(passport_series),
                Some(passport_number),
                Some(passport_issue_date),
                Some(passport_issued_by),
                Some(passport_division_code),
            ) if errs.is_empty() => Ok(IdentityClaim {
                family_name,
                given_name,
                middle_name,
                birth_date,
                birth_place,
                snils,
                passport_series,
                passport_number,
                passport_issue_date,
                passport_issued_by,
                passport_division_code,
            }),
            _ => Err(errs),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(s: &str) -> NaiveDate {
        parse_date(s).unwrap()
    }

    fn form() -> IdentityForm {
        IdentityForm {
            family_name: "Петров".into(),
            given_name: "Иван".into(),
            middle_name: "Сергеевич".into(),
            birth_date: "17.04.1980".into(),
            birth_place: "г. Москва".into(),
            snils: "112-233-445 95".into(),
            passport_series: "45 08".into(),
            passport_number: "123456".into(),
            passport_issue_date: "2001-05-20".into(),
            passport_issued_by: "ОВД Тверского района г. Москвы".into(),
            passport_division_code: "770001".into(),
        }
    }

    #[test]
    fn a_good_form_validates_and_normalises() {
        let c = form().validate(d("2026-11-23")).unwrap();
        assert_eq!(c.snils, "11223344595");
        assert_eq!(c.passport_series, "4508");
        assert_eq!(c.passport_division_code, "770-001");
        assert_eq!(c.birth_date, d("1980-04-17"));
        assert_eq!(c.middle_name.as_deref(), Some("Сергеевич"));
    }

    #[test]
    fn each_bad_field_has_its_own_error() {
        let today = d("2026-11-23");
        type Case = (fn(&mut IdentityForm), PersonError);
        let cases: Vec<Case> = vec![
            (
                |f| f.snils = "112-233-445 96".into(),
                PersonError::SnilsInvalid,
            ),
            (|f| f.snils = "".into(), PersonError::Missing(Field::Snils)),
            (
                |f| f.passport_series = "450".into(),
                PersonError::PassportSeries,
            ),
            (
                |f| f.passport_series = "45a8".into(),
                PersonError::PassportSeries,
            ),
            (
                |f| f.passport_number = "12345".into(),
                PersonError::PassportNumber,
            ),
            (
                |f| f.passport_division_code = "77-0001".into(),
                PersonError::DivisionCode,
            ),
            (
                |f| f.passport_issue_date = "2030-01-01".into(),
                PersonError::IssuedInFuture,
            ),
            (
                |f| f.passport_issue_date = "1994-04-16".into(),
                PersonError::IssuedBefore14,
            ),
            (
                |f| f.passport_issue_date = "31.02.2001".into(),
                PersonError::BadDate(Field::PassportIssueDate),
            ),
            (
                |f| f.birth_date = "2027-01-01".into(),
                PersonError::BirthDateOutOfRange,
            ),
            (
                |f| f.family_name = " ".into(),
                PersonError::Missing(Field::FamilyName),
            ),
            (
                |f| f.birth_place = "x".repeat(201),
                PersonError::TooLong(Field::BirthPlace),
            ),
        ];
        for (change, want) in cases {
            let mut f = form();
            change(&mut f);
            assert_eq!(f.validate(today).unwrap_err(), want, "{want:?}");
        }
    }

    #[test]
    fn issue_date_on_the_fourteenth_birthday_is_accepted() {
        let today = d("2026-11-23");
        assert!(check_issue_date(d("1994-04-17"), d("1980-04-17"), today).is_ok());
        assert_eq!(
            check_issue_date(d("1994-04-16"), d("1980-04-17"), today),
            Err(PersonError::IssuedBefore14)
        );
        // Born on 29 February: the 14th birthday falls on 1 March.
        assert!(check_issue_date(d("2018-03-01"), d("2004-02-29"), today).is_ok());
        assert!(check_issue_date(d("2018-02-28"), d("2004-02-29"), today).is_err());
    }

    #[test]
    fn several_errors_are_listed_in_form_order() {
        let mut f = form();
        f.snils = "1".into();
        f.passport_number = "x".into();
        let errs = f.errors(d("2026-11-23"));
        assert_eq!(
            errs,
            vec![PersonError::SnilsInvalid, PersonError::PassportNumber]
        );
    }

    #[test]
    fn debug_shows_no_personal_numbers() {
        let c = form().validate(d("2026-11-23")).unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("11223344595") && !s.contains("123456"), "{s}");
    }
}
