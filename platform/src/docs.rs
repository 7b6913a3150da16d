//! The OpenAPI document at `/openapi.json` and a self-contained page at `/docs` that renders
//! it with no network access (no CDN, no external script): what each service serves about
//! itself.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, RefOr, ResponseBuilder, Schema, Type};

const PAGE: &str = include_str!("../assets/docs.html");
const ASYNCAPI_PAGE: &str = include_str!("../assets/asyncapi.html");

/// RFC 9457 problem details, the one error body of every endpoint.
pub fn problem_schema() -> Schema {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    Schema::Object(
        ObjectBuilder::new()
            .property(
                "type",
                string().description(Some("https://errors.booking.invalid/<kind>")),
            )
            .property("title", string())
            .property("status", ObjectBuilder::new().schema_type(Type::Integer))
            .property("detail", string())
            .property(
                "errors",
                utoipa::openapi::schema::ArrayBuilder::new().items(
                    ObjectBuilder::new()
                        .property("field", string())
                        .property("message", string()),
                ),
            )
            .required("type")
            .required("title")
            .required("status")
            .description(Some("application/problem+json"))
            .build(),
    )
}

/// Adds the bearer scheme, the problem schema, and a problem+json answer for every error code
/// an operation lists without a body.
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("An access token (JWT) or an API key (`bk_live_…`)"))
                .build(),
        ),
    );
    components
        .schemas
        .insert("Problem".into(), RefOr::T(problem_schema()));
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
        {
            for parameter in op.parameters.iter_mut().flatten() {
                if let RefOr::T(parameter) = parameter {
                    shared_parameter(parameter);
                }
            }
            for (code, response) in op.responses.responses.iter_mut() {
                let is_error = code.starts_with('4') || code.starts_with('5');
                if let RefOr::T(r) = response
                    && is_error
                    && r.content.is_empty()
                {
                    *response = RefOr::T(
                        ResponseBuilder::new()
                            .description(r.description.clone())
                            .content(
                                "application/problem+json",
                                ContentBuilder::new()
                                    .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                                    .build(),
                            )
                            .build(),
                    );
                }
            }
        }
    }
    // Text a person reads: the pattern of visible text (`schemas::VISIBLE_TEXT`).
    let mut json = serde_json::to_value(&doc).expect("the OpenAPI document serializes");
    crate::schemas::add_visible_text_patterns(&mut json);
    serde_json::from_value(json).expect("the OpenAPI document deserializes")
}

/// A parameter that means the same on every route gets the same, exact schema everywhere: what
/// the server accepts, no more and no less (a header is never `null`; the opaque values name
/// their own formats, which a client or a test generator can recognise).
fn shared_parameter(parameter: &mut utoipa::openapi::path::Parameter) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::schema::{SchemaFormat, SchemaType};
    let string = |format: &str| {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom(format.into())))
    };
    let schema = match (&parameter.parameter_in, parameter.name.as_str()) {
        (ParameterIn::Header, "X-Consistency-Token") => string("consistency-token")
            .pattern(Some(r"^[0-9]{1,19}\.[0-9]{1,19}$"))
            .build(),
        // `"7"`, `7` or `W/"7"`: a version the client read.
        (ParameterIn::Header, "If-Match") => ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(r#"^(W/)?("[0-9]{1,9}"|[0-9]{1,9})$"#))
            .build(),
        (ParameterIn::Header, "Idempotency-Key") => string("idempotency-key")
            .min_length(Some(1))
            .max_length(Some(200))
            .build(),
        (ParameterIn::Query, "cursor") => string("cursor").min_length(Some(1)).build(),
        (ParameterIn::Query, "limit") => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(200))
            .default(Some(serde_json::json!(50)))
            .build(),
        (ParameterIn::Header, _) => {
            if let Some(RefOr::T(Schema::Object(object))) = &mut parameter.schema
                && let SchemaType::Array(types) = &object.schema_type
            {
                let types: Vec<Type> = types
                    .iter()
                    .filter(|t| **t != Type::Null)
                    .cloned()
                    .collect();
                if let [only] = types.as_slice() {
                    object.schema_type = SchemaType::Type(only.clone());
                }
            }
            return;
        }
        _ => return,
    };
    parameter.schema = Some(RefOr::T(Schema::Object(schema)));
}

/// `GET /openapi.json` and `GET /docs`.
pub fn router<S: Clone + Send + Sync + 'static>(doc: utoipa::openapi::OpenApi) -> Router<S> {
    let json = doc
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { ([(header::CONTENT_TYPE, "application/json")], json).into_response() }
            }),
        )
        .route("/docs", get(|| async { Html(PAGE) }))
}

/// `GET /asyncapi.json` (an AsyncAPI 3.0 document, committed beside the code that generates it)
/// and `GET /asyncapi`, a self-contained page that renders it.
pub fn asyncapi_router<S: Clone + Send + Sync + 'static>(json: &'static str) -> Router<S> {
    Router::new()
        .route(
            "/asyncapi.json",
            get(move || async move {
                ([(header::CONTENT_TYPE, "application/json")], json).into_response()
            }),
        )
        .route("/asyncapi", get(|| async { Html(ASYNCAPI_PAGE) }))
}
