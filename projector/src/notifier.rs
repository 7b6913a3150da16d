//! The notifier: a reactor that emails invitees their invitation, a new business's owner the
//! link that verifies their email, members their password-reset link, and a business's owners and
//! admins what its billing and its WhatsApp connection need them to know (usage at 80 % and 100 % of a limit, a failed
//! payment and the reminders of its grace period, a suspension, a reinstatement, a trial
//! ending and ended, WhatsApp credentials refused by Meta, a customer's request to delete their
//! data), over SMTP with `lettre`.
//!
//! Each email is claimed before it is sent (`email_claims`, one row per causing event and
//! recipient), so it goes out at most once whatever the redeliveries; its outcome is an event
//! on the tenant's notification stream. An SMTP server that cannot be reached gives the claim
//! back and the event is delivered again later; one that refuses the message for good is a
//! failed outcome. Templates are data (`domain::notification`), with the business's name.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use domain::DomainEvent as _;
use domain::billing::BillingEvent;
use domain::bot::message::render;
use domain::conversation::ConversationEvent;
use domain::notification::{Template, templates};
use domain::plan::Metric;
use domain::tenant::TenantEvent;
use domain::webhook::{DisableReason, WebhookEvent};
use eventstore::RecordedEvent;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use tokio_util::sync::CancellationToken;

use crate::consumer::{consume, receive};

pub const BILLING_DURABLE: &str = "notifier-billing";
pub const TENANT_DURABLE: &str = "notifier-tenant";
pub const VERIFICATION_DURABLE: &str = "notifier-verification";
pub const USER_DURABLE: &str = "notifier-user";
pub const WEBHOOK_DURABLE: &str = "notifier-webhook";
pub const CONVERSATION_DURABLE: &str = "notifier-conversation";

#[derive(Debug, Default)]
pub struct NotifierStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
}

#[derive(Clone)]
pub struct Notifier {
    pub app: app::App,
    pub mailer: AsyncSmtpTransport<Tokio1Executor>,
    pub from: Mailbox,
    /// Where the emails send a business to pay or upgrade.
    pub billing_url: String,
    /// Where an invitee accepts (`?token=` is added).
    pub invitation_url: String,
    /// Where a member chooses a new password (`?token=` is added).
    pub reset_url: String,
    /// Where the owner verifies the business's email (`?token=` is added).
    pub verify_email_url: String,
    pub retry_after: Duration,
    pub stats: Arc<NotifierStats>,
}

/// An email a causing event asks for: which, and its placeholders.
pub fn email_for(event: &RecordedEvent) -> Option<(Template, Vec<(&'static str, String)>)> {
    let day = |at: chrono::DateTime<chrono::Utc>| at.format("%a %-d %b %Y").to_string();
    match event.stream.stream_type.as_str() {
        BillingEvent::STREAM_TYPE => {
            use BillingEvent as E;
            let billing =
                domain::event::decode::<BillingEvent>(&event.event_type, &event.payload).ok()?;
            Some(match billing {
                E::UsageThresholdReached {
                    metric,
                    threshold,
                    used,
                    limit,
                    ..
                } => {
                    let metric = match metric {
                        Metric::Bookings => "bookings",
                        Metric::Messages => "WhatsApp messages",
                    };
                    let template = if threshold >= 100 {
                        Template::UsageLimit
                    } else {
                        Template::UsageWarning
                    };
                    (
                        template,
                        vec![
                            ("metric", metric.to_owned()),
                            ("percent", threshold.to_string()),
                            ("used", used.to_string()),
                            ("limit", limit.to_string()),
                        ],
                    )
                }
                E::GracePeriodStarted { ends_at, .. } => {
                    (Template::PaymentFailed, vec![("grace_ends", day(ends_at))])
                }
                E::PaymentReminderDue {
                    day: n,
                    grace_ends_at,
                    ..
                } => (
                    Template::PaymentReminder,
                    vec![("day", n.to_string()), ("grace_ends", day(grace_ends_at))],
                ),
                E::SuspendedForNonPayment { .. } => (Template::Suspended, vec![]),
                E::Reinstated { .. } => (Template::Reinstated, vec![]),
                E::TrialEndingSoon { ends_at } => {
                    (Template::TrialEnding, vec![("trial_ends", day(ends_at))])
                }
                E::TrialEnded { .. } => (Template::TrialEnded, vec![]),
                _ => return None,
            })
        }
        TenantEvent::STREAM_TYPE if event.event_type == "WhatsAppCredentialsInvalidated" => {
            Some((Template::WhatsAppCredentials, vec![]))
        }
        WebhookEvent::STREAM_TYPE => {
            match domain::event::decode::<WebhookEvent>(&event.event_type, &event.payload).ok()? {
                WebhookEvent::WebhookEndpointDisabled {
                    reason:
                        DisableReason::Failing {
                            failing_since,
                            last_error,
                        },
                } => Some((
                    Template::WebhookDisabled,
                    vec![
                        (
                            "since",
                            failing_since.format("%a %-d %b %Y %H:%M UTC").to_string(),
                        ),
                        ("error", last_error),
                    ],
                )),
                _ => None,
            }
        }
        // A customer's request the business decides on (one erased at once needs no one).
        ConversationEvent::STREAM_TYPE => {
            match domain::event::decode::<ConversationEvent>(&event.event_type, &event.payload)
                .ok()?
            {
                ConversationEvent::ErasureRequested { after_reply: None } => {
                    Some((Template::ErasureRequested, vec![]))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// An email to one person about their own account, with a link whose token the vault keeps
/// sealed until it is sent.
struct Personal {
    to: String,
    template: Template,
    vars: Vec<(&'static str, String)>,
    sealed: Sealed,
}

/// Whose sealed token a personal email carries (forgotten once it is sent).
enum Sealed {
    Invitation(uuid::Uuid),
    Reset(uuid::Uuid),
    Verification,
}

enum Disposition {
    Ack,
    Retry(Duration),
}

impl Notifier {
    /// Runs both consumers until `cancel`.
    pub async fn run(
        self,
        nats: async_nats::Client,
        ns: nats::Namespace,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        let prefix = ns.all_events().trim_end_matches('>').to_owned();
        let billing = format!("{prefix}*.{}.>", BillingEvent::STREAM_TYPE);
        let tenant = format!(
            "{prefix}*.{}.WhatsAppCredentialsInvalidated",
            TenantEvent::STREAM_TYPE
        );
        let user = format!("{prefix}*.{}.>", domain::access::UserEvent::STREAM_TYPE);
        let webhook = format!(
            "{prefix}*.{}.WebhookEndpointDisabled",
            WebhookEvent::STREAM_TYPE
        );
        let conversation = format!(
            "{prefix}*.{}.ErasureRequested",
            ConversationEvent::STREAM_TYPE
        );
        let verification = format!(
            "{prefix}*.{}.EmailVerificationRequested",
            TenantEvent::STREAM_TYPE
        );
        let upcasters = app::events::upcasters();
        let (notifier, upcasters) = (&self, &upcasters);
        let handle = move |messages: Vec<jetstream::Message>| async move {
            let received = receive(
                notifier.app.store.pool(),
                upcasters,
                messages,
                notifier.retry_after,
            )
            .await;
            for (message, event) in received {
                let _ = match notifier.handle(&event).await {
                    Disposition::Ack => message.ack().await,
                    Disposition::Retry(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
                };
            }
        };
        let batch = (64, Duration::from_millis(20));
        tokio::try_join!(
            consume(&nats, &ns, BILLING_DURABLE, billing, batch, &cancel, handle),
            consume(&nats, &ns, TENANT_DURABLE, tenant, batch, &cancel, handle),
            consume(
                &nats,
                &ns,
                VERIFICATION_DURABLE,
                verification,
                batch,
                &cancel,
                handle
            ),
            consume(&nats, &ns, USER_DURABLE, user, batch, &cancel, handle),
            consume(&nats, &ns, WEBHOOK_DURABLE, webhook, batch, &cancel, handle),
            consume(
                &nats,
                &ns,
                CONVERSATION_DURABLE,
                conversation,
                batch,
                &cancel,
                handle
            ),
        )?;
        Ok(())
    }

    /// The URL of the endpoint an event is about (from its registration).
    async fn webhook_url(&self, event: &RecordedEvent) -> anyhow::Result<String> {
        let history = self
            .app
            .store
            .read_stream(event.tenant_id, &event.stream, 0)
            .await?;
        for recorded in history {
            if let Ok(WebhookEvent::WebhookEndpointRegistered { url, .. }) =
                domain::event::decode::<WebhookEvent>(&recorded.event_type, &recorded.payload)
            {
                return Ok(url.as_str().to_owned());
            }
        }
        anyhow::bail!("endpoint {} has no registration", event.stream.stream_id)
    }

    async fn handle(&self, event: &RecordedEvent) -> Disposition {
        match self.try_handle(event).await {
            Ok(d) => d,
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), event_id = %event.event_id, "notifier failed; will retry");
                Disposition::Retry(self.retry_after)
            }
        }
    }

    async fn try_handle(&self, event: &RecordedEvent) -> anyhow::Result<Disposition> {
        let tenant = event.tenant_id;
        // An invitee's, a member's or an owner's own email: its token is the vault's, sealed
        // until sent.
        let personal = if event.stream.stream_type == domain::access::UserEvent::STREAM_TYPE {
            let user_event = domain::event::decode(&event.event_type, &event.payload)?;
            match self.personal(event, user_event).await? {
                Some(personal) => Some(personal),
                None => return Ok(Disposition::Ack),
            }
        } else if event.event_type == "EmailVerificationRequested" {
            match self.verification(event).await? {
                Some(personal) => Some(personal),
                None => return Ok(Disposition::Ack),
            }
        } else {
            None
        };
        let (template, mut vars, recipients) = match &personal {
            Some(p) => (p.template, p.vars.clone(), vec![p.to.clone()]),
            None => {
                let Some((template, vars)) = email_for(event) else {
                    return Ok(Disposition::Ack);
                };
                let admins = app::notifications::admins(&self.app, tenant).await?;
                if admins.is_empty() {
                    // Every business has an owner: none yet is the members' read model behind
                    // (a business onboarded a moment ago), and the email waits for it, for a
                    // while (a business made of events alone, as a benchmark's, has nobody).
                    if chrono::Utc::now() - event.recorded_at < chrono::Duration::minutes(10) {
                        return Ok(Disposition::Retry(self.retry_after));
                    }
                    tracing::warn!(%tenant, event_id = %event.event_id, "no owner or admin to email");
                }
                (template, vars, admins)
            }
        };
        if event.stream.stream_type == WebhookEvent::STREAM_TYPE {
            vars.push(("url", self.webhook_url(event).await?));
        }
        let (business_name, _) = app::tenants::profile(&self.app.store, tenant).await?;
        vars.push(("business_name", business_name));
        vars.push(("upgrade_url", self.billing_url.clone()));
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let text = templates(template);
        let (subject, body) = (render(text.subject, &vars), render(text.body, &vars));
        let mut retry = false;
        for to in recipients {
            if !app::notifications::claim(&self.app, tenant, event.event_id, &to, template).await? {
                continue;
            }
            let outcome = match to.parse::<Mailbox>() {
                Ok(mailbox) => {
                    let message = Message::builder()
                        .from(self.from.clone())
                        .to(mailbox)
                        .subject(subject.clone())
                        .body(body.clone())?;
                    self.mailer.send(message).await.map(|_| ())
                }
                Err(err) => {
                    app::notifications::record_outcome(
                        &self.app,
                        tenant,
                        event.event_id,
                        template,
                        &to,
                        Some(format!("not an address: {err}")),
                    )
                    .await?;
                    continue;
                }
            };
            match outcome {
                Ok(()) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    app::notifications::record_outcome(
                        &self.app,
                        tenant,
                        event.event_id,
                        template,
                        &to,
                        None,
                    )
                    .await?;
                }
                Err(err) if err.is_permanent() => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    app::notifications::record_outcome(
                        &self.app,
                        tenant,
                        event.event_id,
                        template,
                        &to,
                        Some(err.to_string()),
                    )
                    .await?;
                }
                Err(err) => {
                    // Not delivered to the server: the claim goes back and the event comes again.
                    tracing::warn!(error = %err, "the SMTP server did not take an email; will retry");
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    app::notifications::release(&self.app, tenant, event.event_id, &to).await?;
                    retry = true;
                }
            }
        }
        if retry {
            return Ok(Disposition::Retry(self.retry_after));
        }
        match personal.map(|p| (p.sealed, p.to)) {
            Some((Sealed::Invitation(user_id), _)) => {
                app::notifications::invitation_emailed(&self.app, tenant, user_id).await?;
            }
            Some((Sealed::Reset(user_id), _)) => {
                app::notifications::reset_emailed(&self.app, tenant, user_id).await?
            }
            Some((Sealed::Verification, to)) => {
                app::email_verification::emailed(&self.app, tenant, &to).await?
            }
            None => {}
        }
        Ok(Disposition::Ack)
    }

    /// The link that verifies the business's email, to the address it was made for (`None`:
    /// emailed already, or the address changed since and a newer link went to the new one).
    async fn verification(&self, event: &RecordedEvent) -> anyhow::Result<Option<Personal>> {
        let TenantEvent::EmailVerificationRequested { email, .. } =
            domain::event::decode(&event.event_type, &event.payload)?
        else {
            return Ok(None);
        };
        let Some((token, expires)) =
            app::email_verification::token_to_email(&self.app, event.tenant_id, email.as_str())
                .await?
        else {
            return Ok(None);
        };
        Ok(Some(Personal {
            sealed: Sealed::Verification,
            to: email.as_str().to_owned(),
            template: Template::EmailVerification,
            vars: vec![
                (
                    "expires",
                    expires.format("%a %-d %b %Y %H:%M UTC").to_string(),
                ),
                ("link", format!("{}?token={token}", self.verify_email_url)),
            ],
        }))
    }

    /// The email a member's own event asks for (`None`: nothing to send).
    async fn personal(
        &self,
        event: &RecordedEvent,
        user_event: domain::access::UserEvent,
    ) -> anyhow::Result<Option<Personal>> {
        use domain::access::UserEvent as U;
        let tenant = event.tenant_id;
        let user_id: uuid::Uuid = event.stream.stream_id.parse()?;
        let when =
            |t: chrono::DateTime<chrono::Utc>| t.format("%a %-d %b %Y %H:%M UTC").to_string();
        Ok(match user_event {
            U::UserInvited { email, role, .. } => {
                // The owner who signed up has no invitation; one emailed already, no token.
                let Some((token, expires)) =
                    app::notifications::invitation_token(&self.app, tenant, user_id).await?
                else {
                    return Ok(None);
                };
                Some(Personal {
                    sealed: Sealed::Invitation(user_id),
                    to: email.as_str().to_owned(),
                    template: Template::Invitation,
                    vars: vec![
                        ("role", role.as_str().to_owned()),
                        ("expires", when(expires)),
                        ("link", format!("{}?token={token}", self.invitation_url)),
                    ],
                })
            }
            U::PasswordResetRequested { .. } => {
                let Some((token, expires)) =
                    app::notifications::reset_token(&self.app, tenant, user_id).await?
                else {
                    return Ok(None);
                };
                let Some(to) = app::notifications::email_of(&self.app, tenant, user_id).await?
                else {
                    return Ok(None);
                };
                Some(Personal {
                    sealed: Sealed::Reset(user_id),
                    to,
                    template: Template::PasswordReset,
                    vars: vec![
                        ("expires", when(expires)),
                        ("link", format!("{}?token={token}", self.reset_url)),
                    ],
                })
            }
            _ => None,
        })
    }
}
