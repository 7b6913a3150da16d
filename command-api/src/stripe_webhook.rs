//! `POST /webhooks/stripe`: Stripe's account of a business's subscription and invoices.
//!
//! The `Stripe-Signature` is checked over the raw body before anything is read (a bad,
//! missing or stale one is a 400 and changes nothing). Each event becomes one billing command
//! keyed by Stripe's event id, so a redelivery is the same command and appends nothing; the
//! domain decides from what the object says and when Stripe said it, so events out of order
//! are harmless. A completed checkout is decided from the subscription fetched again. The
//! answer is 2xx only once the command is committed; anything else (Stripe down while
//! re-fetching, the database) is a 5xx, and Stripe delivers again.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use billing::webhook::{Fact, Refused, Verified};
use platform::problem::Problem;

use crate::AppState;

/// `POST /webhooks/stripe`
#[utoipa::path(
    post,
    path = "/webhooks/stripe",
    tag = "billing",
    summary = "Stripe's events (signed): subscriptions, checkouts, invoices",
    request_body(content = String, content_type = "application/json", description = "A Stripe event, signed in Stripe-Signature"),
    params(
        ("Stripe-Signature" = String, Header, description = "t=<unix seconds>,v1=<HMAC-SHA256 of \"<t>.<raw body>\" with the endpoint's secret>")
    ),
    responses(
        (status = 200, description = "Recorded, or nothing to do"),
        (status = 400, description = "A missing, bad or stale signature, or an event that cannot be read: nothing changed"),
        (status = 503, description = "Not recorded now (Stripe or the database unavailable): Stripe delivers again")
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, Problem> {
    let payload =
        std::str::from_utf8(&body).map_err(|_| Problem::bad_request("the body is not UTF-8"))?;
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let event = billing::webhook::verify(payload, signature, &state.stripe.webhook_secrets)
        .map_err(|refused| {
            let detail = refused.to_string();
            match refused {
                Refused::Unsigned | Refused::BadSignature | Refused::Stale => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad-signature",
                    "The signature is not valid",
                )
                .detail(detail),
                Refused::Unreadable(_) => Problem::bad_request(detail),
            }
        })?;
    record(&state, event).await?;
    Ok(StatusCode::OK)
}

async fn record(state: &AppState, event: Verified) -> Result<(), Problem> {
    let app = &state.app;
    let Some(customer) = event.customer.as_deref() else {
        return Ok(());
    };
    let Some(tenant_id) = app::billing::tenant_of_customer(app, customer).await? else {
        // Not one of ours (another integration on the account): nothing to do.
        tracing::info!(event_id = %event.event_id, customer, "a Stripe event for an unknown customer");
        return Ok(());
    };
    let id = &event.event_id;
    let result = match event.fact {
        Fact::CheckoutCompleted { subscription_id } => {
            let snapshot = state
                .stripe
                .gateway
                .subscription(&subscription_id)
                .await
                .map_err(|e| Problem::unavailable(e.to_string(), 10))?;
            app::billing::sync_subscription(app, tenant_id, id, snapshot, chrono::Utc::now()).await
        }
        Fact::Subscription(snapshot) => {
            app::billing::sync_subscription(app, tenant_id, id, snapshot, event.created).await
        }
        Fact::InvoicePaid(invoice) => {
            app::billing::record_invoice_paid(app, tenant_id, id, invoice).await
        }
        // The grace period runs from when the platform learns of the failure.
        Fact::PaymentFailed(invoice) => {
            app::billing::record_payment_failed(app, tenant_id, id, invoice, chrono::Utc::now())
                .await
        }
        Fact::PaymentActionRequired(invoice) => {
            app::billing::record_payment_action_required(app, tenant_id, id, invoice).await
        }
        Fact::TrialWillEnd | Fact::Ignored => return Ok(()),
    };
    match result {
        Ok(done) => {
            // A payment may have lifted a suspension: the APIs answer at once.
            if done.position.is_some() {
                state.tenant_status.forget(tenant_id).await;
            }
            Ok(())
        }
        // A business from before billing, or a command the domain refuses: acknowledged, so
        // that Stripe stops; the log has nothing to add.
        Err(app::AppError::Rejected(rejection)) => {
            tracing::warn!(event_id = %id, %rejection, "a Stripe event the billing refused");
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}
