//! What a use case answers when it does not do what was asked. One type for every use case;
//! the HTTP services turn it into problem+json in one place (`platform::problem`), the
//! webhook and the reactors match on it.

use chrono::{DateTime, Utc};
use domain::access::AccessError;
use domain::agenda::AgendaError;
use domain::billing::BillingError;
use domain::booking::BookingError;
use domain::bot_config::BotConfigError;
use domain::conversation::ConversationError;
use domain::scheduling::SchedulingError;
use domain::tenant::TenantError;

/// An input named by the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The domain refused the command: it does not fit the state the aggregate is in.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Input that is well formed but not acceptable, field by field.
    #[error("invalid input: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// No such thing in this tenant. Another tenant's ids read as absent.
    #[error("no such {0}")]
    NotFound(&'static str),
    /// Someone else holds it (a slug, a member's email, a WhatsApp number), or the request
    /// contradicts what exists.
    #[error("{detail}")]
    Conflict {
        detail: String,
        field: Option<FieldError>,
    },
    /// The time asked for is not free; `free` lists times of that day that are, soonest first.
    #[error("that time is not free")]
    SlotTaken { free: Vec<DateTime<Utc>> },
    /// The caller's role or scopes do not allow this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Missing, wrong or expired credentials. Never says which.
    #[error("not authenticated")]
    Unauthenticated,
    /// The password was right; the member's second factor is needed too.
    #[error("a one-time code is required")]
    SecondFactorRequired,
    /// The tenant is suspended, with the reason.
    #[error("the account is suspended: {0}")]
    Suspended(String),
    /// The plan does not allow it now (a limit reached, no subscription): `upgrade_url` is
    /// where the business fixes that.
    #[error("{detail}")]
    PaymentRequired { detail: String, upgrade_url: String },
    /// The idempotency key was used before for another request.
    #[error("this idempotency key was already used for a different request")]
    IdempotencyMismatch,
    /// The streams kept moving under the command: the executor gave up. Worth a retry.
    #[error("too many concurrent changes")]
    Busy,
    /// A service the use case needs did not answer.
    #[error("{detail}")]
    Unavailable {
        detail: String,
        retry_after_secs: u64,
    },
    /// The store failed, or what it holds cannot be read. Logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// The command was refused for what the state holds (not for who asks, nor because a
    /// service failed): the same request on an earlier state might have been accepted.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Rejected(_)
                | Self::Invalid(_)
                | Self::NotFound(_)
                | Self::Conflict { .. }
                | Self::SlotTaken { .. }
                | Self::PaymentRequired { .. }
        )
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }

    /// Taken by someone else: `field` says which input.
    pub fn taken(field: &str, message: &str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
            field: Some(FieldError::new(field, message)),
        }
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::Conflict {
            detail: detail.into(),
            field: None,
        }
    }

    /// A failure of ours, with what we were doing.
    pub fn internal(what: impl std::fmt::Display) -> Self {
        Self::Internal(anyhow::anyhow!("{what}"))
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
    }
}

/// A domain rejection, by the aggregate that refused.
#[derive(Debug, thiserror::Error)]
pub enum Rejection {
    #[error(transparent)]
    Booking(#[from] BookingError),
    #[error(transparent)]
    Agenda(#[from] AgendaError),
    #[error(transparent)]
    BotConfig(#[from] BotConfigError),
    #[error("the member {0}")]
    Member(AccessError),
    #[error("the API key {0}")]
    ApiKey(AccessError),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Conversation(#[from] ConversationError),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Webhook(#[from] domain::webhook::WebhookError),
}

impl From<SchedulingError> for Rejection {
    fn from(err: SchedulingError) -> Self {
        match err {
            SchedulingError::Booking(e) => Self::Booking(e),
            SchedulingError::Agenda(e) => Self::Agenda(e),
        }
    }
}

macro_rules! rejected_by {
    ($($error:ty),*) => {$(
        impl From<$error> for AppError {
            fn from(err: $error) -> Self {
                Self::Rejected(err.into())
            }
        }
    )*};
}

rejected_by!(
    BookingError,
    AgendaError,
    BotConfigError,
    TenantError,
    ConversationError,
    SchedulingError,
    BillingError,
    domain::webhook::WebhookError
);

/// The realworld-axum-sqlx idiom: a violated constraint is a client's conflict, anything
/// else a failure of ours.
pub trait ConstraintExt<T> {
    fn on_constraint(self, constraint: &str, err: impl FnOnce() -> AppError)
    -> Result<T, AppError>;
}

impl<T> ConstraintExt<T> for Result<T, sqlx::Error> {
    fn on_constraint(
        self,
        constraint: &str,
        err: impl FnOnce() -> AppError,
    ) -> Result<T, AppError> {
        self.map_err(|e| match &e {
            sqlx::Error::Database(db) if db.constraint() == Some(constraint) => err(),
            _ => AppError::from(e),
        })
    }
}
