//! Stripe's webhooks: the signature checked over the raw body before anything is trusted
//! (HMAC-SHA256, a 300-second tolerance, any of several `v1` values and any of several
//! secrets during a rotation), then the event read as the domain's fact.

use chrono::{DateTime, Utc};
use domain::billing::{InvoiceFacts, SubscriptionSnapshot};
use stripe_webhook::{EventObject, Webhook, WebhookError};

use crate::{customer_id, invoice_facts, snapshot};

/// Why a webhook is refused (400, nothing changes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no Stripe-Signature header")]
    Unsigned,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the signature's timestamp is more than 300 seconds away")]
    Stale,
    #[error("the event cannot be read: {0}")]
    Unreadable(String),
}

/// What a verified event tells the platform.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// A Checkout Session completed: its subscription (fetched again from Stripe by the caller,
    /// who decides from the subscription as it stands).
    CheckoutCompleted {
        subscription_id: String,
    },
    /// A subscription as the event shows it (created, updated, deleted).
    Subscription(SubscriptionSnapshot),
    InvoicePaid(InvoiceFacts),
    PaymentFailed(InvoiceFacts),
    PaymentActionRequired(InvoiceFacts),
    /// The subscription's trial ends in three days.
    TrialWillEnd,
    /// Nothing the platform acts on.
    Ignored,
}

/// A verified event: Stripe's id (what makes a redelivery the same command), when Stripe made
/// it (what orders Stripe's accounts of one subscription), the customer it is about, and
/// its fact.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub event_id: String,
    pub event_type: String,
    pub created: DateTime<Utc>,
    pub customer: Option<String>,
    pub fact: Fact,
}

/// Verifies `payload` against its `Stripe-Signature` header with any of `secrets`, and reads
/// it.
pub fn verify(
    payload: &str,
    signature: Option<&str>,
    secrets: &[String],
) -> Result<Verified, Refused> {
    verify_at(payload, signature, secrets, Utc::now().timestamp())
}

/// [`verify`] as of `now` (Unix seconds).
pub fn verify_at(
    payload: &str,
    signature: Option<&str>,
    secrets: &[String],
    now: i64,
) -> Result<Verified, Refused> {
    let signature = signature.ok_or(Refused::Unsigned)?;
    let mut refusal = Refused::BadSignature;
    for secret in secrets {
        match Webhook::construct_event_with_timestamp(payload, signature, secret, now) {
            Ok(event) => return Ok(read(event)),
            Err(WebhookError::BadTimestamp(_)) => refusal = Refused::Stale,
            Err(WebhookError::BadParse(reason)) => return Err(Refused::Unreadable(reason)),
            Err(WebhookError::BadSignature | WebhookError::BadKey | WebhookError::BadHeader(_)) => {
            }
        }
    }
    Err(refusal)
}

fn read(event: stripe_webhook::Event) -> Verified {
    use EventObject as O;
    let (customer, fact) = match event.data.object {
        O::CheckoutSessionCompleted(session) => (
            session.customer.as_ref().map(customer_id),
            match &session.subscription {
                Some(subscription) => Fact::CheckoutCompleted {
                    subscription_id: customer_id(subscription),
                },
                None => Fact::Ignored,
            },
        ),
        O::CustomerSubscriptionCreated(s)
        | O::CustomerSubscriptionUpdated(s)
        | O::CustomerSubscriptionDeleted(s) => (
            Some(customer_id(&s.customer)),
            snapshot(&s).map_or(Fact::Ignored, Fact::Subscription),
        ),
        O::CustomerSubscriptionTrialWillEnd(s) => {
            (Some(customer_id(&s.customer)), Fact::TrialWillEnd)
        }
        O::InvoicePaid(i) => (
            i.customer.as_ref().map(customer_id),
            invoice_facts(&i).map_or(Fact::Ignored, Fact::InvoicePaid),
        ),
        O::InvoicePaymentFailed(i) => (
            i.customer.as_ref().map(customer_id),
            invoice_facts(&i).map_or(Fact::Ignored, Fact::PaymentFailed),
        ),
        O::InvoicePaymentActionRequired(i) => (
            i.customer.as_ref().map(customer_id),
            invoice_facts(&i).map_or(Fact::Ignored, Fact::PaymentActionRequired),
        ),
        _ => (None, Fact::Ignored),
    };
    Verified {
        event_id: event.id.to_string(),
        event_type: event.type_.as_str().to_owned(),
        created: DateTime::from_timestamp(event.created, 0).unwrap_or_default(),
        customer,
        fact,
    }
}
