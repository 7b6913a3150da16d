//! A business signs up: its tenant, its slug reserved, its owner with a password, the
//! owner's first session, its trial, and the link that verifies the owner's email, in one
//! unit of work.

use chrono::{DateTime, Utc};
use domain::Decider as _;
use domain::access::{Role, User, UserCommand, UserEvent};
use domain::billing::{Billing, BillingCommand};
use domain::ids::{TenantId, UserId};
use domain::plan::Plan;
use domain::tenant::{Tenant, TenantCommand};
use domain::values::{BusinessName, Email, IanaTimeZone, TenantSlug};
use uuid::Uuid;

use crate::events::stream;
use crate::sessions::{self, Session};
use crate::tenants::tenant_stream;
use crate::{App, AppError, CommandContext, Committed, ConstraintExt as _, Rejection, execute};

/// A sign-up, every field checked.
#[derive(Debug, Clone)]
pub struct Onboarding {
    pub business_name: BusinessName,
    pub slug: TenantSlug,
    pub owner_email: Email,
    pub owner_password: String,
    pub time_zone: IanaTimeZone,
}

#[derive(Debug, Clone)]
pub struct Onboarded {
    pub tenant_id: Uuid,
    pub plan: Plan,
    pub trial_ends_at: DateTime<Utc>,
    /// The owner's first session.
    pub session: Session,
}

/// Onboards a business. A slug another business has is a conflict on `slug`, and nothing is
/// written.
pub async fn onboard(
    app: &App,
    request_id: Option<String>,
    o: Onboarding,
) -> Result<Committed<Onboarded>, AppError> {
    let tenant_id = Uuid::new_v4();
    let owner_id = Uuid::new_v4();
    let trial_ends_at = Utc::now() + app.policy.trial;
    let verification_expires_at = Utc::now() + crate::email_verification::LINK_TTL;
    let password_hash = vault::hash_password(o.owner_password.clone()).await?;
    // A new tenant: its ids are new, so one key for its first events is unique.
    let ctx = CommandContext::new(tenant_id, format!("user:{owner_id}"), "onboard")
        .with_request_id(request_id)
        .with_correlation(Uuid::new_v4());
    let tenant_events = Tenant::decide(
        &Default::default(),
        TenantCommand::Onboard {
            tenant_id: TenantId::from_uuid(tenant_id),
            business_name: o.business_name.clone(),
            slug: o.slug.clone(),
            contact_email: o.owner_email.clone(),
            time_zone: o.time_zone,
            plan: Plan::Starter,
            trial_ends_at,
            verification_expires_at,
        },
    )?;
    let owner_events = User::decide(
        &Default::default(),
        UserCommand::Invite {
            user_id: UserId::from_uuid(owner_id),
            email: o.owner_email.clone(),
            role: Role::Owner,
            invited_by: None,
        },
    )
    .map_err(Rejection::Member)?;
    let billing_events = Billing::decide(
        &Default::default(),
        BillingCommand::StartTrial {
            plan: Plan::Starter,
            ends_at: trial_ends_at,
            now: Utc::now(),
        },
    )?;
    let (o, password_hash) = (&o, &password_hash);
    let (tenant_events, owner_events, billing_events) =
        (&tenant_events, &owner_events, &billing_events);
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conn = uow.conn().await?;
            vault::directory::reserve_slug(&mut *conn, o.slug.as_str(), tenant_id)
                .await
                .on_constraint(vault::directory::SLUG_TAKEN, || {
                    AppError::taken("slug", "already in use", "that slug is taken")
                })?;
            vault::users::insert(
                &mut *conn,
                tenant_id,
                owner_id,
                o.owner_email.as_str(),
                password_hash,
                Role::Owner.as_str(),
            )
            .await?;
            let owner = sessions::Member {
                tenant_id,
                user_id: owner_id,
                role: Role::Owner,
                epoch: 0,
            };
            let session = sessions::open(conn, app, owner, None).await?;
            crate::email_verification::make_link(
                uow,
                app,
                o.owner_email.as_str(),
                verification_expires_at,
            )
            .await?;
            uow.stage(&tenant_stream(tenant_id), tenant_events);
            uow.stage(&stream::<UserEvent>(owner_id), owner_events);
            uow.stage(&crate::billing::billing_stream(tenant_id), billing_events);
            Ok(Onboarded {
                tenant_id,
                plan: Plan::Starter,
                trial_ends_at,
                session,
            })
        })
    })
    .await
}
