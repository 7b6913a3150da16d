//! Checked value types: each has a private field and a `parse` that says what is wrong.
//! Everything past the HTTP edge holds these, never raw strings.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveTime;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Display`, `FromStr` and string (de)serialization through `parse`/`as_str`.
macro_rules! string_value {
    ($ty:ident, $err:ty) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = $err;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(d)?;
                Self::parse(&raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A tenant's URL-safe handle: 3 to 40 lowercase letters, digits and single hyphens, starting
/// with a letter, not ending with a hyphen.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantSlug(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantSlugError {
    #[error("a slug is 3 to 40 characters long (got {0})")]
    Length(usize),
    #[error("a slug starts with a lowercase letter")]
    Start,
    #[error("a slug has only lowercase letters, digits and hyphens (found {0:?})")]
    Character(char),
    #[error("a slug has no double hyphen and does not end with one")]
    Hyphens,
}

impl TenantSlug {
    pub fn parse(raw: &str) -> Result<Self, TenantSlugError> {
        let len = raw.chars().count();
        if !(3..=40).contains(&len) {
            return Err(TenantSlugError::Length(len));
        }
        if !raw.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(TenantSlugError::Start);
        }
        if let Some(c) = raw
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(TenantSlugError::Character(c));
        }
        if raw.contains("--") || raw.ends_with('-') {
            return Err(TenantSlugError::Hyphens);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_value!(TenantSlug, TenantSlugError);

/// A phone number in E.164: `+`, a country code not starting with 0, 8 to 15 digits in all.
/// WhatsApp writes numbers without the `+` (`wa_id`); [`PhoneNumber::from_wa_id`] accepts that.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("a phone number starts with + and the country code (E.164)")]
    MissingPlus,
    #[error("a phone number has only digits after the + (found {0:?})")]
    Character(char),
    #[error("a phone number has 8 to 15 digits (got {0})")]
    Length(usize),
    #[error("a country code does not start with 0")]
    LeadingZero,
}

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, PhoneNumberError> {
        let digits = raw.strip_prefix('+').ok_or(PhoneNumberError::MissingPlus)?;
        if let Some(c) = digits.chars().find(|c| !c.is_ascii_digit()) {
            return Err(PhoneNumberError::Character(c));
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(PhoneNumberError::Length(digits.len()));
        }
        if digits.starts_with('0') {
            return Err(PhoneNumberError::LeadingZero);
        }
        Ok(Self(raw.to_owned()))
    }

    /// From WhatsApp's `wa_id` / `from` (digits without `+`).
    pub fn from_wa_id(wa_id: &str) -> Result<Self, PhoneNumberError> {
        Self::parse(&format!("+{wa_id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// WhatsApp's form: digits without `+`.
    pub fn wa_id(&self) -> &str {
        &self.0[1..]
    }
}
string_value!(PhoneNumber, PhoneNumberError);

/// An email address, trimmed, the domain lowercased. Checked for shape only (one `@`, a dotted
/// domain, no spaces): whether it receives mail is for a confirmation email to find out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("an email address is at most 254 characters")]
    TooLong,
    #[error(
        "an email address is local-part@domain, the local part letters, digits, dots and !#$%&'*+-/=?^_`{{|}}~"
    )]
    Shape,
    #[error("an email domain is dotted labels of letters, digits and hyphens")]
    Domain,
    #[error("an email address has no whitespace")]
    Whitespace,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let raw = raw.trim();
        if raw.len() > 254 {
            return Err(EmailError::TooLong);
        }
        if raw.chars().any(char::is_whitespace) {
            return Err(EmailError::Whitespace);
        }
        let (local, domain) = raw.rsplit_once('@').ok_or(EmailError::Shape)?;
        // The local part is RFC 5322's dot-atom: no brackets, quotes or markup.
        let atext = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c);
        if local.is_empty()
            || local.len() > 64
            || local
                .split('.')
                .any(|part| part.is_empty() || !part.chars().all(atext))
        {
            return Err(EmailError::Shape);
        }
        let label = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        };
        if !domain.contains('.') || !domain.split('.').all(label) {
            return Err(EmailError::Domain);
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_value!(Email, EmailError);

/// An ISO 4217 currency in use for prices, with its minor-unit exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a currency is the ISO 4217 code of a currency in use, such as EUR (got {0:?})")]
pub struct CurrencyError(String);

/// ISO 4217's currencies in circulation (list one, 2026), without the funds, precious metals
/// and the codes for testing or no currency (XXX, XTS), which no business prices in.
const CURRENCIES: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF",
    "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP",
    "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD",
    "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY",
    "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD",
    "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK",
    "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK",
    "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG",
    "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
    "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VED",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XCG", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

impl Currency {
    /// Every code [`Currency::parse`] accepts, in order.
    pub const CODES: &'static [&'static str] = CURRENCIES;

    pub fn parse(raw: &str) -> Result<Self, CurrencyError> {
        match raw.as_bytes() {
            &[a, b, c] if CURRENCIES.binary_search(&raw).is_ok() => Ok(Self([a, b, c])),
            _ => Err(CurrencyError(raw.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII by construction")
    }

    /// Digits after the decimal point (ISO 4217): 0 for JPY, KRW…, 3 for KWD, BHD…, else 2.
    pub fn exponent(&self) -> u32 {
        match self.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF"
            | "UGX" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            _ => 2,
        }
    }
}
string_value!(Currency, CurrencyError);

/// An amount of money: integer minor units and a currency. Never a float, never negative,
/// at most 2^53 - 1 minor units (what a JSON number keeps exactly everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "MoneyFields")]
pub struct Money {
    minor: i64,
    currency: Currency,
}

/// `Money` as written, checked by [`Money::parse`]; nothing else may be in it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyFields {
    minor: i64,
    currency: Currency,
}

impl TryFrom<MoneyFields> for Money {
    type Error = MoneyError;

    fn try_from(fields: MoneyFields) -> Result<Self, Self::Error> {
        Money::parse(fields.minor, fields.currency.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("a price is not negative")]
    Negative,
    #[error("an amount is at most 9007199254740991 minor units")]
    TooLarge,
    #[error(transparent)]
    Currency(#[from] CurrencyError),
}

impl Money {
    /// The largest amount: 2^53 - 1 minor units.
    pub const MAX_MINOR: i64 = (1 << 53) - 1;

    pub fn parse(minor: i64, currency: &str) -> Result<Self, MoneyError> {
        if minor < 0 {
            return Err(MoneyError::Negative);
        }
        if minor > Self::MAX_MINOR {
            return Err(MoneyError::TooLarge);
        }
        Ok(Self {
            minor,
            currency: Currency::parse(currency)?,
        })
    }

    pub fn minor(&self) -> i64 {
        self.minor
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }
}

impl fmt::Display for Money {
    /// `25.00 EUR`, `1500 JPY`, `1.250 KWD`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.currency.exponent();
        if exp == 0 {
            return write!(f, "{} {}", self.minor, self.currency);
        }
        let unit = 10_i64.pow(exp);
        write!(
            f,
            "{}.{:0width$} {}",
            self.minor / unit,
            self.minor % unit,
            self.currency,
            width = exp as usize
        )
    }
}

/// How long a service takes: 5 minutes to 12 hours, in whole minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ServiceDuration(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a service lasts 5 to 720 minutes (got {0})")]
pub struct ServiceDurationError(u32);

impl ServiceDuration {
    pub fn parse(minutes: u32) -> Result<Self, ServiceDurationError> {
        if (5..=720).contains(&minutes) {
            Ok(Self(minutes))
        } else {
            Err(ServiceDurationError(minutes))
        }
    }

    pub fn minutes(&self) -> u32 {
        self.0
    }

    pub fn as_duration(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.0))
    }
}

impl<'de> Deserialize<'de> for ServiceDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(u32::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// An IANA time zone (`Europe/Madrid`), by which business hours are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IanaTimeZone(chrono_tz::Tz);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone {0:?}: use an IANA name such as Europe/Madrid")]
pub struct IanaTimeZoneError(String);

impl IanaTimeZone {
    pub fn parse(raw: &str) -> Result<Self, IanaTimeZoneError> {
        raw.parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| IanaTimeZoneError(raw.to_owned()))
    }

    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }

    /// Every name [`IanaTimeZone::parse`] accepts.
    pub fn names() -> impl Iterator<Item = &'static str> {
        chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())
    }

    pub fn as_str(&self) -> &str {
        self.0.name()
    }
}
string_value!(IanaTimeZone, IanaTimeZoneError);

/// A wall-clock time of day in the business's time zone, to the minute (`09:30`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LocalTime(NaiveTime);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a time of day is HH:MM, 00:00 to 23:59 (got {0:?})")]
pub struct LocalTimeError(String);

impl LocalTime {
    pub fn parse(raw: &str) -> Result<Self, LocalTimeError> {
        NaiveTime::parse_from_str(raw, "%H:%M")
            .map(Self)
            .map_err(|_| LocalTimeError(raw.to_owned()))
    }

    pub fn from_hm(hour: u32, minute: u32) -> Option<Self> {
        NaiveTime::from_hms_opt(hour, minute, 0).map(Self)
    }

    pub fn naive(&self) -> NaiveTime {
        self.0
    }

    fn text(&self) -> String {
        self.0.format("%H:%M").to_string()
    }
}

impl fmt::Display for LocalTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl Serialize for LocalTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text())
    }
}

impl<'de> Deserialize<'de> for LocalTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Whether `text` shows anything: a character that is not whitespace, a control character or
/// an invisible formatting one (zero-width spaces and joiners, direction marks, soft hyphens).
pub fn is_visible(text: &str) -> bool {
    text.chars()
        .any(|c| !c.is_whitespace() && !c.is_control() && !is_invisible_format(c))
}

fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}')
}

/// A person's name as a customer gave it: 1 to 100 characters after trimming, something
/// visible, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersonName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PersonNameError {
    #[error("a name is 1 to 100 characters (got {0})")]
    Length(usize),
    #[error("a name has no control characters and something visible")]
    Invisible,
}

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, PersonNameError> {
        let trimmed = raw.trim();
        let len = trimmed.chars().count();
        if !(1..=100).contains(&len) {
            return Err(PersonNameError::Length(len));
        }
        if trimmed.chars().any(char::is_control) || !is_visible(trimmed) {
            return Err(PersonNameError::Invisible);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}
string_value!(PersonName, PersonNameError);

/// A business's display name: 1 to 100 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BusinessName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusinessNameError {
    #[error("a business name is 1 to 100 characters (got {0})")]
    Length(usize),
    #[error("a business name has no control characters and something visible")]
    Control,
}

impl BusinessName {
    pub fn parse(raw: &str) -> Result<Self, BusinessNameError> {
        let trimmed = raw.trim();
        let len = trimmed.chars().count();
        if !(1..=100).contains(&len) {
            return Err(BusinessNameError::Length(len));
        }
        if trimmed.chars().any(char::is_control) || !is_visible(trimmed) {
            return Err(BusinessNameError::Control);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_value!(BusinessName, BusinessNameError);

/// Free text a person typed (a cancellation reason, a suspension reason): trimmed, 1 to 500
/// characters, something visible, no control characters (it is shown on one line).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reason(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    #[error("a reason is 1 to 500 characters (got {0})")]
    Length(usize),
    #[error("a reason has no control characters and something visible")]
    Invisible,
}

impl Reason {
    pub fn parse(raw: &str) -> Result<Self, ReasonError> {
        let trimmed = raw.trim();
        let len = trimmed.chars().count();
        if !(1..=500).contains(&len) {
            return Err(ReasonError::Length(len));
        }
        if trimmed.chars().any(char::is_control) || !is_visible(trimmed) {
            return Err(ReasonError::Invisible);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
string_value!(Reason, ReasonError);

/// A calendar date in the business's time zone. chrono's `NaiveDate` already parses strictly
/// (`2026-12-01`); this alias names the intent.
pub type LocalDate = chrono::NaiveDate;

#[cfg(test)]
mod tests {
    use super::*;

    /// Any text from anywhere: words that almost pass, and any Unicode at all (controls, NUL,
    /// invisible formatting characters, other scripts).
    fn raw() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        prop_oneof![
            proptest::string::string_regex(r"[ +a-zA-Z0-9@._\-/]{0,40}").unwrap(),
            any::<String>(),
            Just("\u{200B}\u{00AD}".to_owned()),
            Just(" Ana\u{0}María ".to_owned()),
        ]
    }

    /// Each checked value: parsing anything never panics, and what it accepts is a fixed
    /// point (its text parses to the same value, and survives JSON), holding nothing Postgres
    /// refuses (NUL).
    macro_rules! fixed_point {
        ($raw:expr, $ty:ty) => {{
            if let Ok(value) = <$ty>::parse($raw) {
                let again = <$ty>::parse(value.as_str());
                proptest::prop_assert_eq!(again.as_ref(), Ok(&value));
                proptest::prop_assert!(!value.as_str().contains('\0'));
                let json = serde_json::to_string(&value).unwrap();
                proptest::prop_assert_eq!(serde_json::from_str::<$ty>(&json).unwrap(), value);
            }
        }};
    }

    proptest::proptest! {
        #[test]
        fn every_checked_text_value_is_a_fixed_point_of_its_parse(raw in raw()) {
            fixed_point!(&raw, TenantSlug);
            fixed_point!(&raw, PhoneNumber);
            fixed_point!(&raw, Email);
            fixed_point!(&raw, Currency);
            fixed_point!(&raw, IanaTimeZone);
            fixed_point!(&raw, PersonName);
            fixed_point!(&raw, BusinessName);
            fixed_point!(&raw, Reason);
            if let Ok(name) = PersonName::parse(&raw) {
                proptest::prop_assert!(is_visible(name.as_str()));
            }
        }

        #[test]
        fn money_is_refused_or_exact(minor in proptest::prelude::any::<i64>(), currency in raw()) {
            if let Ok(money) = Money::parse(minor, &currency) {
                proptest::prop_assert!((0..(1i64 << 53)).contains(&money.minor()));
                proptest::prop_assert_eq!(money.minor(), minor);
                let json = serde_json::to_string(&money).unwrap();
                proptest::prop_assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), money);
            }
        }
    }

    #[test]
    fn slugs() {
        assert!(TenantSlug::parse("demo-salon").is_ok());
        assert!(TenantSlug::parse("a1b").is_ok());
        assert_eq!(TenantSlug::parse("ab"), Err(TenantSlugError::Length(2)));
        assert_eq!(TenantSlug::parse("1abc"), Err(TenantSlugError::Start));
        assert_eq!(TenantSlug::parse("Demo"), Err(TenantSlugError::Start));
        assert_eq!(
            TenantSlug::parse("demo_salon"),
            Err(TenantSlugError::Character('_'))
        );
        assert_eq!(
            TenantSlug::parse("demo--salon"),
            Err(TenantSlugError::Hyphens)
        );
        assert_eq!(TenantSlug::parse("demo-"), Err(TenantSlugError::Hyphens));
    }

    #[test]
    fn phone_numbers() {
        let p = PhoneNumber::parse("+16505551234").unwrap();
        assert_eq!(p.wa_id(), "16505551234");
        assert_eq!(PhoneNumber::from_wa_id("16505551234").unwrap(), p);
        assert_eq!(
            PhoneNumber::parse("16505551234"),
            Err(PhoneNumberError::MissingPlus)
        );
        assert_eq!(
            PhoneNumber::parse("+1 650"),
            Err(PhoneNumberError::Character(' '))
        );
        assert_eq!(
            PhoneNumber::parse("+1234567"),
            Err(PhoneNumberError::Length(7))
        );
        assert_eq!(
            PhoneNumber::parse("+0123456789"),
            Err(PhoneNumberError::LeadingZero)
        );
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Ana@Example.COM ").unwrap().as_str(),
            "Ana@example.com"
        );
        assert_eq!(Email::parse("ana.example.com"), Err(EmailError::Shape));
        assert_eq!(Email::parse("ana@localhost"), Err(EmailError::Domain));
        assert_eq!(Email::parse("ana@example..com"), Err(EmailError::Domain));
        assert_eq!(
            Email::parse("a na@example.com"),
            Err(EmailError::Whitespace)
        );
        assert_eq!(
            Email::parse("<script>alert(1)</script>@x.com"),
            Err(EmailError::Shape)
        );
        assert_eq!(Email::parse(".ana@example.com"), Err(EmailError::Shape));
        assert_eq!(Email::parse("ana@-example.com"), Err(EmailError::Domain));
        assert_eq!(Email::parse("ana@exa_mple.com"), Err(EmailError::Domain));
        for good in [
            "o'brien+tag@example.co.uk",
            "jose.maria@correo.es",
            "u@xn--bcher-kva.de",
        ] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn names_show_something_and_hold_no_control_characters() {
        assert_eq!(
            PersonName::parse("  Ana María ").unwrap().as_str(),
            "Ana María"
        );
        assert_eq!(
            PersonName::parse("\u{200B}\u{200D}\u{FEFF}"),
            Err(PersonNameError::Invisible)
        );
        assert_eq!(
            PersonName::parse("An\u{7}a"),
            Err(PersonNameError::Invisible)
        );
        assert_eq!(PersonName::parse(""), Err(PersonNameError::Length(0)));
        assert_eq!(
            PersonName::parse(&"a".repeat(100_000)),
            Err(PersonNameError::Length(100_000))
        );
        assert!(BusinessName::parse("\u{200B}").is_err());
    }

    #[test]
    fn money_is_minor_units_displayed_by_the_currency_exponent() {
        assert_eq!(Money::parse(2500, "EUR").unwrap().to_string(), "25.00 EUR");
        assert_eq!(Money::parse(1500, "JPY").unwrap().to_string(), "1500 JPY");
        assert_eq!(Money::parse(1250, "KWD").unwrap().to_string(), "1.250 KWD");
        assert_eq!(Money::parse(-1, "EUR"), Err(MoneyError::Negative));
        assert!(matches!(
            Money::parse(1, "eur"),
            Err(MoneyError::Currency(_))
        ));
        let json = serde_json::to_string(&Money::parse(2500, "EUR").unwrap()).unwrap();
        assert_eq!(json, r#"{"minor":2500,"currency":"EUR"}"#);
    }

    #[test]
    fn durations_zones_and_times() {
        assert!(ServiceDuration::parse(45).is_ok());
        assert!(ServiceDuration::parse(4).is_err());
        assert!(ServiceDuration::parse(721).is_err());
        assert!(serde_json::from_str::<ServiceDuration>("3").is_err());
        assert_eq!(
            IanaTimeZone::parse("Europe/Madrid").unwrap().as_str(),
            "Europe/Madrid"
        );
        assert!(IanaTimeZone::parse("Mars/Olympus").is_err());
        assert_eq!(LocalTime::parse("09:30").unwrap().to_string(), "09:30");
        assert!(LocalTime::parse("24:00").is_err());
        assert!(LocalTime::parse("9h").is_err());
    }

    #[test]
    fn values_refuse_bad_input_when_deserialized() {
        assert!(serde_json::from_str::<TenantSlug>(r#""Bad Slug""#).is_err());
        assert!(serde_json::from_str::<PhoneNumber>(r#""123""#).is_err());
        let money = |json: &str| serde_json::from_str::<Money>(json).map_err(|e| e.to_string());
        assert_eq!(
            money(r#"{"minor": 2500, "currency": "EUR"}"#),
            Ok(Money::parse(2500, "EUR").unwrap())
        );
        for bad in [
            r#"{"minor": -5000, "currency": "EUR"}"#,
            r#"{"minor": 9007199254740992, "currency": "EUR"}"#,
            r#"{"minor": 2500, "currency": "XXX"}"#,
            r#"{"minor": 2500, "currency": "eur"}"#,
            r#"{"minor": 2500, "currency": "EUR", "tax": 21}"#,
        ] {
            assert!(money(bad).is_err(), "{bad}");
        }
        assert!(
            CURRENCIES.is_sorted(),
            "binary search needs the list sorted"
        );
        let slug: TenantSlug = serde_json::from_str(r#""demo-salon""#).unwrap();
        assert_eq!(serde_json::to_string(&slug).unwrap(), r#""demo-salon""#);
    }
}
