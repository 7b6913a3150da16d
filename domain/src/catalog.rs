//! `domain/EVENTS.md`, the event catalog, is generated from one sample of every event and this
//! table of meanings; the test fails when the file is out of date (run it with
//! `UPDATE_EVENTS_MD=1` to rewrite the file).

use serde_json::Value;

use crate::access::{ApiKeyEvent, Permission, Role, UserEvent};
use crate::agenda::{AgendaEvent, Interval};
use crate::billing::BillingEvent;
use crate::booking::{BookingEvent, Channel, Customer, Party};
use crate::bot::engine::BotState;
use crate::bot::message::{Inbound, Reply};
use crate::bot_config::BotConfigEvent;
use crate::bot_config::tests::{haircut, settings};
use crate::conversation::{ConversationEvent, DeliveryStatus};
use crate::event::{DomainEvent, encode};
use crate::ids::*;
use crate::notification::{NotificationEvent, Template};
use crate::plan::Plan;
use crate::tenant::TenantEvent;
use crate::values::*;
use crate::waitlist::WaitlistEvent;
use crate::webhook::{DisableReason, WebhookEvent, WebhookUrl};

fn uuid(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(n)
}

fn interval() -> Interval {
    Interval::new(
        "2026-12-01T09:00:00Z".parse().unwrap(),
        "2026-12-01T09:45:00Z".parse().unwrap(),
    )
    .unwrap()
}

fn phone() -> PhoneNumber {
    PhoneNumber::parse("+34600000001").unwrap()
}

/// One stored event: type, schema version, payload.
pub(crate) type Row = (String, u32, Value);
/// A stream type, what its streams are, and one row per event type.
pub(crate) type Section = (&'static str, &'static str, Vec<Row>);

/// Every variant, once. `variants` matches exhaustively, so a new variant does not compile
/// until it is listed here.
pub(crate) fn samples() -> Vec<Section> {
    fn rows<E: DomainEvent>(
        events: Vec<E>,
        variants: fn(&E) -> usize,
        count: usize,
    ) -> Vec<(String, u32, Value)> {
        let mut seen: Vec<usize> = events.iter().map(variants).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(
            seen.len(),
            count,
            "{}: one sample per variant",
            E::STREAM_TYPE
        );
        events
            .iter()
            .map(|e| {
                let encoded = encode(e);
                (
                    encoded.event_type.to_owned(),
                    encoded.schema_version,
                    encoded.payload,
                )
            })
            .collect()
    }
    let reason = Reason::parse("reason").unwrap();
    vec![
        (
            "tenant",
            "`tenant/<tenant_id>`: a business's lifecycle on the platform",
            rows(
                vec![
                    TenantEvent::TenantOnboarded {
                        tenant_id: TenantId::from_uuid(uuid(1)),
                        business_name: BusinessName::parse("Demo Salon").unwrap(),
                        slug: TenantSlug::parse("demo-salon").unwrap(),
                        contact_email: Email::parse("owner@demo.example").unwrap(),
                        time_zone: IanaTimeZone::parse("Europe/Madrid").unwrap(),
                        plan: Plan::Starter,
                        trial_ends_at: "2026-12-10T00:00:00Z".parse().unwrap(),
                        email_verified: false,
                    },
                    TenantEvent::TenantProfileUpdated {
                        business_name: Some(BusinessName::parse("X").unwrap()),
                        contact_email: Some(Email::parse("a@b.co").unwrap()),
                        time_zone: Some(IanaTimeZone::parse("UTC").unwrap()),
                    },
                    TenantEvent::EmailVerificationRequested {
                        email: Email::parse("owner@demo.example").unwrap(),
                        expires_at: "2026-12-03T00:00:00Z".parse().unwrap(),
                    },
                    TenantEvent::EmailVerified {
                        email: Email::parse("owner@demo.example").unwrap(),
                    },
                    TenantEvent::WhatsAppNumberConnected {
                        phone_number_id: "1065".into(),
                        display_phone_number: "+34 600".into(),
                    },
                    TenantEvent::WhatsAppNumberDisconnected {
                        phone_number_id: "1065".into(),
                    },
                    TenantEvent::WhatsAppCredentialsInvalidated {
                        phone_number_id: "1065".into(),
                        meta_error_code: 190,
                    },
                    TenantEvent::TenantSuspended {
                        reason: reason.clone(),
                        cause: crate::tenant::SuspensionCause::NonPayment,
                    },
                    TenantEvent::TenantReinstated,
                    TenantEvent::TenantClosed {
                        reason: reason.clone(),
                    },
                ],
                |e| match e {
                    TenantEvent::TenantOnboarded { .. } => 0,
                    TenantEvent::TenantProfileUpdated { .. } => 1,
                    TenantEvent::EmailVerificationRequested { .. } => 2,
                    TenantEvent::EmailVerified { .. } => 3,
                    TenantEvent::WhatsAppNumberConnected { .. } => 4,
                    TenantEvent::WhatsAppNumberDisconnected { .. } => 5,
                    TenantEvent::WhatsAppCredentialsInvalidated { .. } => 6,
                    TenantEvent::TenantSuspended { .. } => 7,
                    TenantEvent::TenantReinstated => 8,
                    TenantEvent::TenantClosed { .. } => 9,
                },
                10,
            ),
        ),
        (
            "bot_config",
            "`bot_config/main` of each tenant: what the bot says and offers",
            rows(
                vec![
                    BotConfigEvent::BotConfigured {
                        settings: Box::new(settings()),
                    },
                    BotConfigEvent::ServiceAdded { service: haircut() },
                    BotConfigEvent::ServiceUpdated { service: haircut() },
                    BotConfigEvent::ServiceRetired {
                        service_id: haircut().id,
                    },
                ],
                |e| match e {
                    BotConfigEvent::BotConfigured { .. } => 0,
                    BotConfigEvent::ServiceAdded { .. } => 1,
                    BotConfigEvent::ServiceUpdated { .. } => 2,
                    BotConfigEvent::ServiceRetired { .. } => 3,
                },
                4,
            ),
        ),
        (
            "booking",
            "`booking/<booking_id>`: one appointment",
            rows(
                vec![
                    BookingEvent::AppointmentRequested {
                        booking_id: BookingId::from_uuid(uuid(2)),
                        reference: "BK-000001".into(),
                        service_id: haircut().id,
                        service_name: "Haircut".into(),
                        price: Money::parse(2500, "EUR").unwrap(),
                        resource: ResourceId::default_resource(),
                        appointment: interval(),
                        customer: Customer {
                            phone: phone(),
                            name: Some("Ana".into()),
                        },
                        channel: Channel::WhatsApp,
                    },
                    BookingEvent::AppointmentConfirmed,
                    BookingEvent::AppointmentCancelled {
                        by: Party::Customer,
                        reason: Some(reason.clone()),
                    },
                    BookingEvent::AppointmentRescheduled {
                        from: interval(),
                        to: interval(),
                        from_resource: ResourceId::default_resource(),
                        to_resource: ResourceId::default_resource(),
                        by: Party::Business,
                    },
                    BookingEvent::AppointmentCompleted,
                    BookingEvent::AppointmentMarkedNoShow,
                    BookingEvent::RemindersScheduled {
                        at: vec!["2026-11-30T09:00:00Z".parse().unwrap()],
                    },
                    BookingEvent::ReminderSent {
                        at: "2026-11-30T09:00:00Z".parse().unwrap(),
                    },
                    BookingEvent::ReminderSkipped {
                        at: "2026-11-30T09:00:00Z".parse().unwrap(),
                    },
                    BookingEvent::AttendanceConfirmed,
                    BookingEvent::CustomerArrived {
                        at: "2026-11-30T09:55:00Z".parse().unwrap(),
                    },
                ],
                |e| match e {
                    BookingEvent::AppointmentRequested { .. } => 0,
                    BookingEvent::AppointmentConfirmed => 1,
                    BookingEvent::AppointmentCancelled { .. } => 2,
                    BookingEvent::AppointmentRescheduled { .. } => 3,
                    BookingEvent::AppointmentCompleted => 4,
                    BookingEvent::AppointmentMarkedNoShow => 5,
                    BookingEvent::RemindersScheduled { .. } => 6,
                    BookingEvent::ReminderSent { .. } => 7,
                    BookingEvent::AttendanceConfirmed => 8,
                    BookingEvent::ReminderSkipped { .. } => 9,
                    BookingEvent::CustomerArrived { .. } => 10,
                },
                11,
            ),
        ),
        (
            "waitlist",
            "`waitlist/<service_id>`: who waits for a time of a service, first come first",
            rows(
                vec![
                    WaitlistEvent::CustomerWaitlisted {
                        phone: phone(),
                        name: Some("Ana".into()),
                        at: "2026-11-30T08:30:00Z".parse().unwrap(),
                    },
                    WaitlistEvent::CustomerLeftWaitlist { phone: phone() },
                ],
                |e| match e {
                    WaitlistEvent::CustomerWaitlisted { .. } => 0,
                    WaitlistEvent::CustomerLeftWaitlist { .. } => 1,
                },
                2,
            ),
        ),
        (
            "agenda",
            "`agenda/<resource>:<local date>`: what a resource holds on a day",
            rows(
                vec![
                    AgendaEvent::SlotHeld {
                        resource: ResourceId::default_resource(),
                        day: "2026-12-01".parse().unwrap(),
                        booking_id: BookingId::from_uuid(uuid(2)),
                        interval: interval(),
                    },
                    AgendaEvent::SlotReleased {
                        resource: ResourceId::default_resource(),
                        day: "2026-12-01".parse().unwrap(),
                        booking_id: BookingId::from_uuid(uuid(2)),
                    },
                    AgendaEvent::SlotReserved {
                        resource: ResourceId::default_resource(),
                        day: "2026-12-01".parse().unwrap(),
                        booking_id: BookingId::from_uuid(uuid(2)),
                        interval: interval(),
                        until: "2026-11-30T08:40:00Z".parse().unwrap(),
                    },
                    AgendaEvent::ReservationReleased {
                        resource: ResourceId::default_resource(),
                        day: "2026-12-01".parse().unwrap(),
                        booking_id: BookingId::from_uuid(uuid(2)),
                    },
                    AgendaEvent::ReservationExpired {
                        resource: ResourceId::default_resource(),
                        day: "2026-12-01".parse().unwrap(),
                        booking_id: BookingId::from_uuid(uuid(2)),
                    },
                ],
                |e| match e {
                    AgendaEvent::SlotHeld { .. } => 0,
                    AgendaEvent::SlotReleased { .. } => 1,
                    AgendaEvent::SlotReserved { .. } => 2,
                    AgendaEvent::ReservationReleased { .. } => 3,
                    AgendaEvent::ReservationExpired { .. } => 4,
                },
                5,
            ),
        ),
        (
            "conversation",
            "`conversation/<subject id>`: one customer's WhatsApp conversation, named by their subject id (never by their phone)",
            rows(
                vec![
                    ConversationEvent::MessageReceived {
                        wamid: "wamid.1".into(),
                        from: phone(),
                        profile_name: Some("Ana".into()),
                        content: Inbound::Text { body: "hi".into() },
                        received_at: "2026-11-30T08:30:00Z".parse().unwrap(),
                    },
                    ConversationEvent::ConversationExpired,
                    ConversationEvent::BotReplied {
                        reply_id: "wamid.1/0".into(),
                        to: phone(),
                        reply: Reply::text("Welcome"),
                    },
                    ConversationEvent::BotStateChanged {
                        state: BotState::default(),
                    },
                    ConversationEvent::BookingAttached {
                        booking_id: BookingId::from_uuid(uuid(2)),
                    },
                    ConversationEvent::HandedOffToHuman,
                    ConversationEvent::OutboundMessageSent {
                        reply_id: "wamid.1/0".into(),
                        wamid: "wamid.out".into(),
                    },
                    ConversationEvent::OutboundMessageFailed {
                        reply_id: "wamid.1/0".into(),
                        code: 131047,
                        reason: "re-engagement".into(),
                    },
                    ConversationEvent::OutboundStatusChanged {
                        wamid: "wamid.out".into(),
                        status: DeliveryStatus::Read,
                    },
                    ConversationEvent::AnswerDeferred {
                        wamid: "wamid.1".into(),
                        until: "2026-11-30T08:31:00Z".parse().unwrap(),
                        noticed: true,
                    },
                    ConversationEvent::DeferralEnded {
                        wamid: "wamid.1".into(),
                    },
                    ConversationEvent::StaffTookOver {
                        by: format!("user:{}", uuid(3)),
                    },
                    ConversationEvent::StaffReplied {
                        reply_id: format!("staff/{}", uuid(5)),
                        to: phone(),
                        reply: Reply::text("See you at 10"),
                        by: format!("user:{}", uuid(3)),
                    },
                    ConversationEvent::HandedBackToBot {
                        by: format!("user:{}", uuid(3)),
                    },
                    ConversationEvent::CustomerErased {
                        bookings: vec![BookingId::from_uuid(uuid(2))],
                    },
                    ConversationEvent::ErasureRequested {
                        after_reply: Some("wamid.1/0".into()),
                    },
                ],
                |e| match e {
                    ConversationEvent::MessageReceived { .. } => 0,
                    ConversationEvent::ConversationExpired => 1,
                    ConversationEvent::BotReplied { .. } => 2,
                    ConversationEvent::BotStateChanged { .. } => 3,
                    ConversationEvent::BookingAttached { .. } => 4,
                    ConversationEvent::HandedOffToHuman => 5,
                    ConversationEvent::OutboundMessageSent { .. } => 6,
                    ConversationEvent::OutboundMessageFailed { .. } => 7,
                    ConversationEvent::OutboundStatusChanged { .. } => 8,
                    ConversationEvent::AnswerDeferred { .. } => 9,
                    ConversationEvent::DeferralEnded { .. } => 10,
                    ConversationEvent::StaffTookOver { .. } => 11,
                    ConversationEvent::StaffReplied { .. } => 12,
                    ConversationEvent::HandedBackToBot { .. } => 13,
                    ConversationEvent::CustomerErased { .. } => 14,
                    ConversationEvent::ErasureRequested { .. } => 15,
                },
                16,
            ),
        ),
        (
            "user",
            "`user/<user_id>`: a dashboard user (no password, no token)",
            rows(
                vec![
                    UserEvent::UserInvited {
                        user_id: UserId::from_uuid(uuid(3)),
                        email: Email::parse("a@b.co").unwrap(),
                        role: Role::Staff,
                        invited_by: Some(UserId::from_uuid(uuid(4))),
                    },
                    UserEvent::UserRoleChanged {
                        from: Role::Staff,
                        to: Role::Admin,
                    },
                    UserEvent::UserDeactivated,
                    UserEvent::SecondFactorEnabled,
                    UserEvent::PasswordResetRequested {
                        expires_at: "2026-12-01T11:00:00Z".parse().unwrap(),
                    },
                    UserEvent::PasswordReset,
                ],
                |e| match e {
                    UserEvent::UserInvited { .. } => 0,
                    UserEvent::UserRoleChanged { .. } => 1,
                    UserEvent::UserDeactivated => 2,
                    UserEvent::SecondFactorEnabled => 3,
                    UserEvent::PasswordResetRequested { .. } => 4,
                    UserEvent::PasswordReset => 5,
                },
                6,
            ),
        ),
        (
            "api_key",
            "`api_key/<key_id>`: an API key (its prefix only, never the secret)",
            rows(
                vec![
                    ApiKeyEvent::ApiKeyIssued {
                        key_id: ApiKeyId::from_uuid(uuid(5)),
                        name: "Website".into(),
                        prefix: "bk_live_3F9a".into(),
                        scopes: vec![Permission::ReadBookings],
                        expires_at: Some("2027-01-01T00:00:00Z".parse().unwrap()),
                        issued_by: UserId::from_uuid(uuid(4)),
                    },
                    ApiKeyEvent::ApiKeyRevoked {
                        revoked_by: UserId::from_uuid(uuid(4)),
                    },
                ],
                |e| match e {
                    ApiKeyEvent::ApiKeyIssued { .. } => 0,
                    ApiKeyEvent::ApiKeyRevoked { .. } => 1,
                },
                2,
            ),
        ),
        (
            "webhook_endpoint",
            "`webhook_endpoint/<endpoint_id>`: a URL the business receives its public events at",
            rows(
                vec![
                    WebhookEvent::WebhookEndpointRegistered {
                        endpoint_id: WebhookEndpointId::from_uuid(uuid(6)),
                        url: WebhookUrl::parse("https://crm.example.com/hooks/booking", false)
                            .unwrap(),
                        topics: vec!["booking.created".into()],
                        description: "Our CRM".into(),
                    },
                    WebhookEvent::WebhookEndpointDisabled {
                        reason: DisableReason::Failing {
                            failing_since: "2026-12-01T10:00:00Z".parse().unwrap(),
                            last_error: "HTTP 503".into(),
                        },
                    },
                    WebhookEvent::WebhookEndpointEnabled,
                    WebhookEvent::WebhookRedeliveryRequested { seq: 42 },
                    WebhookEvent::WebhookEndpointDeleted,
                ],
                |e| match e {
                    WebhookEvent::WebhookEndpointRegistered { .. } => 0,
                    WebhookEvent::WebhookEndpointDisabled { .. } => 1,
                    WebhookEvent::WebhookEndpointEnabled => 2,
                    WebhookEvent::WebhookRedeliveryRequested { .. } => 3,
                    WebhookEvent::WebhookEndpointDeleted => 4,
                },
                5,
            ),
        ),
        (
            "billing",
            "`billing/<tenant_id>`: a business's trial, subscription, payments and usage thresholds",
            rows(billing_samples(), billing_variant, 19),
        ),
        (
            "notification",
            "`notification/<tenant_id>`: the emails sent to a business, and how each went",
            rows(
                vec![
                    NotificationEvent::EmailSent {
                        cause: uuid(40),
                        template: Template::PaymentFailed,
                        to: "owner@demo-salon.example".into(),
                    },
                    NotificationEvent::EmailFailed {
                        cause: uuid(41),
                        template: Template::UsageWarning,
                        to: "admin@demo-salon.example".into(),
                        error: "550 mailbox unavailable".into(),
                    },
                ],
                |e| match e {
                    NotificationEvent::EmailSent { .. } => 0,
                    NotificationEvent::EmailFailed { .. } => 1,
                },
                2,
            ),
        ),
    ]
}

fn billing_samples() -> Vec<BillingEvent> {
    use crate::billing::{InvoiceFacts, UsageMonth};
    use crate::plan::{Cycle, Metric};
    let at = |s: &str| -> chrono::DateTime<chrono::Utc> { s.parse().unwrap() };
    let invoice = InvoiceFacts {
        invoice_id: "in_1".into(),
        number: Some("DEMO-0001".into()),
        period_start: at("2026-12-01T00:00:00Z"),
        period_end: at("2027-01-01T00:00:00Z"),
        amount_due: Money::parse(7900, "EUR").unwrap(),
        amount_paid: Money::parse(7900, "EUR").unwrap(),
        hosted_url: Some("https://invoice.stripe.com/i/in_1".into()),
    };
    let period = (at("2026-12-01T00:00:00Z"), at("2027-01-01T00:00:00Z"));
    vec![
        BillingEvent::TrialStarted {
            plan: Plan::Starter,
            started_at: at("2026-12-01T10:00:00Z"),
            ends_at: at("2026-12-15T10:00:00Z"),
        },
        BillingEvent::StripeCustomerCreated {
            customer_id: "cus_1".into(),
        },
        BillingEvent::CheckoutStarted {
            session_id: "cs_1".into(),
            url: "https://checkout.stripe.com/c/cs_1".into(),
            plan: Plan::Growth,
            cycle: Cycle::Monthly,
            at: at("2026-12-10T10:00:00Z"),
        },
        BillingEvent::SubscriptionStarted {
            subscription_id: "sub_1".into(),
            plan: Plan::Growth,
            cycle: Cycle::Monthly,
            period_start: period.0,
            period_end: period.1,
            observed_at: at("2026-12-10T10:01:00Z"),
        },
        BillingEvent::SubscriptionUpdated {
            plan: Plan::Growth,
            cycle: Cycle::Monthly,
            period_start: period.0,
            period_end: period.1,
            cancel_at_period_end: false,
            observed_at: at("2026-12-10T10:02:00Z"),
        },
        BillingEvent::PlanChanged {
            from: Plan::Growth,
            to: Plan::Pro,
            cycle: Cycle::Monthly,
            at: at("2026-12-12T10:00:00Z"),
        },
        BillingEvent::CancellationScheduled {
            effective_at: period.1,
        },
        BillingEvent::SubscriptionEnded { at: period.1 },
        BillingEvent::TrialEnded {
            at: at("2026-12-15T10:00:00Z"),
        },
        BillingEvent::InvoicePaid {
            invoice: invoice.clone(),
        },
        BillingEvent::PaymentFailed {
            invoice: invoice.clone(),
        },
        BillingEvent::PaymentActionRequired { invoice },
        BillingEvent::GracePeriodStarted {
            invoice_id: "in_1".into(),
            started_at: period.1,
            ends_at: at("2027-01-08T00:00:00Z"),
        },
        BillingEvent::GracePeriodEnded {
            invoice_id: "in_1".into(),
        },
        BillingEvent::SuspendedForNonPayment {
            at: at("2027-01-08T00:00:00Z"),
        },
        BillingEvent::Reinstated {
            invoice_id: "in_1".into(),
        },
        BillingEvent::UsageThresholdReached {
            month: UsageMonth::parse("2026-12").unwrap(),
            metric: Metric::Bookings,
            threshold: 80,
            used: 80,
            limit: 100,
        },
        BillingEvent::PaymentReminderDue {
            invoice_id: "in_1".into(),
            day: 3,
            grace_ends_at: at("2027-01-08T00:00:00Z"),
        },
        BillingEvent::TrialEndingSoon {
            ends_at: at("2026-12-15T10:00:00Z"),
        },
    ]
}

fn billing_variant(e: &BillingEvent) -> usize {
    use BillingEvent as E;
    match e {
        E::TrialStarted { .. } => 0,
        E::StripeCustomerCreated { .. } => 1,
        E::CheckoutStarted { .. } => 2,
        E::SubscriptionStarted { .. } => 3,
        E::SubscriptionUpdated { .. } => 4,
        E::PlanChanged { .. } => 5,
        E::CancellationScheduled { .. } => 6,
        E::SubscriptionEnded { .. } => 7,
        E::TrialEnded { .. } => 8,
        E::InvoicePaid { .. } => 9,
        E::PaymentFailed { .. } => 10,
        E::PaymentActionRequired { .. } => 11,
        E::GracePeriodStarted { .. } => 12,
        E::GracePeriodEnded { .. } => 13,
        E::SuspendedForNonPayment { .. } => 14,
        E::Reinstated { .. } => 15,
        E::UsageThresholdReached { .. } => 16,
        E::PaymentReminderDue { .. } => 17,
        E::TrialEndingSoon { .. } => 18,
    }
}

pub(crate) fn meaning(event_type: &str) -> &'static str {
    match event_type {
        "TenantOnboarded" => "A business signed up and its trial started.",
        "TenantProfileUpdated" => "Name, contact email or time zone changed (only what changed).",
        "EmailVerificationRequested" => {
            "A link to verify the contact email was made; the notifier emails it (the token is never in the event)."
        }
        "EmailVerified" => {
            "The owner followed the link: the business may connect WhatsApp and take bookings."
        }
        "WhatsAppNumberConnected" => {
            "A WhatsApp number was connected (its token is stored encrypted elsewhere)."
        }
        "WhatsAppNumberDisconnected" => "The number was disconnected or replaced.",
        "WhatsAppCredentialsInvalidated" => "Meta refused the stored token; admins must reconnect.",
        "TenantSuspended" => {
            "The tenant is locked (answers 423) for the reason given, by the operator or for non-payment."
        }
        "TenantReinstated" => "The suspension ended.",
        "TenantClosed" => "The tenant left the platform; nothing more happens to it.",
        "BotConfigured" => {
            "Hours, closures, rules, payment methods, keyword replies and flow texts were set."
        }
        "ServiceAdded" => {
            "A service was added (v1 had flat price_cents/currency/duration_minutes)."
        }
        "ServiceUpdated" => "A service's details changed.",
        "ServiceRetired" => "A service is no longer offered.",
        "AppointmentRequested" => "A booking was made for a service, time and customer.",
        "AppointmentConfirmed" => "The booking is confirmed (directly, or after payment).",
        "AppointmentCancelled" => "The customer or the business cancelled it.",
        "AppointmentRescheduled" => "It moved to another time (and possibly resource).",
        "AppointmentCompleted" => "The appointment took place.",
        "AppointmentMarkedNoShow" => "The customer did not come.",
        "SlotHeld" => "A booking holds an interval (its duration plus buffer) on the agenda.",
        "SlotReleased" => "A booking's interval is free again.",
        "SlotReserved" => {
            "A customer chose this time; it is kept for them until `until` (the booking that follows holds it under the same id)."
        }
        "ReservationReleased" => "The customer chose otherwise; the time is free again.",
        "ReservationExpired" => "Time ran out on a reservation; the time is free again.",
        "MessageReceived" => "The customer sent a message (once per WhatsApp message id).",
        "RemindersScheduled" => {
            "The reminders still to send to the customer, replacing any before (set at booking and on a move)."
        }
        "ReminderSent" => "The reminder due `at` went to the customer's conversation.",
        "ReminderSkipped" => {
            "The reminder due `at` could not go: no template, and the customer had not written within 24 hours."
        }
        "AttendanceConfirmed" => "The customer said they will come (a reminder's Confirm).",
        "CustomerArrived" => {
            "The front desk saw the customer come in (from two hours before the appointment; once)."
        }
        "CustomerWaitlisted" => {
            "Nothing was free: the customer waits for a time of the service and hears when one frees up."
        }
        "CustomerLeftWaitlist" => {
            "The customer no longer waits (booked the service, or said no thanks)."
        }
        "ConversationExpired" => "The previous session was idle too long and started over.",
        "BotReplied" => "A reply to send; the sender delivers each reply id once.",
        "BotStateChanged" => "The bot's memory of the conversation after a turn.",
        "BookingAttached" => "A booking belongs to this customer's conversation.",
        "HandedOffToHuman" => "The customer asked for a person; the bot stays quiet.",
        "OutboundMessageSent" => "The Cloud API accepted a reply and gave it a message id.",
        "OutboundMessageFailed" => "A reply could not be delivered (Meta's code and reason).",
        "OutboundStatusChanged" => {
            "A status webhook moved a reply forward (sent, delivered, read, failed)."
        }
        "AnswerDeferred" => {
            "The customer wrote faster than the bot may answer; this message is answered at `until` (the latest such message)."
        }
        "DeferralEnded" => {
            "No message waits for an answer any more (it was answered, or a later one was)."
        }
        "UserInvited" => "A person got access with a role (the owner at onboarding).",
        "UserRoleChanged" => "A user's role changed.",
        "UserDeactivated" => "A user can no longer sign in.",
        "SecondFactorEnabled" => "The user's logins need a TOTP code from now on.",
        "ApiKeyIssued" => "An API key was created with scopes and an optional expiry.",
        "ApiKeyRevoked" => "An API key stops working.",
        "TrialStarted" => "A new business's free trial of a plan, until its end.",
        "StripeCustomerCreated" => "Stripe made the business's customer.",
        "CheckoutStarted" => "A Stripe Checkout Session to subscribe (its hosted page's URL).",
        "SubscriptionStarted" => "A paid subscription exists (a checkout was completed).",
        "SubscriptionUpdated" => {
            "Stripe's account of the subscription changed (period, plan, ending)."
        }
        "PlanChanged" => "The business changed plan or cycle; it applies at once, prorated.",
        "CancellationScheduled" => "The subscription ends at the end of the period paid for.",
        "SubscriptionEnded" => "No paid access any more: bookings stop, nothing is deleted.",
        "TrialEnded" => "The trial ran out without a subscription: bookings stop.",
        "InvoicePaid" => "An invoice was paid.",
        "PaymentFailed" => "An invoice's payment failed (Stripe retries).",
        "PaymentActionRequired" => "The bank asks the customer to confirm a payment.",
        "GracePeriodStarted" => "A failed payment opened a grace period; everything still works.",
        "GracePeriodEnded" => "A payment arrived during the grace period.",
        "SuspendedForNonPayment" => "The grace period ran out unpaid: the business is suspended.",
        "Reinstated" => "A payment after suspension: the business is back.",
        "UsageThresholdReached" => {
            "A month's bookings or messages crossed 80 % or 100 % of the plan's limit."
        }
        "PaymentReminderDue" => "A day of the grace period to remind the business to pay (3, 6).",
        "TrialEndingSoon" => "The trial ends within three days and there is no subscription.",
        "PasswordResetRequested" => "A password reset was asked for; its link is emailed.",
        "PasswordReset" => "The password was changed with a reset link; every session ended.",
        "EmailSent" => "An email a billing or tenant event caused went to one recipient.",
        "EmailFailed" => "The SMTP server refused an email for good; it is not sent again.",
        "WebhookEndpointRegistered" => {
            "The business registered a URL for its public events (its signing secret is the vault's)."
        }
        "WebhookEndpointDisabled" => {
            "Deliveries stopped: turned off by the business, or every attempt failed for days."
        }
        "WebhookEndpointEnabled" => "Deliveries resume where they stopped.",
        "WebhookRedeliveryRequested" => {
            "The business asked for the public event numbered `seq` to be delivered again."
        }
        "WebhookEndpointDeleted" => "The endpoint is gone; nothing more is delivered to it.",
        "StaffTookOver" => {
            "A person of the business (`by`, an actor) answers this customer now; the bot is quiet."
        }
        "StaffReplied" => {
            "A person's reply to send (text in the 24-hour window, else the follow-up template); sent once per `reply_id`."
        }
        "HandedBackToBot" => "The bot answers this customer again, from the start of its flow.",
        "CustomerErased" => {
            "The customer was erased (their key is gone): what was personal reads as stand-ins; their `bookings` stay."
        }
        "ErasureRequested" => {
            "The customer asked on WhatsApp to have their data deleted. With `after_reply`, the business erases at once: `CustomerErased` follows that reply's outcome. Without, the business decides."
        }
        other => panic!("no meaning written for {other}"),
    }
}

fn catalog() -> String {
    let mut out = String::from(
        "# Event catalog\n\n\
         Generated from the domain by `cargo test -p domain catalog` (which fails while this file \
         is stale; `UPDATE_EVENTS_MD=1` rewrites it). Every event is stored with its type, schema \
         version and the payload fields below; metadata (actor, correlation, causation, request) \
         travels beside it. No event carries a secret.\n",
    );
    for (stream, about, events) in samples() {
        out.push_str(&format!("\n## {stream}\n\n{about}.\n\n| event | schema | payload fields | meaning |\n|---|---|---|---|\n"));
        for (event_type, version, payload) in events {
            let fields: Vec<String> = payload
                .as_object()
                .map(|o| o.keys().map(|k| format!("`{k}`")).collect())
                .unwrap_or_default();
            let fields = if fields.is_empty() {
                "none".to_owned()
            } else {
                fields.join(", ")
            };
            out.push_str(&format!(
                "| {event_type} | {version} | {fields} | {} |\n",
                meaning(&event_type)
            ));
        }
    }
    out
}

#[test]
fn the_event_catalog_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("EVENTS.md");
    let generated = catalog();
    if std::env::var_os("UPDATE_EVENTS_MD").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "domain/EVENTS.md is stale: run UPDATE_EVENTS_MD=1 cargo test -p domain catalog"
    );
}
