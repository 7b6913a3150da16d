//! Typed query strings: `Params<T>` deserializes the query into `T` and answers a parameter
//! that does not fit with 422 naming it (problem+json), as bodies do. Checked parameter types
//! live next to their endpoints; the shared ones (page size, the log position) are here.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::problem::Problem;

/// The query string as `T`. Unknown parameters are ignored (the consistency token, for one,
/// is read elsewhere).
#[derive(Debug, Clone, Copy, Default)]
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse(parts.uri.query().unwrap_or_default()).map(Params)
    }
}

/// Parses a query string, naming the parameter at fault.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, Problem> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    let deserializer = serde_urlencoded::Deserializer::new(pairs);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        // A parameter left out is reported on the whole query, naming itself in the message.
        let field = match missing_field(&message) {
            Some(name) => name.to_owned(),
            None if path == "." => "query".to_owned(),
            None => path,
        };
        Problem::invalid(field, message)
    })
}

/// serde's `missing field `name`` message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// A value read from a parameter's text with `FromStr`-like parsing and our own message,
/// for `#[serde(deserialize_with)]`: `parse_with(d, |s| ..., "is a date, YYYY-MM-DD")`.
pub fn from_text<'de, D, T>(
    deserializer: D,
    parse: impl FnOnce(&str) -> Option<T>,
    expected: &'static str,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    let text = String::deserialize(deserializer)?;
    parse(text.trim()).ok_or_else(|| serde::de::Error::custom(expected))
}

/// A date as RFC 3339 writes one (`full-date`: four-digit year, two-digit month and day),
/// nothing more lenient: `-2026-12-10` and `+12026-12-10` are not dates.
pub fn full_date(text: &str) -> Option<chrono::NaiveDate> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (b.len() == 10 && b[4] == b'-' && b[7] == b'-' && digits(0..4) && digits(5..7) && digits(8..10))
        .then(|| chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

/// A month, `YYYY-MM` (four-digit year), as its first day.
pub fn full_month(text: &str) -> Option<chrono::NaiveDate> {
    (text.len() == 7)
        .then(|| full_date(&format!("{text}-01")))
        .flatten()
}

/// `limit`: how many items a page holds, 1 to 200, 50 by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit(pub i64);

impl Limit {
    pub const DEFAULT: Limit = Limit(50);
    pub const MAX: i64 = 200;
}

impl Default for Limit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        from_text(
            deserializer,
            |s| {
                s.parse()
                    .ok()
                    .filter(|n| (1..=Self::MAX).contains(n))
                    .map(Limit)
            },
            "is a number from 1 to 200",
        )
    }
}

impl utoipa::PartialSchema for Limit {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .minimum(Some(1))
            .maximum(Some(Self::MAX))
            .default(Some(serde_json::json!(Self::DEFAULT.0)))
            .into()
    }
}

impl utoipa::ToSchema for Limit {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Q {
        #[serde(default)]
        limit: Limit,
        date: chrono::NaiveDate,
    }

    #[test]
    fn dates_and_months_are_rfc_3339_s_and_nothing_looser() {
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 10);
        assert_eq!(full_date("2026-12-10"), day);
        for bad in [
            "-2026-12-10",
            "+2026-12-10",
            "2026-12-1",
            "2026-13-10",
            "02026-12-10",
            "",
        ] {
            assert_eq!(full_date(bad), None, "{bad}");
        }
        assert_eq!(
            full_month("2026-12"),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
        );
        for bad in ["-0001-01", "2026-1", "2026-00", "20261-01"] {
            assert_eq!(full_month(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_parameter_that_does_not_fit_is_named() {
        let named = |query: &str| parse::<Q>(query).unwrap_err().errors[0].field.clone();
        assert_eq!(named("date=2030-01-01&limit=0"), "limit");
        assert_eq!(named("date=tomorrow"), "date");
        assert_eq!(named("limit=5"), "date");
        let q: Q = parse("date=2030-01-01&other=1").unwrap();
        assert_eq!(
            (q.limit, q.date.to_string()),
            (Limit(50), "2030-01-01".into())
        );
        assert_eq!(
            parse::<Q>("date=2030-01-01&limit=200").unwrap().limit,
            Limit(200)
        );
    }
}
