//! Schemas of the platform's own values for the OpenAPI documents, built from the domain's
//! definitions (its labels, currencies, time zones, bounds), so that a document says exactly
//! what the server accepts and stays so when the domain changes. Fields use them with
//! `#[schema(schema_with = platform::schemas::role)]`.
//!
//! Text a person reads (names, reasons, messages) is marked `format: visible-text` with its
//! lengths on the field; [`crate::docs::finish`] gives every such string [`VISIBLE_TEXT`].

use domain::access::{Permission, Role};
use domain::integration::Topic;
use domain::plan::{Cycle, Plan};
use domain::values::{Currency, IanaTimeZone, Money};
use domain::webhook::WebhookUrl;
use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, Object, ObjectBuilder, Type};
use utoipa::openapi::{Array, KnownFormat, SchemaFormat};

/// Text that shows something (a character that is not whitespace, a control character or an
/// invisible formatting one) and has no control characters: `domain::values::is_visible`.
pub const VISIBLE_TEXT: &str = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F\u00AD\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\uFEFF][^\x00-\x1F\x7F-\x9F]*$";

fn one_of(labels: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(labels))
}

/// A member's role.
pub fn role() -> Object {
    one_of(Role::labels()).examples(["staff"]).build()
}

/// A subscription plan.
pub fn plan() -> Object {
    one_of(Plan::labels()).examples(["growth"]).build()
}

/// How often a subscription is paid.
pub fn cycle() -> Object {
    one_of(Cycle::labels()).examples(["monthly"]).build()
}

/// A subscription's cycle where it may be left out (`null`: the one it has, or monthly).
pub fn optional_cycle() -> Object {
    ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .enum_values(Some(
            Cycle::labels()
                .into_iter()
                .map(serde_json::Value::from)
                .chain([serde_json::Value::Null]),
        ))
        .build()
}

/// What an API key may do.
pub fn scopes() -> Array {
    ArrayBuilder::new()
        .items(one_of(Permission::labels()))
        .examples([serde_json::json!(["read_bookings"])])
        .build()
}

/// The public events' topics an endpoint receives (none: every topic, also those added later).
pub fn topics() -> Array {
    ArrayBuilder::new()
        .items(one_of(Topic::ALL.iter().map(|t| t.name())))
        .examples([serde_json::json!(["booking.created", "booking.cancelled"])])
        .build()
}

/// A staff member's id (the resource of their agenda): 1 to 64 of `a-z 0-9 _ -`.
pub fn resource_id() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[a-z0-9_-]{1,64}$"))
        .examples(["ana"])
        .build()
}

/// Staff members' ids.
pub fn resource_ids() -> Array {
    ArrayBuilder::new().items(resource_id()).build()
}

/// An amount of money: whole minor units (cents), never negative, and an ISO 4217 currency.
pub fn money() -> Object {
    ObjectBuilder::new()
        .property(
            "minor",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .minimum(Some(0))
                .maximum(Some(Money::MAX_MINOR))
                .description(Some("Minor units (cents)")),
        )
        .property("currency", one_of(Currency::CODES.iter().copied()))
        .required("minor")
        .required("currency")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .examples([serde_json::json!({"minor": 2500, "currency": "EUR"})])
        .build()
}

/// An IANA time zone name, by which the business's hours are read.
pub fn time_zone() -> Object {
    one_of(IanaTimeZone::names())
        .examples(["Europe/Madrid"])
        .build()
}

/// Where a webhook endpoint receives events: `domain::webhook::WebhookUrl::PATTERN`, at most
/// 2,048 characters.
pub fn webhook_url() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(2048))
        .pattern(Some(WebhookUrl::PATTERN))
        .examples(["https://crm.example.com/hooks/booking"])
        .build()
}

/// A password: 10 to 128 characters.
pub fn password() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(10))
        .max_length(Some(128))
        .build()
}

/// A business's slug: 3 to 40 lowercase letters, digits and single hyphens, starting with a
/// letter and not ending with a hyphen.
pub fn slug() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[a-z][a-z0-9]*(-[a-z0-9]+)*$"))
        .min_length(Some(3))
        .max_length(Some(40))
        .examples(["demo-salon"])
        .build()
}

/// An email address (at most 254 characters).
pub fn email() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(254))
        .build()
}

/// Gives every string of `format: visible-text` in `doc` (a serialized document) the
/// [`VISIBLE_TEXT`] pattern.
pub(crate) fn add_visible_text_patterns(doc: &mut serde_json::Value) {
    match doc {
        serde_json::Value::Object(map) => {
            if map.get("format").and_then(|f| f.as_str()) == Some("visible-text") {
                map.insert("pattern".into(), VISIBLE_TEXT.into());
            }
            map.values_mut().for_each(add_visible_text_patterns);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(add_visible_text_patterns),
        _ => {}
    }
}
