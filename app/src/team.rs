//! Team members: invitations (a one-time token, shown once), accepting one, role changes,
//! deactivation. Events carry who and which role; tokens and hashes stay in the vault, and
//! both commit in one unit of work.

use chrono::{DateTime, Utc};
use domain::Decider as _;
use domain::access::{Role, User, UserCommand, UserEvent, UserState};
use domain::ids::UserId;
use domain::values::Email;
use uuid::Uuid;

use crate::events::stream;
use crate::sessions::{self, Session, stored_role};
use crate::{
    Actor, App, AppError, CommandContext, Committed, ConstraintExt as _, Rejection, UnitOfWork,
    execute,
};

/// An invitation, with its token (shown once: the invitee sets a password with it).
#[derive(Debug, Clone)]
pub struct Invited {
    pub user_id: Uuid,
    pub invitation_token: String,
    pub expires_at: DateTime<Utc>,
}

/// Invites a person with a role. Only an owner grants the owner role; an email already on
/// the team is a conflict on `email`.
pub async fn invite(
    app: &App,
    ctx: &CommandContext,
    by: &Actor,
    email: Email,
    role: Role,
) -> Result<Committed<Invited>, AppError> {
    by.may_grant(role)?;
    let user_id = Uuid::new_v4();
    let invitation = Invited {
        user_id,
        invitation_token: vault::new_token(ctx.tenant_id),
        expires_at: Utc::now() + app.policy.invitation_ttl,
    };
    let events = User::decide(
        &UserState::default(),
        UserCommand::Invite {
            user_id: UserId::from_uuid(user_id),
            email: email.clone(),
            role,
            invited_by: by.user_id().map(UserId::from_uuid),
        },
    )
    .map_err(Rejection::Member)?;
    let (events, email, invitation) = (&events, &email, &invitation);
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let tenant_id = uow.tenant_id();
            crate::billing::require_seat(uow, app).await?;
            let conn = uow.conn().await?;
            vault::users::insert(
                &mut *conn,
                tenant_id,
                user_id,
                email.as_str(),
                "",
                role.as_str(),
            )
            .await
            .on_constraint(vault::users::EMAIL_TAKEN, || {
                AppError::taken(
                    "email",
                    "already a member",
                    "someone with this email is already on the team",
                )
            })?;
            vault::users::queue_invitation_email(
                &mut *conn,
                tenant_id,
                user_id,
                &app.sealer.seal(invitation.invitation_token.as_bytes()),
                invitation.expires_at,
            )
            .await?;
            vault::users::invite(
                conn,
                tenant_id,
                &vault::sha256(&invitation.invitation_token),
                user_id,
                invitation.expires_at,
            )
            .await?;
            uow.stage(&stream::<UserEvent>(user_id), events);
            Ok(invitation.clone())
        })
    })
    .await
}

/// Accepts an invitation: sets the password (10 to 128 characters) and signs the new member
/// in. An invitation is good once and until it expires.
pub async fn accept_invitation(
    app: &App,
    invitation_token: &str,
    password: String,
) -> Result<Session, AppError> {
    check_password("password", &password)?;
    let tenant_id = vault::tenant_of_token(invitation_token).ok_or(AppError::Unauthenticated)?;
    let hash = vault::hash_password(password).await?;
    let ctx = CommandContext::fresh(tenant_id, "system:invitation");
    let token_hash = vault::sha256(invitation_token);
    let (hash, token_hash) = (&hash, &token_hash);
    let done = execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conn = uow.conn().await?;
            let user_id = vault::users::redeem_invitation(&mut *conn, token_hash)
                .await?
                .ok_or(AppError::Unauthenticated)?;
            let (role, epoch) = vault::users::set_password(&mut *conn, user_id, hash)
                .await?
                .ok_or(AppError::Unauthenticated)?;
            let member = sessions::Member {
                tenant_id,
                user_id,
                role: stored_role(&role)?,
                epoch,
            };
            sessions::open(conn, app, member, None).await
        })
    })
    .await?;
    Ok(done.value)
}

/// A password a member may choose.
pub fn check_password(field: &str, password: &str) -> Result<(), AppError> {
    if (10..=128).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(AppError::invalid(
            field,
            "a password is 10 to 128 characters",
        ))
    }
}

/// Changes a member's role. Nobody changes their own; only an owner grants the owner role
/// or changes an owner's.
pub async fn change_role(
    app: &App,
    ctx: &CommandContext,
    by: &Actor,
    user_id: Uuid,
    role: Role,
) -> Result<Committed<()>, AppError> {
    by.may_grant(role)?;
    if by.user_id() == Some(user_id) {
        return Err(AppError::Forbidden(
            "you cannot change your own role".into(),
        ));
    }
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let user = member(uow, by, user_id).await?;
            let events =
                User::decide(&user, UserCommand::ChangeRole { role }).map_err(Rejection::Member)?;
            vault::users::set_role(uow.conn().await?, user_id, role.as_str()).await?;
            uow.stage(&stream::<UserEvent>(user_id), &events);
            Ok(())
        })
    })
    .await
}

/// Deactivates a member: no more sign-ins, and every session of theirs ends.
pub async fn deactivate(
    app: &App,
    ctx: &CommandContext,
    by: &Actor,
    user_id: Uuid,
) -> Result<Committed<()>, AppError> {
    if by.user_id() == Some(user_id) {
        return Err(AppError::Forbidden("you cannot deactivate yourself".into()));
    }
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let user = member(uow, by, user_id).await?;
            let events = User::decide(&user, UserCommand::Deactivate).map_err(Rejection::Member)?;
            let conn = uow.conn().await?;
            vault::users::deactivate(&mut *conn, user_id).await?;
            vault::sessions::revoke_user(conn, user_id).await?;
            uow.stage(&stream::<UserEvent>(user_id), &events);
            Ok(())
        })
    })
    .await
}

/// A member of this tenant whom `by` may manage (an owner only by an owner).
async fn member(
    uow: &mut UnitOfWork<'_>,
    by: &Actor,
    user_id: Uuid,
) -> Result<UserState, AppError> {
    let user = uow.load::<User>(&stream::<UserEvent>(user_id)).await?;
    match &user.user {
        None => {
            tracing::info!(tenant = %uow.tenant_id(), user = %user_id, "security: unknown user id (possibly another tenant's)");
            Err(AppError::NotFound("user"))
        }
        Some((_, _, Role::Owner, _)) => {
            by.may_grant(Role::Owner)?;
            Ok(user)
        }
        Some(_) => Ok(user),
    }
}
