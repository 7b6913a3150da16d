//! A business's standing: whether it is open, suspended (with the operator's reason) or
//! gone; the operator's suspend and reinstate; Meta refusing its WhatsApp token.

use domain::Decider as _;
use domain::tenant::{
    SuspensionCause, Tenant, TenantCommand, TenantError, TenantEvent, TenantState, TenantStatus,
};
use domain::values::Reason;
use eventstore::{EventStore, StreamRef};
use uuid::Uuid;

use crate::events::{fold, stream};
use crate::{App, AppError, CommandContext, Committed, UnitOfWork, execute};

/// The tenant's stream.
pub fn tenant_stream(tenant_id: Uuid) -> StreamRef {
    stream::<TenantEvent>(tenant_id)
}

/// What a request needs to know about its tenant (serializable: the HTTP side caches it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Gate {
    Open,
    Suspended {
        reason: String,
    },
    /// Closed, or no such tenant.
    Gone,
}

impl Gate {
    fn of(tenant: &TenantState) -> Self {
        match &tenant.onboarded {
            Some(t) if t.status == TenantStatus::Active => Gate::Open,
            Some(t) if t.status == TenantStatus::Suspended => Gate::Suspended {
                reason: t
                    .suspension_reason
                    .as_ref()
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
            },
            _ => Gate::Gone,
        }
    }

    /// Suspended as [`AppError::Suspended`], gone as [`AppError::Unauthenticated`].
    pub fn require_open(self) -> Result<(), AppError> {
        match self {
            Gate::Open => Ok(()),
            Gate::Suspended { reason } => Err(AppError::Suspended(reason)),
            Gate::Gone => Err(AppError::Unauthenticated),
        }
    }
}

/// The tenant's gate, read from its stream (callers cache it).
pub async fn gate(store: &EventStore, tenant_id: Uuid) -> Result<Gate, AppError> {
    Ok(Gate::of(&state(store, tenant_id).await?))
}

/// The tenant as its stream says now (outside a unit of work).
pub(crate) async fn state(store: &EventStore, tenant_id: Uuid) -> Result<TenantState, AppError> {
    let stream = tenant_stream(tenant_id);
    let recorded = store.read_stream(tenant_id, &stream, 1).await?;
    Ok(fold::<Tenant>(&stream, recorded)?.0)
}

/// The business's name and contact email, read from its stream (Stripe's customer is made
/// with them).
pub async fn profile(store: &EventStore, tenant_id: Uuid) -> Result<(String, String), AppError> {
    let t = state(store, tenant_id)
        .await?
        .onboarded
        .ok_or(AppError::NotFound("tenant"))?;
    Ok((
        t.business_name.as_str().to_owned(),
        t.contact_email.as_str().to_owned(),
    ))
}

/// Inside a unit of work: refuses unless the tenant is open.
pub(crate) async fn require_open(uow: &mut UnitOfWork<'_>) -> Result<TenantState, AppError> {
    let tenant = uow.load::<Tenant>(&tenant_stream(uow.tenant_id())).await?;
    Gate::of(&tenant).require_open()?;
    Ok(tenant)
}

/// Refuses unless the business's contact email is verified (it takes no bookings before).
pub(crate) fn require_verified(tenant: &TenantState) -> Result<(), AppError> {
    match &tenant.onboarded {
        Some(t) if !t.email_verified => Err(TenantError::EmailNotVerified.into()),
        _ => Ok(()),
    }
}

/// The platform operator suspends a business: its members and API keys get 423 with the
/// reason, its bot stops answering.
pub async fn suspend(
    app: &App,
    ctx: &CommandContext,
    reason: Reason,
) -> Result<Committed<()>, AppError> {
    decide(
        app,
        ctx,
        TenantCommand::Suspend {
            reason,
            cause: SuspensionCause::Operator,
        },
    )
    .await
}

pub async fn reinstate(app: &App, ctx: &CommandContext) -> Result<Committed<()>, AppError> {
    decide(app, ctx, TenantCommand::Reinstate).await
}

/// Meta refused the tenant's token (error 190): its admins must reconnect the number.
pub async fn invalidate_whatsapp_credentials(
    app: &App,
    ctx: &CommandContext,
    meta_error_code: i64,
) -> Result<Committed<()>, AppError> {
    decide(
        app,
        ctx,
        TenantCommand::InvalidateWhatsAppCredentials { meta_error_code },
    )
    .await
}

async fn decide(
    app: &App,
    ctx: &CommandContext,
    command: TenantCommand,
) -> Result<Committed<()>, AppError> {
    let command = &command;
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let stream = tenant_stream(uow.tenant_id());
            let tenant = uow.load::<Tenant>(&stream).await?;
            if tenant.onboarded.is_none() {
                return Err(AppError::NotFound("tenant"));
            }
            let events = Tenant::decide(&tenant, command.clone())?;
            uow.stage(&stream, &events);
            Ok(())
        })
    })
    .await
}
