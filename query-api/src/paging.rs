//! Lists a page at a time: `limit` (1 to 200) and an opaque `cursor`, the sort key of the last
//! item of the previous page. A query fetches one row more than the page to know whether
//! another page follows.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use platform::params::Limit;
use serde::{Deserialize, Deserializer, Serialize};

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The first `limit` of `rows` (fetched with [`fetch_size`]), and a cursor at the last of
    /// them when more rows followed.
    pub fn of(mut rows: Vec<T>, limit: Limit, key: impl Fn(&T) -> Cursor) -> Self {
        let more = rows.len() as i64 > limit.0;
        rows.truncate(limit.0 as usize);
        Page {
            next_cursor: more.then(|| rows.last().map(|r| key(r).encode())).flatten(),
            items: rows,
        }
    }
}

/// How many rows to fetch for a page of `limit`.
pub fn fetch_size(limit: Limit) -> i64 {
    limit.0 + 1
}

/// Where a page starts: after the item with this sort key (a time, then an id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub key: String,
}

impl Cursor {
    pub fn new(at: DateTime<Utc>, key: impl ToString) -> Self {
        Self {
            at,
            key: key.to_string(),
        }
    }

    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}|{}", self.at.to_rfc3339(), self.key))
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(raw).ok()?).ok()?;
        let (at, key) = text.split_once('|')?;
        let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
        Some(Self::new(at, key))
    }

    /// The cursor's key as a uuid (lists sorted by time, then id).
    pub fn uuid_key(&self) -> Option<uuid::Uuid> {
        self.key.parse().ok()
    }
}

impl<'de> Deserialize<'de> for Cursor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        platform::params::from_text(
            deserializer,
            Cursor::decode,
            "is the next_cursor of a previous page",
        )
    }
}

impl utoipa::PartialSchema for Cursor {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .description(Some("next_cursor of the previous page"))
            .into()
    }
}

impl utoipa::ToSchema for Cursor {}

/// `limit` and `cursor`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// 1 to 200, 50 by default.
    #[serde(default)]
    #[param(value_type = Option<i64>)]
    pub limit: Limit,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    #[param(value_type = Option<String>)]
    pub cursor: Option<Cursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_nonsense_is_no_cursor() {
        let cursor = Cursor::new("2026-12-01T10:00:00Z".parse().unwrap(), "+34600000001");
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("nonsense"), None);
    }

    #[test]
    fn a_page_says_whether_another_follows() {
        let at: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let page = Page::of(vec![1, 2, 3], Limit(2), |n| Cursor::new(at, n));
        assert_eq!(page.items, [1, 2]);
        assert_eq!(page.next_cursor, Some(Cursor::new(at, 2).encode()));
        let last = Page::of(vec![1, 2], Limit(2), |n| Cursor::new(at, n));
        assert_eq!(last.next_cursor, None);
    }
}
