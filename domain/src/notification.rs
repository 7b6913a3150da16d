//! The emails the platform sends a business: what each causing event (an invitation, a usage
//! threshold, a failed payment and its reminders, a suspension, a reinstatement, a trial
//! ending, WhatsApp credentials gone bad) sent to whom, and how it went. One stream per tenant:
//! `notification/<tenant_id>`. The notifier claims each email before sending it, so an email
//! goes out at most once per causing event and recipient; this stream is its outcome.
//!
//! Templates are data ([`templates`]): a subject and a body with `{placeholders}`, the
//! business's name always among them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decider::Decider;
use crate::event::DomainEvent;

/// Which email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Template {
    UsageWarning,
    UsageLimit,
    PaymentFailed,
    PaymentReminder,
    Suspended,
    Reinstated,
    TrialEnding,
    TrialEnded,
    WhatsAppCredentials,
    Invitation,
    PasswordReset,
    WebhookDisabled,
    ErasureRequested,
    EmailVerification,
}

crate::labels::labels!(Template {
    UsageWarning => "usage_warning",
    UsageLimit => "usage_limit",
    PaymentFailed => "payment_failed",
    PaymentReminder => "payment_reminder",
    Suspended => "suspended",
    Reinstated => "reinstated",
    TrialEnding => "trial_ending",
    TrialEnded => "trial_ended",
    WhatsAppCredentials => "whats_app_credentials",
    Invitation => "invitation",
    PasswordReset => "password_reset",
    WebhookDisabled => "webhook_disabled",
    ErasureRequested => "erasure_requested",
    EmailVerification => "email_verification",
});

/// A template's subject and body, with `{business_name}` and the template's own placeholders.
pub struct Text {
    pub subject: &'static str,
    pub body: &'static str,
}

/// Every email's text.
pub fn templates(template: Template) -> Text {
    use Template as T;
    match template {
        T::UsageWarning => Text {
            subject: "{business_name}: {percent}% of this month's {metric} used",
            body: "Hello,\n\n{business_name} has used {used} of the {limit} {metric} its plan \
                   includes this month ({percent}%).\n\nTo keep taking bookings without a pause, \
                   upgrade here: {upgrade_url}\n",
        },
        T::UsageLimit => Text {
            subject: "{business_name}: this month's {metric} are used up",
            body: "Hello,\n\n{business_name} has used all {limit} {metric} of its plan this \
                   month. New online bookings are paused until the month ends or you upgrade: \
                   {upgrade_url}\n\nWhatsApp conversations go on; messages over the limit are \
                   billed as overage.\n",
        },
        T::PaymentFailed => Text {
            subject: "{business_name}: a payment failed",
            body: "Hello,\n\nThe payment for {business_name}'s subscription failed. Stripe will \
                   try again; you can also update the card. Everything keeps working until \
                   {grace_ends}; after that the account is suspended until it is paid.\n\n\
                   {upgrade_url}\n",
        },
        T::PaymentReminder => Text {
            subject: "{business_name}: reminder, a payment is still due",
            body: "Hello,\n\nThe payment for {business_name}'s subscription is still due (day \
                   {day} of 7). The account is suspended on {grace_ends} unless it is paid.\n\n\
                   {upgrade_url}\n",
        },
        T::Suspended => Text {
            subject: "{business_name} is suspended for non-payment",
            body: "Hello,\n\n{business_name}'s account is suspended because an invoice is \
                   unpaid. Customers on WhatsApp are told to contact you directly. A payment \
                   reinstates the account at once; nothing is deleted.\n\n{upgrade_url}\n",
        },
        T::Reinstated => Text {
            subject: "{business_name} is back",
            body: "Hello,\n\nThe payment arrived: {business_name} is active again, and the \
                   WhatsApp bot takes bookings as before.\n",
        },
        T::TrialEnding => Text {
            subject: "{business_name}: your trial ends on {trial_ends}",
            body: "Hello,\n\n{business_name}'s free trial ends on {trial_ends}. Choose a plan to \
                   keep taking bookings: {upgrade_url}\n",
        },
        T::TrialEnded => Text {
            subject: "{business_name}: your trial has ended",
            body: "Hello,\n\n{business_name}'s free trial has ended. Online bookings are paused; \
                   nothing is deleted. Choose a plan to start again: {upgrade_url}\n",
        },
        T::Invitation => Text {
            subject: "{business_name} invites you to its booking dashboard",
            body: "Hello,\n\n{business_name} has invited you to its booking dashboard as {role}. \
                   Choose a password here to join (the link works until {expires}):\n\n\
                   {link}\n",
        },
        T::EmailVerification => Text {
            subject: "{business_name}: confirm your email",
            body: "Hello,\n\nTo start taking bookings for {business_name}, and to connect its \
                   WhatsApp number, confirm that this address is yours (the link works until \
                   {expires}, once):\n\n{link}\n\nIf you did not sign up, ignore this email; \
                   nothing happens without the link.\n",
        },
        T::PasswordReset => Text {
            subject: "{business_name}: reset your password",
            body: "Hello,\n\nSomeone asked to reset your password for {business_name}'s booking \
                   dashboard. If it was you, choose a new one here (the link works until \
                   {expires}, once):\n\n{link}\n\nIf it was not you, ignore this email; your \
                   password stays as it is.\n",
        },
        T::WhatsAppCredentials => Text {
            subject: "{business_name}: WhatsApp stopped accepting the platform's token",
            body: "Hello,\n\nMeta refused {business_name}'s WhatsApp access token, so the bot \
                   cannot reply. Connect the number again with a new token to resume.\n",
        },
        T::WebhookDisabled => Text {
            subject: "{business_name}: webhook deliveries to {url} have stopped",
            body: "Hello,\n\nEvery delivery of {business_name}'s events to {url} has failed since \
                   {since} (the last: {error}), so the platform stopped sending to it. Nothing is \
                   lost: once the receiver works again, enable the endpoint and its events \
                   arrive from where they stopped.\n",
        },
        // Nothing of the customer here: an email is not erased with them.
        T::ErasureRequested => Text {
            subject: "{business_name}: a customer asked to have their data deleted",
            body: "Hello,\n\nA customer asked {business_name}'s WhatsApp assistant to delete \
                   their data. Their conversation heads your inbox, marked \"asks to delete their \
                   data\": erase them there, or tell them there what you must keep (an invoice, \
                   say). The GDPR gives you one month to answer.\n",
        },
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationCommand {
    /// The notifier's outcome for one email of a causing event.
    RecordOutcome {
        cause: Uuid,
        template: Template,
        to: String,
        sent: bool,
        error: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum NotificationEvent {
    EmailSent {
        cause: Uuid,
        template: Template,
        to: String,
    },
    EmailFailed {
        cause: Uuid,
        template: Template,
        to: String,
        error: String,
    },
}

impl DomainEvent for NotificationEvent {
    const STREAM_TYPE: &'static str = "notification";

    fn event_type(&self) -> &'static str {
        match self {
            Self::EmailSent { .. } => "EmailSent",
            Self::EmailFailed { .. } => "EmailFailed",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct NotificationState {
    /// The (cause, recipient) pairs with an outcome.
    pub settled: BTreeSet<(Uuid, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {}

pub struct Notifications;

impl Decider for Notifications {
    type State = NotificationState;
    type Command = NotificationCommand;
    type Event = NotificationEvent;
    type Error = NotificationError;

    fn decide(
        state: &NotificationState,
        command: NotificationCommand,
    ) -> Result<Vec<NotificationEvent>, NotificationError> {
        let NotificationCommand::RecordOutcome {
            cause,
            template,
            to,
            sent,
            error,
        } = command;
        if state.settled.contains(&(cause, to.clone())) {
            return Ok(vec![]);
        }
        Ok(vec![if sent {
            NotificationEvent::EmailSent {
                cause,
                template,
                to,
            }
        } else {
            NotificationEvent::EmailFailed {
                cause,
                template,
                to,
                error: error.unwrap_or_default(),
            }
        }])
    }

    fn evolve(mut state: NotificationState, event: &NotificationEvent) -> NotificationState {
        match event {
            NotificationEvent::EmailSent { cause, to, .. }
            | NotificationEvent::EmailFailed { cause, to, .. } => {
                state.settled.insert((*cause, to.clone()));
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::scenario::given;

    #[test]
    fn an_outcome_is_recorded_once_per_cause_and_recipient() {
        let sent = NotificationEvent::EmailSent {
            cause: Uuid::from_u128(1),
            template: Template::Suspended,
            to: "owner@salon.example".into(),
        };
        let command = NotificationCommand::RecordOutcome {
            cause: Uuid::from_u128(1),
            template: Template::Suspended,
            to: "owner@salon.example".into(),
            sent: true,
            error: None,
        };
        given::<Notifications>(&[])
            .when(command.clone())
            .then_expect(std::slice::from_ref(&sent));
        given::<Notifications>(&[sent])
            .when(command)
            .then_expect(&[]);
    }

    #[test]
    fn every_template_names_the_business() {
        for template in Template::ALL {
            let text = templates(*template);
            assert!(text.subject.contains("{business_name}"), "{template:?}");
            assert!(text.body.contains("{business_name}"), "{template:?}");
        }
    }
}
