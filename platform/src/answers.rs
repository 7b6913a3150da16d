//! Error answers for OpenAPI `responses(...)`, written once and listed per route: a route
//! lists exactly the sets it can answer (`Forbidden` only where a role or scope is checked).
//! Each becomes a problem+json response in the document (see [`crate::docs::finish`]).

use std::collections::BTreeMap;

use utoipa::openapi::RefOr;
use utoipa::openapi::response::{Response, ResponseBuilder};

type Answers = BTreeMap<String, RefOr<Response>>;

/// A set of answers by status.
macro_rules! answers {
    ($($(#[$doc:meta])* $name:ident { $($status:literal => $description:literal),+ $(,)? })*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> Answers {
                BTreeMap::from([$((
                    $status.to_string(),
                    RefOr::T(ResponseBuilder::new().description($description).build()),
                )),+])
            }
        }
    )*};
}

/// A set made of other sets.
macro_rules! union {
    ($($(#[$doc:meta])* $name:ident = $($part:ty)|+;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> Answers {
                let mut all = Answers::new();
                $(all.append(&mut <$part as utoipa::IntoResponses>::responses());)+
                all
            }
        }
    )*};
}

answers! {
    /// A JSON body that is not JSON, or not sent as JSON.
    JsonBody {
        400 => "The body is not valid JSON",
        413 => "The body is too large",
        415 => "The body is not sent as application/json",
    }
    Unauthenticated { 401 => "No valid credential" }
    /// Only where the route checks a role or an API key's scopes.
    Forbidden { 403 => "The credential's role or scopes do not allow it" }
    /// What a business may do only once its owner's email is verified (connect WhatsApp, book).
    ForbiddenOrUnverified { 403 => "The credential's role or scopes do not allow it, or the business's email is not verified yet (type email-unverified)" }
    NotFound { 404 => "Not found (or another tenant's)" }
    Conflict { 409 => "It conflicts with the current state (the detail says how)" }
    /// A booking's time.
    SlotTaken { 409 => "The time is not free (the detail lists the times still free), or the booking's state does not allow it" }
    /// A resource others may hold too (a slug, an email, a number).
    Taken { 409 => "Already taken (the field is named)" }
    /// A POST that honours `Idempotency-Key` may also meet a key in use.
    KeyedConflict { 409 => "It conflicts with the current state, or a request with this Idempotency-Key is still running (Retry-After)" }
    Invalid { 422 => "A field is not valid (the field is named)" }
    /// A POST that honours `Idempotency-Key`.
    InvalidOrKeyReused { 422 => "A field is not valid (the field is named), or the Idempotency-Key was used for another request" }
    BadParameter { 422 => "A parameter is not valid (the parameter is named)" }
    PreconditionFailed { 412 => "If-Match does not match the current version" }
    Suspended { 423 => "The tenant is suspended (with the reason)" }
    /// A plan's limit or the lack of a subscription stops it (`upgrade_url` in the body).
    PaymentRequired { 402 => "The plan does not allow it now: a limit is reached or there is no subscription (upgrade_url says where to fix it)" }
    RateLimited { 429 => "Over a rate limit (Retry-After)" }
    /// The executor gave up on a command whose streams kept moving.
    Busy { 503 => "Too many concurrent changes; try again (Retry-After)" }
    NotCaughtUp { 503 => "The read models have not reached the consistency token yet (Retry-After)" }
}

union! {
    /// Any authenticated tenant route.
    TenantCaller = Unauthenticated | Suspended | RateLimited;
    /// Any query-API read: a consistency token that is not one is a bad parameter, one not
    /// reached in time a 503.
    TenantReader = Unauthenticated | Suspended | RateLimited | BadParameter | NotCaughtUp;
}

/// A header documented once: its name, whether it is required, and what it does.
macro_rules! headers {
    ($($(#[$doc:meta])* $name:ident = $header:literal, $description:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                vec![utoipa::openapi::path::ParameterBuilder::new()
                    .name($header)
                    .parameter_in(utoipa::openapi::path::ParameterIn::Header)
                    .required(utoipa::openapi::Required::False)
                    .description(Some($description))
                    .schema(Some(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::String)))
                    .build()]
            }
        }
    )*};
}

headers! {
    /// Every authenticated POST of the command API honours it.
    IdempotencyKey = "Idempotency-Key", "The same key and body give the same answer (Idempotent-Replayed: true); the same key with another body is refused";
    /// Every read of the query API honours it.
    ConsistencyToken = "X-Consistency-Token", "Wait (up to 2 s) until the read models include the write that answered this token";
}
