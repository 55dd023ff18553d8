//! The person behind a subject: account level and status, identity documents, contacts,
//! addresses, organisations, and the registry verification of SNILS + passport. No I/O here;
//! validators take `today` as a parameter (conventions: time is a parameter).
//!
//! Personal numbers (SNILS, INN, document numbers, birthplace, addresses) are sealed by the
//! store; the types here hold them opened and print nothing of them in `Debug`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::identifier::{Inn, InnKind, Snils};

// ---------------------------------------------------------------------------------------
// Level and status
// ---------------------------------------------------------------------------------------

/// How well the person is known (requirements: "Account levels and status"). Ordered:
/// `Simplified < Standard < Confirmed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountLevel {
    /// Name + a confirmed phone or e-mail.
    Simplified,
    /// SNILS and passport checked against the state registries.
    Standard,
    /// Identity proven in person, by bank ID or by a qualified certificate.
    Confirmed,
}

impl AccountLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Simplified => "simplified",
            Self::Standard => "standard",
            Self::Confirmed => "confirmed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "simplified" => Self::Simplified,
            "standard" => Self::Standard,
            "confirmed" => Self::Confirmed,
            _ => return None,
        })
    }
    /// ESIA `trusted` / `urn:esia:sbj:is_tru`: true only for a confirmed account.
    pub fn trusted(self) -> bool {
        self == Self::Confirmed
    }
}

/// Whether the account may be used (requirements: active, blocked, pending confirmation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    /// Signs in normally.
    Active,
    /// Refused at sign-in (a readable page + audit); its refresh tokens and access tokens stop
    /// working at the token and userinfo endpoints. Only an operator unblocks.
    Blocked,
    /// Created, but the contact is not confirmed yet: sign-in is refused with a page that
    /// says to finish the registration.
    PendingConfirmation,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Blocked => "blocked",
            Self::PendingConfirmation => "pending_confirmation",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "active" => Self::Active,
            "blocked" => Self::Blocked,
            "pending_confirmation" | "pending" => Self::PendingConfirmation,
            _ => return None,
        })
    }
    /// May sign in and use tokens.
    pub fn may_sign_in(self) -> bool {
        self == Self::Active
    }
}

/// How an operator confirmed an identity (`idp users confirm --method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmMethod {
    InPerson,
    Bank,
    Certificate,
}

impl ConfirmMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InPerson => "in-person",
            Self::Bank => "bank",
            Self::Certificate => "certificate",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "in-person" | "in_person" => Self::InPerson,
            "bank" => Self::Bank,
            "certificate" => Self::Certificate,
            _ => return None,
        })
    }
}

/// Who confirmed the identity, how and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub by: String,
    pub method: ConfirmMethod,
    pub at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------
// Documents
// ---------------------------------------------------------------------------------------

/// Kinds of identity and other documents, with the ESIA type codes (`/rs/prns/{oid}/docs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    /// Passport of a citizen of the Russian Federation (`RF_PASSPORT`).
    Passport,
    /// Foreign travel passport (`FID_DOC` / `foreign_passport_doc`).
    ForeignPassport,
    /// Driver's licence (`RF_DRIVING_LICENSE` / `drivers_licence_doc`).
    DriversLicence,
    /// Compulsory medical insurance policy (`MDCL_PLCY` / `medical_doc`).
    Medical,
    /// Military ID (`MLTR_ID` / `military_doc`).
    Military,
    /// Birth certificate (`RF_BRTH_CERT` / `birth_cert_doc`).
    BirthCertificate,
}

impl DocumentKind {
    pub const ALL: [DocumentKind; 6] = [
        Self::Passport,
        Self::ForeignPassport,
        Self::DriversLicence,
        Self::Medical,
        Self::Military,
        Self::BirthCertificate,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passport => "passport",
            Self::ForeignPassport => "foreign_passport",
            Self::DriversLicence => "drivers_licence",
            Self::Medical => "medical",
            Self::Military => "military",
            Self::BirthCertificate => "birth_certificate",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
    /// The ESIA document type code.
    pub fn esia_type(self) -> &'static str {
        match self {
            Self::Passport => "RF_PASSPORT",
            Self::ForeignPassport => "FID_DOC",
            Self::DriversLicence => "RF_DRIVING_LICENSE",
            Self::Medical => "MDCL_PLCY",
            Self::Military => "MLTR_ID",
            Self::BirthCertificate => "RF_BRTH_CERT",
        }
    }
    /// The scope that releases documents of this kind (`id_doc` for the passport).
    pub fn scope(self) -> &'static str {
        match self {
            Self::Passport => "id_doc",
            Self::ForeignPassport => "foreign_passport_doc",
            Self::DriversLicence => "drivers_licence_doc",
            Self::Medical => "medical_doc",
            Self::Military => "military_doc",
            Self::BirthCertificate => "birth_cert_doc",
        }
    }
}

/// Whether a document was checked against a registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifiedState {
    NotVerified,
    Pending,
    Verified,
}

/// A document. Numbers are sealed at rest; `Debug` masks them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub id: String,
    pub kind: DocumentKind,
    pub series: Option<String>,
    pub number: String,
    pub issue_date: Option<NaiveDate>,
    pub issued_by: Option<String>,
    /// Passport division code `NNN-NNN`.
    pub division_code: Option<String>,
    pub expiry_date: Option<NaiveDate>,
    /// ISO 3166 alpha-3 (`RUS` for the national passport).
    pub citizenship: Option<String>,
    pub verified: VerifiedState,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Document")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------
// Contacts, addresses, organisations
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactKind {
    /// ESIA `EML`.
    Email,
    /// ESIA `MBT`.
    Mobile,
    /// ESIA `PHN` (landline).
    Phone,
}

impl ContactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Mobile => "mobile",
            Self::Phone => "phone",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "email" => Self::Email,
            "mobile" => Self::Mobile,
            "phone" => Self::Phone,
            _ => return None,
        })
    }
    pub fn esia_type(self) -> &'static str {
        match self {
            Self::Email => "EML",
            Self::Mobile => "MBT",
            Self::Phone => "PHN",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub kind: ContactKind,
    pub value: String,
    pub verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contact")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    /// Registration address (ESIA `PRG`).
    Registration,
    /// Where the person lives (ESIA `PLV`).
    Living,
}

impl AddressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::Living => "living",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "registration" => Self::Registration,
            "living" => Self::Living,
            _ => return None,
        })
    }
    pub fn esia_type(self) -> &'static str {
        match self {
            Self::Registration => "PRG",
            Self::Living => "PLV",
        }
    }
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    pub id: String,
    pub kind: AddressKind,
    /// The whole address as one line (OIDC `address.formatted`).
    pub formatted: String,
    pub zip: Option<String>,
    pub country: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Address")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The role of a person in an organisation (requirements: "Roles").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgRole {
    /// Acts for the organisation by a power of attorney.
    Representative,
    /// Head of the organisation (may act for it without a power of attorney).
    Chief,
    Employee,
}

impl OrgRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Representative => "representative",
            Self::Chief => "chief",
            Self::Employee => "employee",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "representative" => Self::Representative,
            "chief" => Self::Chief,
            "employee" => Self::Employee,
            _ => return None,
        })
    }
}

/// OGRN (13 digits, legal entity) or OGRNIP (15 digits, sole proprietor) with its check digit:
/// the number of the first 12 (14) digits mod 11 (mod 13), then mod 10, is the last digit.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ogrn(String);

impl Ogrn {
    pub fn parse(raw: &str) -> Result<Self, PersonError> {
        let digits: String = raw.trim().chars().filter(|c| *c != ' ').collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PersonError::OgrnMalformed);
        }
        let modulus: u64 = match digits.len() {
            13 => 11,
            15 => 13,
            _ => return Err(PersonError::OgrnMalformed),
        };
        let (body, check) = digits.split_at(digits.len() - 1);
        let n: u64 = body.parse().map_err(|_| PersonError::OgrnMalformed)?;
        let want = (n % modulus) % 10;
        if check.parse::<u64>().ok() != Some(want) {
            return Err(PersonError::OgrnChecksum);
        }
        Ok(Ogrn(digits))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Ogrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ogrn({})", self.0)
    }
}

impl TryFrom<String> for Ogrn {
    type Error = PersonError;
    fn try_from(s: String) -> Result<Self, PersonError> {
        Ogrn::parse(&s)
    }
}

impl From<Ogrn> for String {
    fn from(o: Ogrn) -> String {
        o.0
    }
}

/// Membership of a person in an organisation (`usr_org`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// Stable id of the organisation (ESIA `oid` of the organisation).
    pub org_oid: i64,
    pub ogrn: Ogrn,
    pub name: String,
    pub role: OrgRole,
    pub since: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------
// The person
// ---------------------------------------------------------------------------------------

/// Everything held about a person beyond the sign-in profile (`Subject::profile` keeps the
/// name, birth date, gender and the sign-in contacts).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Person {
    pub subject_id: String,
    pub level: AccountLevel,
    pub status: AccountStatus,
    /// 11 digits, checksum valid.
    pub snils: Option<String>,
    /// 12 digits, checksum valid.
    pub inn: Option<String>,
    pub birth_place: Option<String>,
    /// Citizenship, ISO 3166 alpha-3.
    pub citizenship: Option<String>,
    pub confirmation: Option<Confirmation>,
    pub documents: Vec<Document>,
    pub contacts: Vec<Contact>,
    pub addresses: Vec<Address>,
    pub organizations: Vec<Membership>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Person")
            .field("subject_id", &self.subject_id)
            .field("level", &self.level)
            .field("status", &self.status)
            .field("documents", &self.documents)
            .finish_non_exhaustive()
    }
}

impl Person {
    /// A person nothing is known about yet: simplified, active.
    pub fn new(subject_id: &str, now: DateTime<Utc>) -> Person {
        Person {
            subject_id: subject_id.to_string(),
            level: AccountLevel::Simplified,
            status: AccountStatus::Active,
            snils: None,
            inn: None,
            birth_place: None,
            citizenship: None,
            confirmation: None,
            documents: Vec::new(),
            contacts: Vec::new(),
            addresses: Vec::new(),
            organizations: Vec::new(),
            updated_at: now,
        }
    }
    pub fn document(&self, kind: DocumentKind) -> Option<&Document> {
        self.documents.iter().find(|d| d.kind == kind)
    }
    pub fn passport(&self) -> Option<&Document> {
        self.document(DocumentKind::Passport)
    }
}

/// One change of a collection (documents, contacts, addresses, organisations, identifiers),
/// kept with its date. The old and new values are sealed at rest.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct PersonChange {
    pub at: DateTime<Utc>,
    /// `document`, `contact`, `address`, `organization`, `snils`, `inn`, `level`, `status`.
    pub collection: String,
    /// `added`, `changed`, `removed`.
    pub action: String,
    pub item_id: Option<String>,
    /// The item as it was before (JSON), if any.
    pub before: Option<serde_json::Value>,
    /// The item as it is after (JSON), if any.
    pub after: Option<serde_json::Value>,
}

impl fmt::Debug for PersonChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonChange")
            .field("at", &self.at)
            .field("collection", &self.collection)
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------
// Identity submission (standard account) and its validation
// ---------------------------------------------------------------------------------------

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

const MAX_TEXT: usize = 200;

/// A date as `YYYY-MM-DD` or `DD.MM.YYYY` (the Russian form).
pub fn parse_date(raw: &str) -> Option<NaiveDate> {
    let s = raw.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%d.%m.%Y"))
        .ok()
}

fn text(raw: &str, field: Field, required: bool) -> Result<Option<String>, PersonError> {
    let t = raw.trim();
    if t.is_empty() {
        return if required {
            Err(PersonError::Missing(field))
        } else {
            Ok(None)
        };
    }
    if t.chars().count() > MAX_TEXT || t.chars().any(char::is_control) {
        return Err(PersonError::TooLong(field));
    }
    Ok(Some(t.to_string()))
}

fn digits_only(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Passport series: 4 digits (spaces allowed between: `45 08`).
pub fn check_passport_series(raw: &str) -> Result<String, PersonError> {
    let s = digits_only(raw);
    if s.len() == 4 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s)
    } else {
        Err(PersonError::PassportSeries)
    }
}

/// Passport number: 6 digits.
pub fn check_passport_number(raw: &str) -> Result<String, PersonError> {
    let s = digits_only(raw);
    if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s)
    } else {
        Err(PersonError::PassportNumber)
    }
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
        let family_name = keep(e, text(&self.family_name, Field::FamilyName, true)).flatten();
        let given_name = keep(e, text(&self.given_name, Field::GivenName, true)).flatten();
        let middle_name = keep(e, text(&self.middle_name, Field::MiddleName, false)).flatten();
        let birth_date = keep(
            e,
            match parse_date(&self.birth_date) {
                None if self.birth_date.trim().is_empty() => {
                    Err(PersonError::Missing(Field::BirthDate))
                }
                None => Err(PersonError::BadDate(Field::BirthDate)),
                Some(d) if d > today || d.year() < 1900 => Err(PersonError::BirthDateOutOfRange),
                Some(d) => Ok(d),
            },
        );
        let birth_place = keep(e, text(&self.birth_place, Field::BirthPlace, true)).flatten();
        let snils = keep(
            e,
            match Snils::parse(&self.snils) {
                Ok(s) => Ok(s.as_str().to_string()),
                Err(_) if self.snils.trim().is_empty() => Err(PersonError::Missing(Field::Snils)),
                Err(_) => Err(PersonError::SnilsInvalid),
            },
        );
        let series = keep(e, check_passport_series(&self.passport_series));
        let number = keep(e, check_passport_number(&self.passport_number));
        let issue = keep(
            e,
            match parse_date(&self.passport_issue_date) {
                Some(d) => Ok(d),
                None if self.passport_issue_date.trim().is_empty() => {
                    Err(PersonError::Missing(Field::PassportIssueDate))
                }
                None => Err(PersonError::BadDate(Field::PassportIssueDate)),
            },
        );
        let issued_by = keep(
            e,
            text(&self.passport_issued_by, Field::PassportIssuedBy, true),
        )
        .flatten();
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

// ---------------------------------------------------------------------------------------
// Registry verification (durable request/response with an external registry)
// ---------------------------------------------------------------------------------------

/// Where a verification request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum VerificationState {
    /// Waiting to be sent, or sent and waiting for the registry's answer.
    Pending,
    /// The registry confirmed every field: the account is standard.
    Matched,
    /// The registry answered that something does not match; the reason is shown.
    Mismatch { reason: MismatchReason },
    /// Given up after too many failed attempts.
    Failed,
}

impl VerificationState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Matched => "matched",
            Self::Mismatch { .. } => "mismatch",
            Self::Failed => "failed",
        }
    }
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// Precise reasons a registry refuses a submission (shown to the citizen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchReason {
    /// The name registered for this SNILS differs.
    NameMismatch,
    /// The birth date registered differs.
    BirthDateMismatch,
    /// No person with this SNILS.
    SnilsNotFound,
    /// The passport is not valid (replaced, lost, expired).
    DocumentExpired,
    /// No such passport in the registry.
    DocumentNotFound,
}

impl MismatchReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NameMismatch => "name_mismatch",
            Self::BirthDateMismatch => "birth_date_mismatch",
            Self::SnilsNotFound => "snils_not_found",
            Self::DocumentExpired => "document_expired",
            Self::DocumentNotFound => "document_not_found",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "name_mismatch" => Self::NameMismatch,
            "birth_date_mismatch" => Self::BirthDateMismatch,
            "snils_not_found" => Self::SnilsNotFound,
            "document_expired" => Self::DocumentExpired,
            "document_not_found" => Self::DocumentNotFound,
            _ => return None,
        })
    }
}

/// A durable verification request (table `verifications`). The claim is sealed at rest.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub id: String,
    pub subject_id: String,
    pub claim: IdentityClaim,
    pub state: VerificationState,
    /// The registry's id of the exchange once it accepted the request.
    pub registry_ref: Option<String>,
    /// How many times sending or polling failed (registry unavailable).
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verification")
            .field("id", &self.id)
            .field("subject_id", &self.subject_id)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
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
    fn ogrn_check_digit() {
        // Sberbank 1027700132195, a valid OGRNIP 304500116000157.
        assert!(Ogrn::parse("1027700132195").is_ok());
        assert!(Ogrn::parse("304500116000157").is_ok());
        assert_eq!(Ogrn::parse("1027700132194"), Err(PersonError::OgrnChecksum));
        assert_eq!(Ogrn::parse("10277001321"), Err(PersonError::OgrnMalformed));
        assert_eq!(
            Ogrn::parse("10277001321x5"),
            Err(PersonError::OgrnMalformed)
        );
    }

    #[test]
    fn levels_are_ordered_and_only_confirmed_is_trusted() {
        assert!(AccountLevel::Simplified < AccountLevel::Standard);
        assert!(AccountLevel::Standard < AccountLevel::Confirmed);
        assert!(AccountLevel::Confirmed.trusted());
        assert!(!AccountLevel::Standard.trusted());
        for l in [
            AccountLevel::Simplified,
            AccountLevel::Standard,
            AccountLevel::Confirmed,
        ] {
            assert_eq!(AccountLevel::parse(l.as_str()), Some(l));
        }
        assert!(AccountStatus::Active.may_sign_in());
        assert!(!AccountStatus::Blocked.may_sign_in());
        assert!(!AccountStatus::PendingConfirmation.may_sign_in());
    }

    #[test]
    fn debug_shows_no_personal_numbers() {
        let c = form().validate(d("2026-11-23")).unwrap();
        let s = format!("{c:?}");
        assert!(!s.contains("11223344595") && !s.contains("123456"), "{s}");
    }
}
