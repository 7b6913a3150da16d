//! A local Stripe for the demo and the tests: a real HTTP server speaking Stripe's wire format
//! (form-encoded requests, JSON objects with every field async-stripe requires), with state.
//!
//! - Customers, and the catalogue's prices (`{plan}_{cycle}` lookup keys, seeded from
//!   `domain::plan`).
//! - Checkout Sessions in subscription mode, with a small hosted page: paying there (any card
//!   but `4000000000000002`, which is declined) creates the subscription and its first paid
//!   invoice.
//! - Subscriptions: retrieve, change the price (the difference is prorated and invoiced at
//!   once), cancel at the period end.
//! - Billing meter events, deduplicated by `identifier`.
//! - A test clock (`POST /_fake/clock/advance`): periods renew with an invoice, a customer
//!   marked by `POST /_fake/customers/{id}/fail_next_charge` has the next charge declined
//!   (the invoice stays open and is retried three days later), subscriptions ending at the
//!   period end are deleted.
//! - Webhooks signed like Stripe's (`Stripe-Signature: t=...,v1=...`), delivered at least once
//!   with retries; `POST /_fake/webhooks` sets the endpoint and can repeat every event and
//!   deliver batches in reverse order.
//! - `POST /_fake/outage` makes the API answer 503 (Stripe down), and idempotency keys replay
//!   the first answer.

#![recursion_limit = "256"]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

/// The API version the objects are rendered in (async-stripe's).
pub const API_VERSION: &str = "2026-09-30.endive";
/// The card that is always declined.
pub const DECLINED_CARD: &str = "4000000000000002";
/// How long after a failed charge Stripe tries again.
pub const RETRY_AFTER_SECS: i64 = 3 * 86_400;

type Form = HashMap<String, String>;

#[derive(Clone)]
pub struct Fake {
    state: Arc<Mutex<FakeState>>,
    http: reqwest::Client,
}

#[derive(Default)]
struct FakeState {
    /// Seconds the test clock is ahead of the real one.
    offset: i64,
    seq: u64,
    down: bool,
    customers: BTreeMap<String, Customer>,
    prices: Vec<PriceSpec>,
    sessions: BTreeMap<String, Session>,
    subscriptions: BTreeMap<String, Sub>,
    invoices: BTreeMap<String, Invoice>,
    meter_events: BTreeMap<String, Value>,
    events: Vec<Value>,
    idempotent: HashMap<String, (u16, Value)>,
    webhook: Option<WebhookTarget>,
    deliveries: Vec<Delivery>,
    /// Where the hosted pages are served (this server's own address, ending in `/`).
    public_url: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct WebhookTarget {
    pub url: String,
    pub secret: String,
    /// Extra deliveries of every event (0: once).
    #[serde(default)]
    pub repeat: u32,
    /// Deliver the events of one change in reverse order.
    #[serde(default)]
    pub reverse: bool,
}

/// One attempt to deliver an event.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Delivery {
    pub event_id: String,
    pub event_type: String,
    pub status: Option<u16>,
}

#[derive(Clone)]
struct PriceSpec {
    id: String,
    lookup_key: String,
    product: String,
    name: String,
    amount: i64,
    interval: &'static str,
}

#[derive(serde::Serialize, Deserialize)]
struct Customer {
    id: String,
    email: Option<String>,
    name: Option<String>,
    metadata: BTreeMap<String, String>,
    fail_next_charge: bool,
    created: i64,
}

#[derive(serde::Serialize, Deserialize)]
struct Session {
    id: String,
    customer: String,
    price: String,
    metadata: BTreeMap<String, String>,
    subscription_metadata: BTreeMap<String, String>,
    client_reference_id: Option<String>,
    success_url: Option<String>,
    cancel_url: Option<String>,
    subscription: Option<String>,
    created: i64,
}

#[derive(serde::Serialize, Deserialize)]
struct Sub {
    id: String,
    item: String,
    customer: String,
    price: String,
    status: String,
    period_start: i64,
    period_end: i64,
    cancel_at_period_end: bool,
    metadata: BTreeMap<String, String>,
    created: i64,
    latest_invoice: Option<String>,
}

#[derive(serde::Serialize, Deserialize)]
struct Invoice {
    id: String,
    number: String,
    customer: String,
    subscription: String,
    metadata: BTreeMap<String, String>,
    amount_due: i64,
    amount_paid: i64,
    status: String,
    period_start: i64,
    period_end: i64,
    attempt_count: u64,
    next_attempt: Option<i64>,
    created: i64,
}

/// What a restarted fake keeps (Stripe keeps an account's objects): customers, sessions,
/// subscriptions, invoices, meter events and the event log, with the id counter and the clock.
/// Prices come from the plans; the webhook target and fault injection from the new run.
#[derive(Deserialize)]
struct Saved {
    offset: i64,
    seq: u64,
    customers: BTreeMap<String, Customer>,
    sessions: BTreeMap<String, Session>,
    subscriptions: BTreeMap<String, Sub>,
    invoices: BTreeMap<String, Invoice>,
    meter_events: BTreeMap<String, Value>,
    events: Vec<Value>,
}

impl Fake {
    /// The account's objects as JSON (see [`Fake::restore`]).
    pub fn save(&self) -> String {
        let state = self.state.lock().expect("not poisoned");
        // The same fields as `Saved`, serialized in place.
        serde_json::json!({
            "offset": state.offset,
            "seq": state.seq,
            "customers": &state.customers,
            "sessions": &state.sessions,
            "subscriptions": &state.subscriptions,
            "invoices": &state.invoices,
            "meter_events": &state.meter_events,
            "events": &state.events,
        })
        .to_string()
    }

    /// Takes back what [`Fake::save`] wrote, replacing the account's objects.
    pub fn restore(&self, text: &str) -> anyhow::Result<()> {
        let saved: Saved = serde_json::from_str(text)?;
        let mut state = self.state.lock().expect("not poisoned");
        state.offset = saved.offset;
        state.seq = saved.seq;
        state.customers = saved.customers;
        state.sessions = saved.sessions;
        state.subscriptions = saved.subscriptions;
        state.invoices = saved.invoices;
        state.meter_events = saved.meter_events;
        state.events = saved.events;
        Ok(())
    }
}

impl FakeState {
    fn now(&self) -> i64 {
        Utc::now().timestamp() + self.offset
    }

    fn id(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!(
            "{prefix}_{:06}{}",
            self.seq,
            &uuid::Uuid::new_v4().simple().to_string()[..10]
        )
    }

    fn price(&self, id: &str) -> Option<&PriceSpec> {
        self.prices.iter().find(|p| p.id == id)
    }

    fn event(&mut self, kind: &str, object: Value) -> Value {
        let id = self.id("evt");
        let event = json!({
            "id": id, "object": "event", "api_version": API_VERSION, "created": self.now(),
            "data": {"object": object}, "livemode": false, "pending_webhooks": 1,
            "request": {"id": null, "idempotency_key": null}, "type": kind,
        });
        self.events.push(event.clone());
        event
    }
}

impl Fake {
    /// A fake with the catalogue's prices.
    pub fn new() -> Self {
        let mut state = FakeState::default();
        for spec in domain::plan::catalogue() {
            for cycle in domain::plan::Cycle::ALL {
                let product = format!("prod_{}", spec.plan.as_str());
                state.prices.push(PriceSpec {
                    id: format!("price_{}_{}", spec.plan.as_str(), cycle.as_str()),
                    lookup_key: format!("{}_{}", spec.plan.as_str(), cycle.as_str()),
                    product,
                    name: spec.name.to_owned(),
                    amount: spec.price(*cycle).minor(),
                    interval: match cycle {
                        domain::plan::Cycle::Monthly => "month",
                        domain::plan::Cycle::Yearly => "year",
                    },
                });
            }
        }
        Self {
            state: Arc::new(Mutex::new(state)),
            http: reqwest::Client::new(),
        }
    }

    /// Serves on a free port of 127.0.0.1; the base URL (ending in `/`).
    pub async fn spawn(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let url = format!("http://{}/", listener.local_addr().expect("an address"));
        self.set_public_url(&url);
        tokio::spawn(async move {
            let _ = axum::serve(listener, router(self)).await;
        });
        url
    }

    /// Where hosted pages link to (set by [`Fake::spawn`], or by `main`).
    pub fn set_public_url(&self, url: &str) {
        self.state.lock().expect("not poisoned").public_url = url.to_owned();
    }

    pub fn configure_webhooks(&self, target: WebhookTarget) {
        self.state.lock().expect("not poisoned").webhook = Some(target);
    }

    /// Every event made so far, oldest first.
    pub fn events(&self) -> Vec<Value> {
        self.state.lock().expect("not poisoned").events.clone()
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.state.lock().expect("not poisoned").deliveries.clone()
    }

    /// The meter events received (one per identifier).
    pub fn meter_events(&self) -> Vec<Value> {
        let state = self.state.lock().expect("not poisoned");
        state.meter_events.values().cloned().collect()
    }

    pub fn set_down(&self, down: bool) {
        self.state.lock().expect("not poisoned").down = down;
    }

    pub fn fail_next_charge(&self, customer: &str) -> bool {
        let mut state = self.state.lock().expect("not poisoned");
        match state.customers.get_mut(customer) {
            Some(c) => {
                c.fail_next_charge = true;
                true
            }
            None => false,
        }
    }

    /// Pays a Checkout Session as the hosted page does; the URL it redirects to.
    pub fn pay(&self, session_id: &str, card: &str) -> Result<Option<String>, String> {
        let events = {
            let mut state = self.state.lock().expect("not poisoned");
            pay(&mut state, session_id, card)?
        };
        let redirect = {
            let state = self.state.lock().expect("not poisoned");
            state
                .sessions
                .get(session_id)
                .and_then(|s| s.success_url.clone())
        };
        self.deliver(events);
        Ok(redirect)
    }

    /// Moves the test clock on: renewals, retries and period-end cancellations fall due.
    pub fn advance(&self, seconds: i64) {
        let events = {
            let mut state = self.state.lock().expect("not poisoned");
            state.offset += seconds;
            tick(&mut state)
        };
        self.deliver(events);
    }

    /// Sends `events` to the webhook endpoint, each until it is acknowledged with a 2xx.
    fn deliver(&self, events: Vec<Value>) {
        let Some(target) = self.state.lock().expect("not poisoned").webhook.clone() else {
            return;
        };
        let mut queue: Vec<Value> = Vec::new();
        for event in events {
            for _ in 0..=target.repeat {
                queue.push(event.clone());
            }
        }
        if target.reverse {
            queue.reverse();
        }
        let fake = self.clone();
        tokio::spawn(async move {
            for event in queue {
                let (fake, target) = (fake.clone(), target.clone());
                // In order, but a retry never holds the others back: at least once, any order.
                let first = fake.post_event(&target, &event).await;
                if !first {
                    tokio::spawn(async move {
                        let mut wait = Duration::from_millis(100);
                        for _ in 0..30 {
                            tokio::time::sleep(wait).await;
                            if fake.post_event(&target, &event).await {
                                return;
                            }
                            wait = (wait * 2).min(Duration::from_secs(5));
                        }
                    });
                }
            }
        });
    }

    async fn post_event(&self, target: &WebhookTarget, event: &Value) -> bool {
        let body = serde_json::to_string(event).expect("JSON");
        let signature = sign(&target.secret, Utc::now().timestamp(), &body);
        let status = self
            .http
            .post(&target.url)
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16());
        self.state
            .lock()
            .expect("not poisoned")
            .deliveries
            .push(Delivery {
                event_id: event["id"].as_str().unwrap_or_default().to_owned(),
                event_type: event["type"].as_str().unwrap_or_default().to_owned(),
                status,
            });
        status.is_some_and(|s| (200..300).contains(&s))
    }
}

impl Default for Fake {
    fn default() -> Self {
        Self::new()
    }
}

/// `Stripe-Signature` for `body` at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

pub fn router(fake: Fake) -> Router {
    Router::new()
        .route("/v1/customers", post(create_customer))
        .route("/v1/customers/{id}", get(retrieve_customer))
        .route("/v1/prices", get(list_prices))
        .route("/v1/checkout/sessions", post(create_session))
        .route("/v1/checkout/sessions/{id}", get(retrieve_session))
        .route(
            "/v1/subscriptions/{id}",
            get(retrieve_subscription).post(update_subscription),
        )
        .route("/v1/invoices/{id}", get(retrieve_invoice))
        .route("/v1/billing/meter_events", post(create_meter_event))
        .route("/checkout/{id}", get(hosted_page))
        .route("/checkout/{id}/pay", post(hosted_pay))
        .route("/invoices/{id}", get(hosted_invoice))
        .route("/_fake/clock/advance", post(advance_clock))
        .route("/_fake/customers/{id}/fail_next_charge", post(fail_next))
        .route("/_fake/webhooks", post(set_webhooks).get(list_deliveries))
        .route("/_fake/outage", post(set_outage))
        .route("/_fake/meter_events", get(list_meter_events))
        .route("/_fake/events", get(list_events))
        .with_state(fake)
}

fn form(body: &Bytes) -> Form {
    form_urlencoded::parse(body).into_owned().collect()
}

/// `metadata[key]=value` pairs under `prefix`.
fn map_of(form: &Form, prefix: &str) -> BTreeMap<String, String> {
    form.iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix('['))
                .and_then(|rest| rest.strip_suffix(']'))
                .filter(|key| !key.contains('['))
                .map(|key| (key.to_owned(), v.clone()))
        })
        .collect()
}

fn error(status: StatusCode, kind: &str, message: &str, param: Option<&str>) -> Response {
    (
        status,
        Json(json!({"error": {"type": kind, "message": message, "param": param}})),
    )
        .into_response()
}

fn not_found(what: &str, id: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        &format!("No such {what}: '{id}'"),
        Some("id"),
    )
}

/// The API's gate: 503 while "down", and the first answer again for a repeated
/// `Idempotency-Key`.
fn gate(fake: &Fake, headers: &HeaderMap) -> Result<Option<String>, Box<Response>> {
    let state = fake.state.lock().expect("not poisoned");
    if state.down {
        return Err(Box::new(error(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "Stripe is unavailable (the fake's outage)",
            None,
        )));
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if let Some(key) = &key
        && let Some((status, body)) = state.idempotent.get(key)
    {
        let mut response = (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
            Json(body.clone()),
        )
            .into_response();
        response
            .headers_mut()
            .insert("idempotent-replayed", "true".parse().expect("a header"));
        return Err(Box::new(response));
    }
    Ok(key)
}

fn remember(fake: &Fake, key: Option<String>, body: &Value) {
    if let Some(key) = key {
        fake.state
            .lock()
            .expect("not poisoned")
            .idempotent
            .insert(key, (200, body.clone()));
    }
}

fn customer_json(c: &Customer) -> Value {
    json!({
        "id": c.id, "object": "customer", "created": c.created, "livemode": false,
        "email": c.email, "name": c.name, "metadata": c.metadata, "balance": 0,
        "delinquent": false, "invoice_prefix": c.id.trim_start_matches("cus_").chars().take(8).collect::<String>().to_uppercase(),
        "preferred_locales": [], "tax_exempt": "none",
    })
}

fn price_json(p: &PriceSpec, created: i64) -> Value {
    json!({
        "id": p.id, "object": "price", "active": true, "billing_scheme": "per_unit",
        "created": created, "currency": "eur", "livemode": false, "lookup_key": p.lookup_key,
        "metadata": {}, "nickname": p.name, "product": p.product, "tax_behavior": "unspecified",
        "type": "recurring", "unit_amount": p.amount, "unit_amount_decimal": p.amount.to_string(),
        "recurring": {"interval": p.interval, "interval_count": 1, "usage_type": "licensed"},
    })
}

fn plan_json(p: &PriceSpec, created: i64) -> Value {
    json!({
        "id": p.id, "object": "plan", "active": true, "amount": p.amount,
        "amount_decimal": p.amount.to_string(), "billing_scheme": "per_unit", "created": created,
        "currency": "eur", "interval": p.interval, "interval_count": 1, "livemode": false,
        "metadata": {}, "nickname": p.name, "product": p.product, "usage_type": "licensed",
    })
}

fn subscription_json(state: &FakeState, s: &Sub) -> Value {
    let price = state.price(&s.price).cloned().expect("a known price");
    json!({
        "id": s.id, "object": "subscription",
        "automatic_tax": {"enabled": false},
        "billing_cycle_anchor": s.created,
        "billing_mode": {"type": "classic"},
        "billing_schedules": [],
        "cancel_at_period_end": s.cancel_at_period_end,
        "cancel_at": if s.cancel_at_period_end { json!(s.period_end) } else { Value::Null },
        "collection_method": "charge_automatically",
        "created": s.created, "currency": "eur", "customer": s.customer,
        "discounts": [],
        "invoice_settings": {"issuer": {"type": "self"}},
        "items": {"object": "list", "has_more": false,
            "url": format!("/v1/subscription_items?subscription={}", s.id),
            "data": [{
                "id": s.item, "object": "subscription_item", "created": s.created,
                "current_period_start": s.period_start, "current_period_end": s.period_end,
                "discounts": [], "metadata": {}, "quantity": 1, "subscription": s.id,
                "price": price_json(&price, s.created), "plan": plan_json(&price, s.created),
                "tax_rates": [],
            }]},
        "latest_invoice": s.latest_invoice,
        "livemode": false, "metadata": s.metadata, "start_date": s.created, "status": s.status,
    })
}

fn invoice_json(state: &FakeState, i: &Invoice) -> Value {
    let url = format!("{}invoices/{}", state.public_url, i.id);
    json!({
        "id": i.id, "object": "invoice", "number": i.number, "customer": i.customer,
        "amount_due": i.amount_due, "amount_paid": i.amount_paid,
        "amount_remaining": i.amount_due - i.amount_paid, "amount_overpaid": 0,
        "amount_shipping": 0, "attempt_count": i.attempt_count, "attempted": i.attempt_count > 0,
        "automatic_tax": {"enabled": false}, "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically", "created": i.created, "currency": "eur",
        "default_tax_rates": [], "discounts": [], "issuer": {"type": "self"},
        "hosted_invoice_url": url, "livemode": false, "metadata": {},
        "next_payment_attempt": i.next_attempt,
        "lines": {"object": "list", "has_more": false, "url": format!("/v1/invoices/{}/lines", i.id),
            "data": [{
                "id": format!("il_{}", i.id.trim_start_matches("in_")), "object": "line_item",
                "amount": i.amount_due, "currency": "eur", "discountable": true, "discounts": [],
                "livemode": false, "metadata": {}, "subtotal": i.amount_due,
                "period": {"start": i.period_start, "end": i.period_end},
            }]},
        "parent": {"type": "subscription_details",
            "subscription_details": {"subscription": i.subscription, "metadata": i.metadata}},
        "payment_settings": {}, "period_start": i.period_start, "period_end": i.period_end,
        "post_payment_credit_notes_amount": 0, "pre_payment_credit_notes_amount": 0,
        "starting_balance": 0, "status": i.status,
        "status_transitions": {"paid_at": if i.status == "paid" { json!(i.created) } else { Value::Null }},
        "subtotal": i.amount_due, "total": i.amount_due,
    })
}

fn session_json(state: &FakeState, s: &Session) -> Value {
    let public = &state.public_url;
    let complete = s.subscription.is_some();
    json!({
        "id": s.id, "object": "checkout.session", "automatic_tax": {"enabled": false},
        "cancel_url": s.cancel_url, "client_reference_id": s.client_reference_id,
        "created": s.created, "currency": "eur", "custom_fields": [], "custom_text": {},
        "customer": s.customer, "expires_at": s.created + 86_400, "livemode": false,
        "metadata": s.metadata, "mode": "subscription", "payment_method_types": ["card"],
        "payment_status": if complete { "paid" } else { "unpaid" },
        "shipping_options": [], "status": if complete { "complete" } else { "open" },
        "subscription": s.subscription, "success_url": s.success_url,
        "url": if complete { Value::Null } else { json!(format!("{public}checkout/{}", s.id)) },
        "amount_total": state.price(&s.price).map(|p| p.amount),
    })
}

async fn create_customer(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let key = match gate(&fake, &headers) {
        Ok(key) => key,
        Err(replayed) => return *replayed,
    };
    let form = form(&body);
    let value = {
        let mut state = fake.state.lock().expect("not poisoned");
        let customer = Customer {
            id: state.id("cus"),
            email: form.get("email").cloned(),
            name: form.get("name").cloned(),
            metadata: map_of(&form, "metadata"),
            fail_next_charge: false,
            created: state.now(),
        };
        let value = customer_json(&customer);
        state.customers.insert(customer.id.clone(), customer);
        value
    };
    remember(&fake, key, &value);
    Json(value).into_response()
}

async fn retrieve_customer(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    let state = fake.state.lock().expect("not poisoned");
    match state.customers.get(&id) {
        Some(c) => Json(customer_json(c)).into_response(),
        None => not_found("customer", &id),
    }
}

async fn list_prices(
    State(fake): State<Fake>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let state = fake.state.lock().expect("not poisoned");
    if state.down {
        return error(StatusCode::SERVICE_UNAVAILABLE, "api_error", "down", None);
    }
    let keys: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k.starts_with("lookup_keys"))
        .map(|(_, v)| v.as_str())
        .collect();
    let created = state.now();
    let data: Vec<Value> = state
        .prices
        .iter()
        .filter(|p| keys.is_empty() || keys.contains(&p.lookup_key.as_str()))
        .map(|p| price_json(p, created))
        .collect();
    Json(json!({"object": "list", "data": data, "has_more": false, "url": "/v1/prices"}))
        .into_response()
}

async fn create_session(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    let key = match gate(&fake, &headers) {
        Ok(key) => key,
        Err(replayed) => return *replayed,
    };
    let form = form(&body);
    if form.get("mode").map(String::as_str) != Some("subscription") {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "only mode=subscription is faked",
            Some("mode"),
        );
    }
    let value = {
        let mut state = fake.state.lock().expect("not poisoned");
        let Some(customer) = form
            .get("customer")
            .filter(|c| state.customers.contains_key(*c))
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "a known customer is required",
                Some("customer"),
            );
        };
        let Some(price) = form
            .get("line_items[0][price]")
            .filter(|p| state.price(p).is_some())
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "No such price",
                Some("line_items[0][price]"),
            );
        };
        let session = Session {
            id: state.id("cs_test"),
            customer: customer.clone(),
            price: price.clone(),
            metadata: map_of(&form, "metadata"),
            subscription_metadata: map_of(&form, "subscription_data[metadata]"),
            client_reference_id: form.get("client_reference_id").cloned(),
            success_url: form.get("success_url").cloned(),
            cancel_url: form.get("cancel_url").cloned(),
            subscription: None,
            created: state.now(),
        };
        let value = session_json(&state, &session);
        state.sessions.insert(session.id.clone(), session);
        value
    };
    remember(&fake, key, &value);
    Json(value).into_response()
}

async fn retrieve_session(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    let state = fake.state.lock().expect("not poisoned");
    match state.sessions.get(&id) {
        Some(s) => Json(session_json(&state, s)).into_response(),
        None => not_found("checkout.session", &id),
    }
}

async fn retrieve_subscription(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    let state = fake.state.lock().expect("not poisoned");
    if state.down {
        return error(StatusCode::SERVICE_UNAVAILABLE, "api_error", "down", None);
    }
    match state.subscriptions.get(&id) {
        Some(s) => Json(subscription_json(&state, s)).into_response(),
        None => not_found("subscription", &id),
    }
}

async fn retrieve_invoice(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    let value = {
        let state = fake.state.lock().expect("not poisoned");
        match state.invoices.get(&id) {
            Some(i) => invoice_json(&state, i),
            None => return not_found("invoice", &id),
        }
    };
    Json(value).into_response()
}

/// A price change (prorated: the rest of the period's difference is invoiced and paid at
/// once) or a cancellation at the period end, or its withdrawal.
async fn update_subscription(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = match gate(&fake, &headers) {
        Ok(key) => key,
        Err(replayed) => return *replayed,
    };
    let form = form(&body);
    let (value, events) = {
        let mut state = fake.state.lock().expect("not poisoned");
        let now = state.now();
        let Some(sub) = state.subscriptions.get(&id) else {
            return not_found("subscription", &id);
        };
        if sub.status == "canceled" {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "A canceled subscription can only update its cancellation_details.",
                None,
            );
        }
        let old_price = sub.price.clone();
        let new_price = form.get("items[0][price]").cloned();
        if let Some(p) = &new_price
            && state.price(p).is_none()
        {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "No such price",
                Some("items[0][price]"),
            );
        }
        let mut events = Vec::new();
        let mut proration = None;
        {
            let sub = state.subscriptions.get_mut(&id).expect("found above");
            if let Some(cancel) = form.get("cancel_at_period_end") {
                sub.cancel_at_period_end = cancel == "true";
            }
            if let Some(p) = &new_price
                && *p != old_price
            {
                sub.price = p.clone();
                proration = Some((sub.period_start, sub.period_end));
            }
        }
        if let (Some((start, end)), Some(new)) = (proration, new_price) {
            let old_amount = state.price(&old_price).map_or(0, |p| p.amount);
            let new_amount = state.price(&new).map_or(0, |p| p.amount);
            let left = (end - now).max(0) as f64 / (end - start).max(1) as f64;
            let due = (((new_amount - old_amount) as f64) * left).round() as i64;
            if due > 0 {
                let invoice = new_invoice(&mut state, &id, due, now, end);
                let invoice = charge(&mut state, &invoice, now);
                events.extend(invoice);
            }
        }
        let sub = state.subscriptions.get(&id).expect("found above");
        let value = subscription_json(&state, sub);
        events.insert(
            0,
            state.event("customer.subscription.updated", value.clone()),
        );
        (value, events)
    };
    remember(&fake, key, &value);
    fake.deliver(events);
    Json(value).into_response()
}

async fn create_meter_event(State(fake): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = gate(&fake, &headers) {
        return *response;
    }
    let form = form(&body);
    let (Some(name), Some(identifier)) = (form.get("event_name"), form.get("identifier")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "event_name and identifier are required",
            Some("identifier"),
        );
    };
    let mut state = fake.state.lock().expect("not poisoned");
    let now = state.now();
    if state.meter_events.contains_key(identifier) {
        // Stripe refuses a repeated identifier within 24 hours; the first one counts.
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            &format!("An event already exists with identifier {identifier}."),
            Some("identifier"),
        );
    }
    let value = json!({
        "object": "billing.meter_event", "created": now, "event_name": name,
        "identifier": identifier, "livemode": false, "payload": map_of(&form, "payload"),
        "timestamp": form.get("timestamp").and_then(|t| t.parse::<i64>().ok()).unwrap_or(now),
    });
    state.meter_events.insert(identifier.clone(), value.clone());
    Json(value).into_response()
}

fn new_invoice(
    state: &mut FakeState,
    subscription: &str,
    amount: i64,
    start: i64,
    end: i64,
) -> String {
    let sub = state
        .subscriptions
        .get(subscription)
        .expect("a subscription");
    let (customer, metadata) = (sub.customer.clone(), sub.metadata.clone());
    let id = state.id("in");
    let number = format!("FAKE-{:04}", state.invoices.len() + 1);
    let created = state.now();
    state.invoices.insert(
        id.clone(),
        Invoice {
            id: id.clone(),
            number,
            customer,
            subscription: subscription.to_owned(),
            metadata,
            amount_due: amount,
            amount_paid: 0,
            status: "open".into(),
            period_start: start,
            period_end: end,
            attempt_count: 0,
            next_attempt: None,
            created,
        },
    );
    if let Some(sub) = state.subscriptions.get_mut(subscription) {
        sub.latest_invoice = Some(id.clone());
    }
    id
}

/// Tries to charge an open invoice: the events it causes.
fn charge(state: &mut FakeState, invoice_id: &str, now: i64) -> Vec<Value> {
    let (customer, subscription) = {
        let i = state.invoices.get(invoice_id).expect("an invoice");
        (i.customer.clone(), i.subscription.clone())
    };
    let declined = state
        .customers
        .get_mut(&customer)
        .map(|c| std::mem::take(&mut c.fail_next_charge))
        .unwrap_or(false);
    let mut events = Vec::new();
    let status = {
        let invoice = state.invoices.get_mut(invoice_id).expect("an invoice");
        invoice.attempt_count += 1;
        if declined {
            invoice.next_attempt = Some(now + RETRY_AFTER_SECS);
            "past_due"
        } else {
            invoice.status = "paid".into();
            invoice.amount_paid = invoice.amount_due;
            invoice.next_attempt = None;
            "active"
        }
    };
    let invoice = invoice_json(state, state.invoices.get(invoice_id).expect("an invoice"));
    events.push(state.event(
        if declined {
            "invoice.payment_failed"
        } else {
            "invoice.paid"
        },
        invoice,
    ));
    let changed = state
        .subscriptions
        .get_mut(&subscription)
        .map(|s| {
            let changed = s.status != status;
            s.status = status.into();
            changed
        })
        .unwrap_or(false);
    if changed {
        let sub = subscription_json(state, &state.subscriptions[&subscription]);
        events.push(state.event("customer.subscription.updated", sub));
    }
    events
}

fn pay(state: &mut FakeState, session_id: &str, card: &str) -> Result<Vec<Value>, String> {
    let now = state.now();
    let session = state
        .sessions
        .get(session_id)
        .ok_or_else(|| format!("no such session {session_id}"))?;
    if session.subscription.is_some() {
        return Err("this session is complete".into());
    }
    if card.replace(' ', "") == DECLINED_CARD {
        return Err("Your card was declined.".into());
    }
    let price = state.price(&session.price).cloned().ok_or("no price")?;
    let (customer, metadata) = (
        session.customer.clone(),
        session.subscription_metadata.clone(),
    );
    let id = state.id("sub");
    let item = state.id("si");
    let period_end = match price.interval {
        "year" => now + 365 * 86_400,
        _ => now + 30 * 86_400,
    };
    state.subscriptions.insert(
        id.clone(),
        Sub {
            id: id.clone(),
            item,
            customer,
            price: price.id.clone(),
            status: "active".into(),
            period_start: now,
            period_end,
            cancel_at_period_end: false,
            metadata,
            created: now,
            latest_invoice: None,
        },
    );
    state
        .sessions
        .get_mut(session_id)
        .expect("found above")
        .subscription = Some(id.clone());
    let invoice = new_invoice(state, &id, price.amount, now, period_end);
    let session = session_json(state, &state.sessions[session_id]);
    let mut events = vec![state.event("checkout.session.completed", session)];
    let sub = subscription_json(state, &state.subscriptions[&id]);
    events.push(state.event("customer.subscription.created", sub));
    events.extend(charge(state, &invoice, now));
    Ok(events)
}

/// Whatever the clock made due: renewals, retries, cancellations at the period end.
fn tick(state: &mut FakeState) -> Vec<Value> {
    let now = state.now();
    let mut events = Vec::new();
    // Retries of open invoices.
    let retries: Vec<String> = state
        .invoices
        .values()
        .filter(|i| i.status == "open" && i.next_attempt.is_some_and(|t| t <= now))
        .map(|i| i.id.clone())
        .collect();
    for invoice in retries {
        events.extend(charge(state, &invoice, now));
    }
    // Periods that ended.
    loop {
        let due: Vec<String> = state
            .subscriptions
            .values()
            .filter(|s| s.status != "canceled" && s.period_end <= now)
            .map(|s| s.id.clone())
            .collect();
        if due.is_empty() {
            break;
        }
        for id in due {
            let (cancel, price, end) = {
                let s = &state.subscriptions[&id];
                (s.cancel_at_period_end, s.price.clone(), s.period_end)
            };
            if cancel {
                let s = state.subscriptions.get_mut(&id).expect("due");
                s.status = "canceled".into();
                let sub = subscription_json(state, &state.subscriptions[&id]);
                events.push(state.event("customer.subscription.deleted", sub));
                continue;
            }
            let price = state.price(&price).cloned().expect("a price");
            let next_end = match price.interval {
                "year" => end + 365 * 86_400,
                _ => end + 30 * 86_400,
            };
            {
                let s = state.subscriptions.get_mut(&id).expect("due");
                s.period_start = end;
                s.period_end = next_end;
            }
            let sub = subscription_json(state, &state.subscriptions[&id]);
            events.push(state.event("customer.subscription.updated", sub));
            let invoice = new_invoice(state, &id, price.amount, end, next_end);
            events.extend(charge(state, &invoice, now));
        }
    }
    events
}

async fn hosted_page(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    let state = fake.state.lock().expect("not poisoned");
    let Some(session) = state.sessions.get(&id) else {
        return (
            StatusCode::NOT_FOUND,
            Html("<h1>No such checkout</h1>".to_owned()),
        )
            .into_response();
    };
    let price = state.price(&session.price).cloned().expect("a price");
    let done = session.subscription.is_some();
    let amount = format!("{}.{:02} EUR", price.amount / 100, price.amount % 100);
    let per = if price.interval == "year" {
        "year"
    } else {
        "month"
    };
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Checkout · {name}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem;color:#1a1a1a}}
.card{{border:1px solid #ddd;border-radius:12px;padding:1.5rem;box-shadow:0 2px 8px #0001}}
h1{{font-size:1.25rem;margin:0 0 .25rem}} .price{{font-size:2rem;font-weight:600;margin:.5rem 0 1.5rem}}
label{{display:block;font-size:.85rem;margin-bottom:.25rem}} input{{width:100%;padding:.6rem;font-size:1rem;border:1px solid #ccc;border-radius:6px;box-sizing:border-box}}
button{{margin-top:1rem;width:100%;padding:.75rem;font-size:1rem;border:0;border-radius:6px;background:#635bff;color:#fff;cursor:pointer}}
.note{{font-size:.8rem;color:#666;margin-top:1rem}}</style></head>
<body><div class="card"><p class="note">Fake Stripe Checkout (test mode)</p>
<h1>Subscribe to {name}</h1><div class="price">{amount} <small>per {per}</small></div>
{body}</div></body></html>"#,
        name = price.name,
        body = if done {
            "<p>This checkout is complete. Thank you!</p>".to_owned()
        } else {
            format!(
                r#"<form method="post" action="/checkout/{id}/pay"><label for="card">Card number</label>
<input id="card" name="card" value="4242 4242 4242 4242" inputmode="numeric" autocomplete="cc-number">
<button type="submit">Pay and subscribe</button></form>
<p class="note">{DECLINED_CARD} is always declined.</p>"#
            )
        },
    ))
    .into_response()
}

#[derive(Deserialize)]
struct PayForm {
    card: String,
}

async fn hosted_pay(
    State(fake): State<Fake>,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<PayForm>,
) -> Response {
    match fake.pay(&id, &form.card) {
        Ok(Some(success)) => {
            Redirect::to(&success.replace("{CHECKOUT_SESSION_ID}", &id)).into_response()
        }
        Ok(None) => Html("<p>Paid. You can close this page.</p>".to_owned()).into_response(),
        Err(reason) => (
            StatusCode::PAYMENT_REQUIRED,
            Html(format!("<p>{reason}</p>")),
        )
            .into_response(),
    }
}

async fn hosted_invoice(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    let state = fake.state.lock().expect("not poisoned");
    match state.invoices.get(&id) {
        Some(i) => Html(format!(
            "<!doctype html><title>Invoice {n}</title><h1>Invoice {n}</h1><p>{a}.{c:02} EUR · {s}</p>",
            n = i.number,
            a = i.amount_due / 100,
            c = i.amount_due % 100,
            s = i.status
        ))
        .into_response(),
        None => (StatusCode::NOT_FOUND, Html("<h1>No such invoice</h1>".to_owned())).into_response(),
    }
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(State(fake): State<Fake>, Json(advance): Json<Advance>) -> Response {
    fake.advance(advance.seconds);
    let now = fake.state.lock().expect("not poisoned").now();
    Json(json!({"frozen_time": now})).into_response()
}

async fn fail_next(State(fake): State<Fake>, Path(id): Path<String>) -> Response {
    if fake.fail_next_charge(&id) {
        Json(json!({"customer": id, "fail_next_charge": true})).into_response()
    } else {
        not_found("customer", &id)
    }
}

async fn set_webhooks(State(fake): State<Fake>, Json(target): Json<WebhookTarget>) -> Response {
    fake.configure_webhooks(target);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_deliveries(State(fake): State<Fake>) -> Response {
    Json(fake.deliveries()).into_response()
}

#[derive(Deserialize)]
struct Outage {
    down: bool,
}

async fn set_outage(State(fake): State<Fake>, Json(outage): Json<Outage>) -> Response {
    fake.set_down(outage.down);
    StatusCode::NO_CONTENT.into_response()
}

async fn list_meter_events(State(fake): State<Fake>) -> Response {
    Json(fake.meter_events()).into_response()
}

async fn list_events(State(fake): State<Fake>) -> Response {
    Json(fake.events()).into_response()
}
