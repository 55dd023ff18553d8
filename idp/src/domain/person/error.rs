//! Why a submission or a record is refused, and which field is at fault.

/// A specific reason a submission or a record is refused; `code()` keys the ru/en texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PersonError {
    #[error("a required field is empty")]
    Missing(Field),
    #[error("the field is too long")]
    TooLong(Field),
    #[error("SNILS is malformed or its check number is wrong")]
    SnilsInvalid,
    #[error("INN is malformed or its check digits are wrong")]
    InnInvalid,
    #[error("the date is not a valid date (YYYY-MM-DD or DD.MM.YYYY)")]
    BadDate(Field),
    #[error("the birth date is in the future or unreasonably old")]
    BirthDateOutOfRange,
    #[error("the passport series must be 4 digits")]
    PassportSeries,
    #[error("the passport number must be 6 digits")]
    PassportNumber,
    #[error("the division code must be NNN-NNN")]
    DivisionCode,
    #[error("the passport cannot be issued before the 14th birthday")]
    IssuedBefore14,
    #[error("the passport issue date is in the future")]
    IssuedInFuture,
    #[error("OGRN must be 13 or 15 digits")]
    OgrnMalformed,
    #[error("OGRN check digit is wrong")]
    OgrnChecksum,
}

/// Fields of [`IdentityForm`], for precise messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    FamilyName,
    GivenName,
    MiddleName,
    BirthDate,
    BirthPlace,
    Snils,
    PassportSeries,
    PassportNumber,
    PassportIssueDate,
    PassportIssuedBy,
    DivisionCode,
    OrgName,
}

impl Field {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FamilyName => "family_name",
            Self::GivenName => "given_name",
            Self::MiddleName => "middle_name",
            Self::BirthDate => "birth_date",
            Self::BirthPlace => "birth_place",
            Self::Snils => "snils",
            Self::PassportSeries => "passport_series",
            Self::PassportNumber => "passport_number",
            Self::PassportIssueDate => "passport_issue_date",
            Self::PassportIssuedBy => "passport_issued_by",
            Self::DivisionCode => "passport_division_code",
            Self::OrgName => "org_name",
        }
    }
}

impl PersonError {
    /// Stable code for texts, audit details and CLI output.
    pub fn code(&self) -> String {
        match self {
            Self::Missing(f) => format!("missing_{}", f.as_str()),
            Self::TooLong(f) => format!("too_long_{}", f.as_str()),
            Self::SnilsInvalid => "snils_invalid".into(),
            Self::InnInvalid => "inn_invalid".into(),
            Self::BadDate(f) => format!("bad_date_{}", f.as_str()),
            Self::BirthDateOutOfRange => "birth_date_out_of_range".into(),
            Self::PassportSeries => "passport_series".into(),
            Self::PassportNumber => "passport_number".into(),
            Self::DivisionCode => "division_code".into(),
            Self::IssuedBefore14 => "issued_before_14".into(),
            Self::IssuedInFuture => "issued_in_future".into(),
            Self::OgrnMalformed => "ogrn_malformed".into(),
            Self::OgrnChecksum => "ogrn_checksum".into(),
        }
    }
}
