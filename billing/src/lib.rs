//! Stripe behind a small gateway. The platform calls Stripe for five things: a customer per
//! business, a Checkout Session to subscribe, a subscription's price changed (prorated) or
//! its cancellation at the period end, meter events for the WhatsApp messages counted, and
//! the subscription as it stands (a webhook re-fetched). Stripe's webhooks come back as
//! [`webhook::Fact`]s: the domain's facts (`domain::billing`), never Stripe's types.
//!
//! async-stripe 1.0 (a release candidate, pinned exactly) with only the resources used and
//! rustls. Prices are found by their lookup keys, `{plan}_{cycle}` (`starter_monthly`), so the
//! Stripe account's catalogue and `domain::plan` agree by name, not by id.

pub mod webhook;

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::billing::{InvoiceFacts, StripeStatus, SubscriptionSnapshot};
use domain::plan::{Cycle, Plan};
use domain::values::Money;
use stripe::{Client, ClientBuilder, IdempotencyKey, RequestStrategy, StripeRequest as _};
use tokio::sync::OnceCell;
use uuid::Uuid;

/// What a call to Stripe can end in.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Stripe did not answer, or answered 5xx or 429: worth trying again later.
    #[error("Stripe is unavailable: {0}")]
    Unavailable(String),
    /// Stripe refused the request (4xx): trying again would not help.
    #[error("Stripe refused: {0}")]
    Refused(String),
    /// The account lacks what the platform expects (a price by its lookup key).
    #[error("the Stripe account is not set up: {0}")]
    Setup(String),
}

impl From<stripe::StripeError> for GatewayError {
    fn from(err: stripe::StripeError) -> Self {
        match &err {
            stripe::StripeError::Stripe(api, status)
                if (400..500).contains(status) && *status != 429 =>
            {
                GatewayError::Refused(api.message.clone().unwrap_or_else(|| err.to_string()))
            }
            _ => GatewayError::Unavailable(err.to_string()),
        }
    }
}

/// The meter the messages are reported to.
pub const MESSAGES_METER: &str = "whatsapp_messages";

#[derive(Clone)]
pub struct StripeGateway {
    client: Client,
    /// Lookup key to price id, read from Stripe once.
    prices: std::sync::Arc<OnceCell<HashMap<String, String>>>,
}

impl std::fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeGateway").finish_non_exhaustive()
    }
}

/// A price's lookup key.
pub fn lookup_key(plan: Plan, cycle: Cycle) -> String {
    format!("{}_{}", plan.as_str(), cycle.as_str())
}

/// The plan and cycle a lookup key names.
pub fn plan_of(lookup_key: &str) -> Option<(Plan, Cycle)> {
    let (plan, cycle) = lookup_key.split_once('_')?;
    Some((Plan::parse(plan)?, Cycle::parse(cycle)?))
}

impl StripeGateway {
    /// A gateway with `secret_key`, at `base_url` (the host root, ending in `/`; Stripe's own
    /// when `None`); each attempt gives up after `timeout`.
    pub fn new(
        secret_key: &str,
        base_url: Option<&str>,
        timeout: Duration,
    ) -> Result<Self, GatewayError> {
        let mut builder = ClientBuilder::new(secret_key).timeout(timeout);
        if let Some(url) = base_url {
            builder = builder.url(url);
        }
        let client = builder
            .build()
            .map_err(|e| GatewayError::Setup(e.to_string()))?;
        Ok(Self {
            client,
            prices: std::sync::Arc::default(),
        })
    }

    fn key(key: &str) -> RequestStrategy {
        RequestStrategy::Idempotent(IdempotencyKey::new(key).expect("a key of 255 bytes at most"))
    }

    async fn price_id(&self, plan: Plan, cycle: Cycle) -> Result<String, GatewayError> {
        let prices = self
            .prices
            .get_or_try_init(|| async {
                let keys: Vec<String> = Plan::ALL
                    .iter()
                    .flat_map(|p| Cycle::ALL.iter().map(|c| lookup_key(*p, *c)))
                    .collect();
                let list = stripe_product::price::ListPrice::new()
                    .lookup_keys(keys)
                    .active(true)
                    .limit(100)
                    .send(&self.client)
                    .await?;
                Ok::<_, GatewayError>(
                    list.data
                        .into_iter()
                        .filter_map(|p| Some((p.lookup_key?, p.id.to_string())))
                        .collect(),
                )
            })
            .await?;
        let key = lookup_key(plan, cycle);
        prices
            .get(&key)
            .cloned()
            .ok_or_else(|| GatewayError::Setup(format!("no active price with lookup key {key}")))
    }

    /// The business's customer, made once (`tenant_id` is the idempotency key).
    pub async fn create_customer(
        &self,
        tenant_id: Uuid,
        business_name: &str,
        email: &str,
    ) -> Result<String, GatewayError> {
        let customer = stripe_core::customer::CreateCustomer::new()
            .name(business_name)
            .email(email)
            .metadata(HashMap::from([(
                "tenant_id".to_owned(),
                tenant_id.to_string(),
            )]))
            .customize()
            .request_strategy(Self::key(&format!("customer-{tenant_id}")))
            .send(&self.client)
            .await?;
        Ok(customer.id.to_string())
    }

    /// A Checkout Session for `customer` to subscribe to `plan` every `cycle`: its id and the
    /// URL of Stripe's hosted page.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_checkout(
        &self,
        tenant_id: Uuid,
        customer: &str,
        plan: Plan,
        cycle: Cycle,
        success_url: &str,
        cancel_url: &str,
        idempotency_key: &str,
    ) -> Result<(String, String), GatewayError> {
        let price = self.price_id(plan, cycle).await?;
        let tenant = HashMap::from([("tenant_id".to_owned(), tenant_id.to_string())]);
        let mut subscription =
            stripe_checkout::checkout_session::CreateCheckoutSessionSubscriptionData::new();
        subscription.metadata = Some(tenant.clone());
        let mut item = stripe_checkout::checkout_session::CreateCheckoutSessionLineItems::new();
        item.price = Some(price);
        item.quantity = Some(1);
        let session = stripe_checkout::checkout_session::CreateCheckoutSession::new()
            .mode(stripe_shared::CheckoutSessionMode::Subscription)
            .customer(customer)
            .client_reference_id(tenant_id.to_string())
            .line_items(vec![item])
            .subscription_data(subscription)
            .metadata(tenant)
            .success_url(success_url)
            .cancel_url(cancel_url)
            .customize()
            .request_strategy(Self::key(&format!("checkout-{idempotency_key}")))
            .send(&self.client)
            .await?;
        let url = session
            .url
            .ok_or_else(|| GatewayError::Refused("the session has no URL".into()))?;
        Ok((session.id.to_string(), url))
    }

    /// The subscription as Stripe has it now.
    pub async fn subscription(&self, id: &str) -> Result<SubscriptionSnapshot, GatewayError> {
        let subscription = stripe_billing::subscription::RetrieveSubscription::new(id)
            .send(&self.client)
            .await?;
        snapshot(&subscription)
            .ok_or_else(|| GatewayError::Setup(format!("subscription {id} has no known price")))
    }

    /// Moves the subscription to `plan` every `cycle`, prorated and invoiced at once.
    pub async fn change_price(
        &self,
        subscription_id: &str,
        plan: Plan,
        cycle: Cycle,
        idempotency_key: &str,
    ) -> Result<SubscriptionSnapshot, GatewayError> {
        let price = self.price_id(plan, cycle).await?;
        let current = stripe_billing::subscription::RetrieveSubscription::new(subscription_id)
            .send(&self.client)
            .await?;
        let item_id = current
            .items
            .data
            .first()
            .map(|i| i.id.to_string())
            .ok_or_else(|| GatewayError::Setup("the subscription has no item".into()))?;
        let mut item = stripe_billing::subscription::UpdateSubscriptionItems::new();
        item.id = Some(item_id);
        item.price = Some(price);
        let updated = stripe_billing::subscription::UpdateSubscription::new(subscription_id)
            .items(vec![item])
            .proration_behavior(
                stripe_billing::subscription::UpdateSubscriptionProrationBehavior::AlwaysInvoice,
            )
            .customize()
            .request_strategy(Self::key(&format!("price-{idempotency_key}")))
            .send(&self.client)
            .await?;
        snapshot(&updated).ok_or_else(|| GatewayError::Setup("no known price".into()))
    }

    /// Ends the subscription at the end of its period.
    pub async fn cancel_at_period_end(
        &self,
        subscription_id: &str,
        idempotency_key: &str,
    ) -> Result<SubscriptionSnapshot, GatewayError> {
        let updated = stripe_billing::subscription::UpdateSubscription::new(subscription_id)
            .cancel_at_period_end(true)
            .customize()
            .request_strategy(Self::key(&format!("cancel-{idempotency_key}")))
            .send(&self.client)
            .await?;
        snapshot(&updated).ok_or_else(|| GatewayError::Setup("no known price".into()))
    }

    /// Reports `value` messages of `customer` at `at`, identified by our event id: Stripe
    /// counts an identifier once, so a redelivery never double-counts (a repeat is `Ok`).
    pub async fn report_messages(
        &self,
        customer: &str,
        value: u32,
        identifier: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), GatewayError> {
        let payload = HashMap::from([
            ("stripe_customer_id".to_owned(), customer.to_owned()),
            ("value".to_owned(), value.to_string()),
        ]);
        let sent = stripe_billing::billing_meter_event::CreateBillingMeterEvent::new(
            MESSAGES_METER,
            payload,
        )
        .identifier(identifier.to_string())
        .timestamp(at.timestamp())
        .send(&self.client)
        .await;
        match sent {
            Ok(_) => Ok(()),
            Err(stripe::StripeError::Stripe(api, 400))
                if api
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("already exists")) =>
            {
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }
}

fn time(ts: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(ts, 0).unwrap_or_default()
}

/// The domain's account of a Stripe subscription (`None` when its price is not one of the
/// catalogue's).
pub fn snapshot(s: &stripe_shared::Subscription) -> Option<SubscriptionSnapshot> {
    use stripe_shared::SubscriptionStatus as S;
    let item = s.items.data.first()?;
    let (plan, cycle) = plan_of(item.price.lookup_key.as_deref()?)?;
    let status = match &s.status {
        S::Incomplete => StripeStatus::Incomplete,
        S::IncompleteExpired => StripeStatus::IncompleteExpired,
        S::Trialing => StripeStatus::Trialing,
        S::Active => StripeStatus::Active,
        S::PastDue => StripeStatus::PastDue,
        S::Unpaid => StripeStatus::Unpaid,
        S::Canceled => StripeStatus::Canceled,
        S::Paused => StripeStatus::Paused,
        _ => return None,
    };
    Some(SubscriptionSnapshot {
        subscription_id: s.id.to_string(),
        status,
        plan,
        cycle,
        period_start: time(item.current_period_start),
        period_end: time(item.current_period_end),
        cancel_at_period_end: s.cancel_at_period_end,
    })
}

/// The domain's account of a Stripe invoice.
pub fn invoice_facts(i: &stripe_shared::Invoice) -> Option<InvoiceFacts> {
    let currency = i.currency.to_string().to_ascii_uppercase();
    let money = |minor: i64| Money::parse(minor.max(0), &currency).ok();
    let (start, end) = i
        .lines
        .data
        .first()
        .map(|l| (l.period.start, l.period.end))
        .unwrap_or((i.period_start, i.period_end));
    Some(InvoiceFacts {
        invoice_id: i.id.as_ref()?.to_string(),
        number: i.number.clone(),
        period_start: time(start),
        period_end: time(end),
        amount_due: money(i.amount_due)?,
        amount_paid: money(i.amount_paid)?,
        hosted_url: i.hosted_invoice_url.clone(),
    })
}

/// The customer an invoice or a subscription names.
pub fn customer_id<T: stripe_types::Object>(customer: &stripe_types::Expandable<T>) -> String
where
    T::Id: std::fmt::Display,
{
    match customer {
        stripe_types::Expandable::Id(id) => id.to_string(),
        stripe_types::Expandable::Object(object) => object.id().to_string(),
    }
}
