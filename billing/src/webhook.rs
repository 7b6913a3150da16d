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

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};
    use proptest::prelude::*;
    use sha2::Sha256;

    const SECRET: &str = "whsec_fuzz";
    const NOW: i64 = 1_790_000_000;

    fn signed(body: &str, secret: &str, at: i64) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{at}.{body}").as_bytes());
        format!("t={at},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    /// Any JSON value, a few levels deep.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            any::<String>().prop_map(serde_json::Value::from),
            prop::sample::select(vec!["cus_1", "sub_1", "active", "eur", "in_1", "evt_1"])
                .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map(
                    prop::sample::select(vec![
                        "id",
                        "object",
                        "customer",
                        "subscription",
                        "status",
                        "items",
                        "data",
                        "price",
                        "lookup_key",
                        "current_period_end",
                        "amount_paid",
                        "currency",
                        "lines",
                        "metadata",
                        "cancel_at_period_end",
                        "x",
                    ])
                    .prop_map(str::to_owned),
                    inner,
                    0..6,
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Anything not signed with the endpoint's secret is refused, whatever it says and
        /// however its header is written; nothing panics.
        #[test]
        fn nothing_unsigned_or_forged_is_accepted(
            body in any::<String>(),
            header in prop_oneof![
                any::<String>(),
                (any::<i64>(), "[0-9a-f]{0,70}").prop_map(|(t, h)| format!("t={t},v1={h}")),
            ],
            other in "[a-z_]{1,20}",
        ) {
            prop_assert!(verify_at(&body, Some(&header), &[SECRET.to_owned()], NOW).is_err());
            prop_assert_eq!(verify_at(&body, None, &[SECRET.to_owned()], NOW), Err(Refused::Unsigned));
            let forged = signed(&body, &other, NOW);
            prop_assume!(other != SECRET);
            prop_assert!(verify_at(&body, Some(&forged), &[SECRET.to_owned()], NOW).is_err());
        }

        /// A genuine signature over an event of any type carrying any object: read, or refused
        /// as unreadable; never a panic, never a fact about nobody's subscription.
        #[test]
        fn a_signed_event_of_any_shape_is_read_or_refused(
            kind in prop::sample::select(vec![
                "checkout.session.completed", "customer.subscription.created",
                "customer.subscription.updated", "customer.subscription.deleted",
                "customer.subscription.trial_will_end", "invoice.paid",
                "invoice.payment_failed", "invoice.payment_action_required", "fuzz.unknown",
            ]),
            object in json(),
            created in any::<i64>(),
        ) {
            let body = serde_json::json!({
                "id": "evt_fuzz", "object": "event", "api_version": "2026-09-30.endive",
                "created": created, "data": {"object": object}, "livemode": false,
                "pending_webhooks": 1, "request": {"id": null, "idempotency_key": null},
                "type": kind,
            })
            .to_string();
            let header = signed(&body, SECRET, NOW);
            match verify_at(&body, Some(&header), &[SECRET.to_owned()], NOW) {
                Ok(verified) => {
                    prop_assert_eq!(verified.event_id, "evt_fuzz");
                    if let Fact::Subscription(_) | Fact::InvoicePaid(_) | Fact::PaymentFailed(_) = verified.fact {
                        prop_assert!(verified.customer.is_some());
                    }
                }
                Err(refused) => prop_assert!(matches!(refused, Refused::Unreadable(_)), "{refused:?}"),
            }
            // Late: refused as stale, not read.
            prop_assert!(verify_at(&body, Some(&header), &[SECRET.to_owned()], NOW + 3600).is_err());
        }
    }
}
