//! Errors as `application/problem+json` (RFC 9457), the one error shape of every service.
//!
//! A handler returns `Result<_, Problem>`. Client mistakes say what is wrong and, for bad input,
//! which field; server failures are logged with their cause chain when they are answered, and
//! answered 500 without details. Every [`AppError`] a use case returns becomes a problem in
//! one place, `From<AppError> for Problem`.

use app::{AppError, Rejection};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::access::AccessError;
use domain::agenda::AgendaError;
use domain::billing::BillingError;
use domain::booking::BookingError;
use domain::bot_config::BotConfigError;
use domain::conversation::ConversationError;
use domain::tenant::TenantError;
use domain::webhook::WebhookError;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    /// A short, stable slug: `https://errors.booking.invalid/<kind>` in the body.
    pub kind: &'static str,
    pub title: String,
    pub detail: Option<String>,
    pub errors: Vec<FieldError>,
    /// Seconds, for `Retry-After` (a u32 keeps the type small; a day is 86,400).
    pub retry_after_secs: Option<u32>,
    /// Rarely set, so boxed: the type stays small for every `Result` it is the error of.
    extra: Option<Box<Extra>>,
}

#[derive(Debug, Clone, Default)]
struct Extra {
    /// What went wrong on our side (500s only): logged when answered, never sent.
    cause: Option<String>,
    /// RFC 9457 extension members (`upgrade_url`, ...).
    members: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &'static str, title: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            title: title.into(),
            detail: None,
            errors: Vec::new(),
            retry_after_secs: None,
            extra: None,
        }
    }

    /// An extension member of the body (RFC 9457), such as a link to act on.
    pub fn member(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.extra
            .get_or_insert_with(Default::default)
            .members
            .insert(name.to_owned(), value.into());
        self
    }

    /// An extension member's value.
    pub fn member_value(&self, name: &str) -> Option<&serde_json::Value> {
        self.extra.as_ref()?.members.get(name)
    }

    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.errors.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(u32::try_from(secs).unwrap_or(u32::MAX));
        self
    }

    /// 422: the request is well-formed but a field is not acceptable.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "A field is not valid",
        )
        .field(field, message)
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "The request is malformed",
        )
        .detail(detail)
    }

    /// 401, without saying which part of the credential failed.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid credentials",
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", "Not allowed").detail(detail)
    }

    /// 404; also for another tenant's ids, so that existence does not leak.
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("No such {what}"),
        )
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "conflict",
            "The request conflicts with the current state",
        )
        .detail(detail)
    }

    pub fn locked(reason: impl Into<String>) -> Self {
        Self::new(
            StatusCode::LOCKED,
            "tenant-suspended",
            "The account is suspended",
        )
        .detail(reason)
    }

    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "version-mismatch",
            "The resource changed since it was read",
        )
        .detail(detail)
    }

    pub fn too_many_requests(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many requests",
        )
        .retry_after(retry_after_secs)
    }

    /// 500. The cause, with its chain, is logged when the problem is answered; never sent.
    pub fn internal(cause: impl std::fmt::Debug) -> Self {
        let mut problem = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side",
        );
        problem.extra.get_or_insert_with(Default::default).cause = Some(format!("{cause:?}"));
        problem
    }

    /// 503 for a failure that is Postgres being away ([`eventstore::caused_by_outage`]), else
    /// 500: the cause is logged either way, never sent.
    pub fn failure(cause: &(dyn std::error::Error + 'static)) -> Self {
        if !eventstore::caused_by_outage(cause) {
            return Self::internal(Chain(cause));
        }
        let mut problem = Self::unavailable("the database cannot be reached; try again shortly", 1);
        problem.extra.get_or_insert_with(Default::default).cause =
            Some(format!("{:?}", Chain(cause)));
        problem
    }

    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Temporarily unavailable",
        )
        .detail(detail)
        .retry_after(retry_after_secs)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(flatten)]
    members: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        if let Some(cause) = self.extra.as_ref().and_then(|e| e.cause.as_ref()) {
            if self.status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(error = %cause, "a dependency is away; answered 503");
            } else {
                tracing::error!(error = %cause, "request failed");
            }
        }
        let body = Body {
            kind: format!("https://errors.booking.invalid/{}", self.kind),
            title: &self.title,
            status: self.status.as_u16(),
            detail: self.detail.as_deref(),
            errors: &self.errors,
            members: self.extra.as_ref().map(|e| &e.members),
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Every application error as problem+json: the one place a use case's outcome becomes an
/// HTTP answer.
impl From<AppError> for Problem {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Rejected(rejection) => rejected(rejection),
            AppError::Invalid(fields) => {
                let title = if fields.len() == 1 {
                    "A field is not valid"
                } else {
                    "Some fields are not valid"
                };
                fields.into_iter().fold(
                    Problem::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid-field", title),
                    |p, f| p.field(f.field, f.message),
                )
            }
            AppError::NotFound(what) => Problem::not_found(what),
            AppError::Conflict { detail, field } => {
                let problem = Problem::conflict(detail);
                match field {
                    Some(f) => problem.field(f.field, f.message),
                    None => problem,
                }
            }
            AppError::SlotTaken { free } => {
                let free: Vec<String> = free.iter().map(|t| t.to_rfc3339()).collect();
                Problem::new(StatusCode::CONFLICT, "slot-taken", "That time is not free")
                    .detail(if free.is_empty() {
                        "nothing is free that day".to_owned()
                    } else {
                        format!("free that day: {}", free.join(", "))
                    })
                    .field("start", "not a free time for this service")
            }
            AppError::Forbidden(detail) => Problem::forbidden(detail),
            AppError::Unauthenticated => Problem::unauthorized(),
            AppError::SecondFactorRequired => Problem::new(
                StatusCode::UNAUTHORIZED,
                "mfa-required",
                "A one-time code is required",
            )
            .detail("send `totp` with the code from your authenticator app"),
            AppError::Suspended(reason) => Problem::locked(reason),
            AppError::PaymentRequired {
                detail,
                upgrade_url,
            } => Problem::new(
                StatusCode::PAYMENT_REQUIRED,
                "payment-required",
                "The plan does not allow this now",
            )
            .detail(detail)
            .member("upgrade_url", upgrade_url),
            AppError::IdempotencyMismatch => Problem::invalid(
                "Idempotency-Key",
                "this key was already used for a different request",
            ),
            AppError::Busy => Problem::unavailable("too many concurrent changes; try again", 1),
            AppError::Unavailable {
                detail,
                retry_after_secs,
            } => Problem::unavailable(detail, retry_after_secs),
            AppError::Internal(cause) => Problem::failure(cause.as_ref()),
        }
    }
}

/// A domain rejection: what the aggregate refused, as the client should hear it.
fn rejected(rejection: Rejection) -> Problem {
    match rejection {
        Rejection::Booking(BookingError::NotFound) => Problem::not_found("booking"),
        Rejection::Booking(BookingError::InThePast) => {
            Problem::invalid("start", "the time is in the past")
        }
        Rejection::Booking(BookingError::SameTime) => {
            Problem::invalid("start", "that is the time it already has")
        }
        Rejection::Agenda(AgendaError::SlotTaken) => Problem::new(
            StatusCode::CONFLICT,
            "slot-taken",
            "That time is no longer free",
        ),
        // The agenda's other refusals mean booking and agenda disagree: ours to fix.
        Rejection::Agenda(other) => Problem::internal(other),
        Rejection::BotConfig(BotConfigError::VersionMismatch { expected, actual }) => {
            Problem::precondition_failed(format!(
                "you edited version {expected}; the configuration is at version {actual}"
            ))
        }
        Rejection::BotConfig(BotConfigError::Invalid(problems)) => problems.into_iter().fold(
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "The configuration is not valid",
            ),
            |p, c| p.field(c.field, c.message),
        ),
        Rejection::BotConfig(BotConfigError::UnknownService) => Problem::not_found("service"),
        Rejection::Member(AccessError::NotFound) => Problem::not_found("user"),
        Rejection::ApiKey(AccessError::NotFound) => Problem::not_found("API key"),
        Rejection::ApiKey(AccessError::NoScopes) => {
            Problem::invalid("scopes", "at least one scope")
        }
        Rejection::ApiKey(AccessError::ExpiryInThePast) => {
            Problem::invalid("expires_at", "must be in the future")
        }
        Rejection::Tenant(TenantError::NotOnboarded) => Problem::not_found("tenant"),
        Rejection::Tenant(TenantError::EmailNotVerified) => Problem::new(
            StatusCode::FORBIDDEN,
            "email-unverified",
            "Verify your email first",
        )
        .detail(
            "follow the link emailed to the business's contact address \
             (POST /v1/auth/verify-email/resend sends another)",
        ),
        Rejection::Billing(BillingError::OverLimit {
            plan,
            metric,
            used,
            limit,
        }) => Problem::conflict(format!(
            "this month's {metric} ({used}) exceed the {limit} of the {} plan",
            plan.spec().name
        ))
        .field("plan", format!("{metric}: {used} of {limit}"))
        .member("limit", metric),
        Rejection::Billing(BillingError::NotStarted) => Problem::not_found("subscription"),
        Rejection::Webhook(WebhookError::NotFound) => Problem::not_found("webhook endpoint"),
        Rejection::Webhook(WebhookError::NoSuchEvent) => Problem::not_found("event"),
        Rejection::Webhook(WebhookError::DescriptionTooLong) => {
            Problem::invalid("description", "at most 200 characters")
        }
        Rejection::Conversation(ConversationError::NoCustomer) => {
            Problem::not_found("conversation")
        }
        Rejection::Conversation(e @ (ConversationError::EmptyReply | ConversationError::ReplyTooLong)) => {
            Problem::invalid("text", e.to_string())
        }
        Rejection::Conversation(e @ ConversationError::OutsideServiceWindow { .. }) => {
            Problem::conflict(e.to_string()).field(
                "text",
                "outside WhatsApp's 24-hour window: add a follow-up template to the bot's messaging settings",
            )
        }
        other => Problem::conflict(other.to_string()),
    }
}

impl From<sqlx::Error> for Problem {
    fn from(err: sqlx::Error) -> Self {
        Problem::failure(&err)
    }
}

impl From<anyhow::Error> for Problem {
    fn from(err: anyhow::Error) -> Self {
        Problem::failure(err.as_ref())
    }
}

/// An error with its causes, as `{:?}` of an `anyhow::Error` shows them.
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        for cause in std::iter::successors(self.0.source(), |e| e.source()) {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

/// A JSON body whose errors name the field at fault (`$.services[2].price`), as problem+json.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Send a JSON body with Content-Type: application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| match e.status() {
                StatusCode::PAYLOAD_TOO_LARGE => Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "The body is larger than this endpoint takes",
                ),
                _ => Problem::bad_request(e.body_text()),
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, naming the field at fault: 400 for malformed JSON (also bytes after
/// the value, or nesting past serde_json's limit of 128), 422 for a body that is not an object
/// or nests deeper than 16,
/// for a string with a NUL character (which no text column can hold), for a field that does
/// not fit and for one the request does not have (a typo is never dropped silently).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| Problem::bad_request(format!("malformed JSON: {err}")))?;
    if !value.is_object() {
        return Err(Problem::invalid("body", "a JSON object"));
    }
    if depth(&value) > MAX_DEPTH {
        return Err(Problem::invalid(
            "body",
            format!("nested at most {MAX_DEPTH} levels deep"),
        ));
    }
    if let Some(field) = nul_at(&value, String::new()) {
        return Err(Problem::invalid(field, "must not contain a NUL character"));
    }
    let mut unknown = Vec::new();
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(field_of(&path));
    let parsed =
        serde_path_to_error::deserialize(serde_ignored::Deserializer::new(value, &mut note))
            .map_err(|err| {
                let path = err.path().to_string();
                let field = if path == "." { "body".to_owned() } else { path };
                Problem::invalid(field, err.into_inner().to_string())
            })?;
    match unknown.first() {
        None => Ok(parsed),
        Some(field) => Err(Problem::invalid(
            field.clone(),
            "is not a field of this request",
        )),
    }
}

/// How deep a request body may nest: far more than any request here needs, far less than
/// what could cost the server.
const MAX_DEPTH: usize = 16;

fn depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// An ignored field's path, written as `serde_path_to_error` writes one (`hours.friday[0]`).
fn field_of(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_of(parent)),
        Path::Map { parent, key } => match field_of(parent) {
            p if p.is_empty() => key.clone(),
            p => format!("{p}.{key}"),
        },
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_of(parent),
    }
}

/// The path (as `serde_path_to_error` writes it: `customer.name`, `services[2]`) of the first
/// string or key holding a NUL character.
fn nul_at(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    let field = |path: &str| {
        if path.is_empty() {
            "body".to_owned()
        } else {
            path.to_owned()
        }
    };
    match value {
        Value::String(s) if s.contains('\0') => Some(field(&path)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| nul_at(item, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(key, item)| {
            let inner = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                return Some(field(&path));
            }
            nul_at(item, inner)
        }),
        _ => None,
    }
}

/// A body that may be left out: empty means `T::default()`.
pub fn parse_optional_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(bytes)
    }
}

/// Answers for what no handler takes, in the same shape as every other error: an unknown path
/// (404) and a known path with another method (405).
pub fn with_fallbacks<S: Clone + Send + Sync + 'static>(
    router: axum::Router<S>,
) -> axum::Router<S> {
    router
        .fallback(|| async { Problem::not_found("route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "This path does not take that method",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(err: AppError) -> (u16, Option<String>, Vec<String>, String) {
        let problem = Problem::from(err);
        let fields = problem.errors.iter().map(|e| e.field.clone()).collect();
        let retry = problem.retry_after_secs.map(|s| s.to_string());
        (
            problem.status.as_u16(),
            retry,
            fields,
            problem.kind.to_owned(),
        )
    }

    #[test]
    fn every_application_error_has_one_answer() {
        assert_eq!(
            answer(AppError::IdempotencyMismatch),
            (
                422,
                None,
                vec!["Idempotency-Key".into()],
                "invalid-field".into()
            )
        );
        assert_eq!(
            answer(AppError::Busy),
            (503, Some("1".into()), vec![], "unavailable".into())
        );
        assert_eq!(
            answer(AppError::SlotTaken { free: vec![] }),
            (409, None, vec!["start".into()], "slot-taken".into())
        );
        assert_eq!(
            answer(AppError::taken(
                "slug",
                "already in use",
                "that slug is taken"
            )),
            (409, None, vec!["slug".into()], "conflict".into())
        );
        assert_eq!(answer(AppError::NotFound("booking")).0, 404);
        assert_eq!(answer(AppError::Suspended("unpaid".into())).0, 423);
        assert_eq!(answer(AppError::SecondFactorRequired).3, "mfa-required");
        assert_eq!(
            answer(BookingError::InThePast.into()),
            (422, None, vec!["start".into()], "invalid-field".into())
        );
        assert_eq!(
            answer(AppError::Rejected(Rejection::ApiKey(AccessError::NotFound))).0,
            404
        );
    }

    #[test]
    fn a_failure_of_ours_says_nothing_and_is_logged_when_answered() {
        let problem = Problem::from(AppError::internal("the disk is on fire"));
        assert_eq!(problem.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(problem.detail, None);
        assert!(
            problem
                .extra
                .as_ref()
                .unwrap()
                .cause
                .as_deref()
                .unwrap()
                .contains("the disk is on fire")
        );
        let body = problem.into_response();
        assert_eq!(body.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn postgres_out_of_reach_is_a_503_to_retry_wherever_it_is_met() {
        let lost = || sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let answers = [
            Problem::from(lost()),
            Problem::from(anyhow::Error::new(lost()).context("reading the tenant")),
            Problem::from(AppError::Internal(
                anyhow::Error::new(eventstore::AppendError::Database(lost()))
                    .context("failed to commit a unit of work"),
            )),
        ];
        for problem in answers {
            assert_eq!(problem.status, StatusCode::SERVICE_UNAVAILABLE);
            let response = problem.into_response();
            assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        }
        assert_eq!(
            Problem::from(sqlx::Error::RowNotFound).status,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Customer {
        phone: String,
        name: Option<String>,
    }

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Body {
        slug: String,
        customer: Customer,
        tags: Vec<String>,
    }

    fn refusal(body: &str) -> (u16, Vec<String>) {
        let problem = parse_json::<Body>(body.as_bytes()).expect_err(body);
        let fields = problem.errors.iter().map(|e| e.field.clone()).collect();
        (problem.status.as_u16(), fields)
    }

    #[test]
    fn a_body_is_one_json_object_without_nul_characters() {
        let good = r#"{"slug": "a", "customer": {"phone": "+1", "name": null}, "tags": ["x"]}"#;
        assert_eq!(parse_json::<Body>(good.as_bytes()).unwrap().slug, "a");
        assert_eq!(
            refusal(&format!("{good} {{}}")),
            (400, vec![]),
            "trailing bytes"
        );
        assert_eq!(refusal(&format!("{good}x")), (400, vec![]));
        assert_eq!(refusal("{nope"), (400, vec![]));
        assert_eq!(
            refusal(r#"["a", {"phone": "+1", "name": null}, []]"#),
            (422, vec!["body".into()]),
            "a positional array is not an object"
        );
        assert_eq!(refusal("null"), (422, vec!["body".into()]));
        assert_eq!(
            refusal(
                r#"{"slug": "a", "customer": {"phone": "+1", "name": "A\u0000B"}, "tags": []}"#
            ),
            (422, vec!["customer.name".into()])
        );
        assert_eq!(
            refusal(r#"{"slug": "a", "customer": {"phone": "+1"}, "tags": ["x", "\u0000"]}"#),
            (422, vec!["tags[1]".into()])
        );
        assert_eq!(
            refusal(r#"{"slug": "a", "customer": {"phone": "+1", "na\u0000me": 1}, "tags": []}"#),
            (422, vec!["customer".into()])
        );
        assert_eq!(
            refusal(r#"{"slug": 1, "customer": {"phone": "+1"}, "tags": []}"#),
            (422, vec!["slug".into()])
        );
        assert_eq!(
            refusal(r#"{"slug": "a", "customer": {"phone": 5}, "tags": []}"#),
            (422, vec!["customer.phone".into()])
        );
        assert_eq!(
            refusal(r#"{"slug": "a", "customer": {"phone": "+1", "nmae": "A"}, "tags": []}"#),
            (422, vec!["customer.nmae".into()]),
            "a typo is not dropped"
        );
        assert_eq!(
            refusal(r#"{"slug": "a", "customer": {"phone": "+1"}, "tags": [], "extra": 1}"#),
            (422, vec!["extra".into()])
        );
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert_eq!(
            refusal(&format!(r#"{{"slug": {deep}}}"#)).0,
            400,
            "past serde_json's 128"
        );
        let deep = format!("{}{}", "[".repeat(20), "]".repeat(20));
        assert_eq!(
            refusal(&format!(r#"{{"slug": {deep}}}"#)),
            (422, vec!["body".into()]),
            "past 16"
        );
    }
}
