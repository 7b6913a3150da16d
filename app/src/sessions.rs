//! Signing in and staying signed in: login (password, then the second factor when a member
//! switched it on), refresh-token rotation with reuse detection, logout, and enrolling and
//! switching on a TOTP second factor.
//!
//! A session is a refresh token (opaque, stored hashed, rotated on every use) in a family
//! started by one login; the access token is minted by the HTTP edge from the [`Session`].
//! Reusing a rotated refresh token revokes its whole family: the stolen copy and the
//! legitimate one alike. Every failure is the same [`AppError::Unauthenticated`].

use std::time::{SystemTime, UNIX_EPOCH};

use domain::Decider as _;
use domain::access::{Role, User, UserCommand, UserEvent};
use domain::values::Email;
use sqlx::PgConnection;
use totp_rs::{Algorithm, TOTP};
use uuid::Uuid;

use crate::events::stream;
use crate::{App, AppError, CommandContext, Rejection, execute};

/// A signed-in member: who they are, the refresh token of their session (shown once), and
/// what its access tokens carry to stay tied to it (the session's id, the member's epoch).
#[derive(Debug, Clone)]
pub struct Session {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub refresh_token: String,
    /// The refresh-token family: one sign-in.
    pub session_id: Uuid,
    pub epoch: i64,
}

/// A member signing in: who, with which role, at which session epoch.
pub(crate) struct Member {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub epoch: i64,
}

/// Starts a session of `member` in `family` (a new family for a new login), on the caller's
/// transaction.
pub(crate) async fn open(
    conn: &mut PgConnection,
    app: &App,
    member: Member,
    family: Option<Uuid>,
) -> Result<Session, AppError> {
    let refresh_token = vault::new_token(member.tenant_id);
    let family = family.unwrap_or_else(Uuid::new_v4);
    vault::sessions::insert(
        conn,
        member.tenant_id,
        &vault::sha256(&refresh_token),
        family,
        member.user_id,
        chrono::Utc::now() + app.policy.refresh_ttl,
    )
    .await?;
    Ok(Session {
        tenant_id: member.tenant_id,
        user_id: member.user_id,
        role: member.role,
        refresh_token,
        session_id: family,
        epoch: member.epoch,
    })
}

/// Whether an access token of `user_id`, issued at `epoch` in the session `session_id`, still
/// speaks for them (one round trip, under the tenant's row-level security).
pub async fn is_live(
    store: &eventstore::EventStore,
    tenant_id: Uuid,
    user_id: Uuid,
    epoch: i64,
    session_id: Uuid,
) -> Result<bool, AppError> {
    Ok(vault::sessions::is_live(store.pool(), tenant_id, user_id, epoch, session_id).await?)
}

/// What a login presents.
#[derive(Debug, Clone)]
pub struct Login {
    /// The business its slug names (`None`: no such business, which is refused like a wrong
    /// password, after the same work).
    pub tenant_id: Option<Uuid>,
    pub email: String,
    pub password: String,
    /// The authenticator's code, for members with a second factor.
    pub totp: Option<String>,
}

/// The tenant a login names by its slug (`None`: no such business).
pub async fn tenant_of_slug(app: &App, slug: &str) -> Result<Option<Uuid>, AppError> {
    Ok(
        vault::directory::tenant_of_slug(app.store.pool(), &slug.trim().to_ascii_lowercase())
            .await?,
    )
}

/// Signs a member in. The password is verified (against a dummy hash for an unknown email,
/// to spend the same time), then the second factor, then that the business is open: only
/// someone with the credentials learns that it is suspended.
pub async fn login(app: &App, login: Login) -> Result<Session, AppError> {
    let Some(tenant_id) = login.tenant_id else {
        vault::verify_password(login.password, None).await;
        return Err(AppError::Unauthenticated);
    };
    let ctx = CommandContext::fresh(tenant_id, "system:login");
    let email = Email::parse(&login.email)
        .map(|e| e.to_string())
        .unwrap_or_default();
    // The password is verified (slow, on purpose) holding no connection: a guessing wave must
    // not take the pool from everyone else. The sign-in then goes on only if the member is
    // still the one verified (same password hash, still active).
    let user = {
        let mut tx = app.store.begin(tenant_id).await?;
        let user = vault::users::by_email(tx.conn(), &email).await?;
        tx.rollback().await?;
        user
    };
    let verified = vault::verify_password(
        login.password.clone(),
        user.as_ref().map(|u| u.password_hash.clone()),
    )
    .await;
    let Some(verified) = user.filter(|u| verified && u.active) else {
        tracing::info!(%tenant_id, "failed login");
        return Err(AppError::Unauthenticated);
    };
    // A hash of older settings is replaced now, while the password is at hand (the only time
    // it is), with today's: outside the transaction too.
    let rehashed = if vault::needs_rehash(&verified.password_hash) {
        Some(vault::hash_password(login.password.clone()).await?)
    } else {
        None
    };
    let (login, email, verified, rehashed) = (&login, &email, &verified, &rehashed);
    let done = execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conn = uow.conn().await?;
            let Some(user) = vault::users::by_email(&mut *conn, email)
                .await?
                .filter(|u| {
                    u.active
                        && u.user_id == verified.user_id
                        && u.password_hash == verified.password_hash
                })
            else {
                return Err(AppError::Unauthenticated);
            };
            check_second_factor(&mut *conn, app, user.user_id, login.totp.as_deref()).await?;
            if let Some(hash) = rehashed {
                vault::users::set_password(conn, user.user_id, hash).await?;
            }
            crate::tenants::require_open(uow).await?;
            let member = Member {
                tenant_id,
                user_id: user.user_id,
                role: stored_role(&user.role)?,
                epoch: user.session_epoch,
            };
            let conn = uow.conn().await?;
            open(conn, app, member, None).await
        })
    })
    .await?;
    Ok(done.value)
}

/// Trades a refresh token for a new one in the same family. A token is good once: using it
/// again revokes every token of its family.
pub async fn refresh(app: &App, refresh_token: &str) -> Result<Session, AppError> {
    let tenant_id = vault::tenant_of_token(refresh_token).ok_or(AppError::Unauthenticated)?;
    let ctx = CommandContext::fresh(tenant_id, "system:refresh");
    let hash = vault::sha256(refresh_token);
    let hash = &hash;
    let done = execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conn = uow.conn().await?;
            let Some(stored) = vault::sessions::lock(&mut *conn, hash).await? else {
                return Ok(Refreshed::Refused);
            };
            if stored.revoked || stored.expires_at <= chrono::Utc::now() {
                return Ok(Refreshed::Refused);
            }
            if stored.used {
                vault::sessions::revoke_family(conn, stored.family_id).await?;
                tracing::warn!(%tenant_id, user_id = %stored.user_id, family = %stored.family_id, "security: a rotated refresh token was reused; its family is revoked");
                return Ok(Refreshed::Refused);
            }
            vault::sessions::mark_used(&mut *conn, hash).await?;
            let member = vault::users::by_id(&mut *conn, stored.user_id).await?;
            let Some(member) = member.filter(|m| m.active) else {
                vault::sessions::revoke_family(conn, stored.family_id).await?;
                return Ok(Refreshed::Refused);
            };
            crate::tenants::require_open(uow).await?;
            let member = Member {
                tenant_id,
                user_id: stored.user_id,
                role: stored_role(&member.role)?,
                epoch: member.session_epoch,
            };
            let conn = uow.conn().await?;
            let session = open(conn, app, member, Some(stored.family_id)).await?;
            Ok(Refreshed::To(session))
        })
    })
    .await?;
    // A refusal still commits what it revoked.
    match done.value {
        Refreshed::To(session) => Ok(session),
        Refreshed::Refused => Err(AppError::Unauthenticated),
    }
}

enum Refreshed {
    To(Session),
    Refused,
}

/// Ends the session a refresh token belongs to (its whole family). Unknown tokens end
/// nothing, silently.
pub async fn logout(app: &App, refresh_token: &str) -> Result<(), AppError> {
    let Some(tenant_id) = vault::tenant_of_token(refresh_token) else {
        return Ok(());
    };
    let ctx = CommandContext::fresh(tenant_id, "system:logout");
    let hash = vault::sha256(refresh_token);
    let hash = &hash;
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conn = uow.conn().await?;
            if let Some(family) = vault::sessions::family_of(&mut *conn, hash).await? {
                vault::sessions::revoke_family(conn, family).await?;
            }
            Ok(())
        })
    })
    .await?;
    Ok(())
}

/// A second factor being set up: the secret, shown once.
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    pub otpauth_url: String,
}

/// A new TOTP secret for the member, off until a first code switches it on (it replaces one
/// still pending).
pub async fn enroll_second_factor(
    app: &App,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<Enrollment, AppError> {
    let secret: [u8; 20] = rand::random();
    let totp = totp(secret.to_vec(), &user_id.to_string())?;
    let ctx = CommandContext::fresh(tenant_id, format!("user:{user_id}"));
    let sealed = app.sealer.seal(&secret);
    let sealed = &sealed;
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conn = uow.conn().await?;
            if vault::mfa::lock(&mut *conn, user_id)
                .await?
                .is_some_and(|f| f.enabled)
            {
                return Err(AppError::conflict("a second factor is already on"));
            }
            vault::mfa::enroll(conn, tenant_id, user_id, sealed).await?;
            Ok(())
        })
    })
    .await?;
    Ok(Enrollment {
        secret: totp.get_secret_base32(),
        otpauth_url: totp.get_url(),
    })
}

/// Switches the pending second factor on with a first valid code; recorded on the member's
/// stream (`SecondFactorEnabled`) in the same unit of work.
pub async fn enable_second_factor(
    app: &App,
    tenant_id: Uuid,
    user_id: Uuid,
    code: &str,
) -> Result<(), AppError> {
    let ctx = CommandContext::new(
        tenant_id,
        format!("user:{user_id}"),
        format!("second-factor-on:{user_id}"),
    );
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conn = uow.conn().await?;
            let Some(pending) = vault::mfa::lock(&mut *conn, user_id).await? else {
                return Err(AppError::conflict(
                    "enroll first (POST /v1/auth/mfa/enroll)",
                ));
            };
            if pending.enabled {
                return Err(AppError::conflict("a second factor is already on"));
            }
            let secret = open_secret(app, &pending.secret_enc)?;
            let step = matching_step(&totp(secret, "user")?, code, unix_now())
                .ok_or_else(|| AppError::invalid("code", "not the current code"))?;
            vault::mfa::enable(conn, user_id, step).await?;
            let user_stream = stream::<UserEvent>(user_id);
            let user = uow.load::<User>(&user_stream).await?;
            let events =
                User::decide(&user, UserCommand::EnableSecondFactor).map_err(Rejection::Member)?;
            uow.stage(&user_stream, &events);
            Ok(())
        })
    })
    .await?;
    tracing::info!(tenant = %tenant_id, user = %user_id, "security: second factor switched on");
    Ok(())
}

/// Checks a member's code inside the login's transaction and records its step (a code is
/// good once). Nothing to check when the member has no second factor on.
async fn check_second_factor(
    conn: &mut PgConnection,
    app: &App,
    user_id: Uuid,
    code: Option<&str>,
) -> Result<(), AppError> {
    let Some(factor) = vault::mfa::lock(&mut *conn, user_id)
        .await?
        .filter(|f| f.enabled)
    else {
        return Ok(());
    };
    let code = code.ok_or(AppError::SecondFactorRequired)?;
    let secret = open_secret(app, &factor.secret_enc)?;
    let step = matching_step(&totp(secret, "user")?, code, unix_now())
        .filter(|s| *s > factor.last_step)
        .ok_or(AppError::Unauthenticated)?;
    vault::mfa::accept_step(conn, user_id, step).await?;
    Ok(())
}

/// RFC 6238: SHA-1, 6 digits, 30-second steps, one step of clock skew either way.
const STEP: u64 = 30;

fn totp(secret: Vec<u8>, account: &str) -> Result<TOTP, AppError> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        secret,
        Some("Booking".into()),
        account.to_owned(),
    )
    .map_err(|e| AppError::internal(format!("TOTP: {e:?}")))
}

fn open_secret(app: &App, sealed: &[u8]) -> Result<Vec<u8>, AppError> {
    app.sealer
        .open(sealed)
        .ok_or_else(|| AppError::internal("a TOTP secret does not open with this key"))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The step `code` is valid for (now, or one step either side), if it is valid.
fn matching_step(totp: &TOTP, code: &str, at: u64) -> Option<i64> {
    let code = code.trim();
    [at.saturating_sub(STEP), at, at + STEP]
        .into_iter()
        .find_map(|t| {
            let expected = totp.generate(t);
            // Constant-time comparison of equal-length digit strings.
            let same = expected.len() == code.len()
                && subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into();
            same.then_some((t / STEP) as i64)
        })
}

/// A role as the vault stores it.
pub(crate) fn stored_role(label: &str) -> Result<Role, AppError> {
    Role::parse(label)
        .ok_or_else(|| AppError::internal(format!("stored role {label:?} is unknown")))
}

/// How long a password-reset link works.
pub const RESET_TTL: chrono::Duration = chrono::Duration::hours(1);

/// Someone asks to reset the password of `email` at the business `tenant_id`: when that is an
/// active member, a reset token is made (its hash to redeem, the token sealed for the email)
/// and `PasswordResetRequested` recorded; otherwise nothing, and the caller cannot tell.
pub async fn request_password_reset(
    app: &App,
    tenant_id: Option<Uuid>,
    email: &str,
) -> Result<(), AppError> {
    let Some(tenant_id) = tenant_id else {
        return Ok(());
    };
    let Ok(email) = Email::parse(email) else {
        return Ok(());
    };
    let ctx = CommandContext::fresh(tenant_id, "system:password-reset");
    let token = vault::new_token(tenant_id);
    let expires_at = chrono::Utc::now() + RESET_TTL;
    let (email, token) = (&email, &token);
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conn = uow.conn().await?;
            let Some(user) = vault::users::by_email(&mut *conn, email.as_str()).await? else {
                return Ok(());
            };
            if !user.active {
                return Ok(());
            }
            vault::users::insert_password_reset(
                conn,
                tenant_id,
                user.user_id,
                &vault::sha256(token),
                &app.sealer.seal(token.as_bytes()),
                expires_at,
            )
            .await?;
            let stream = stream::<UserEvent>(user.user_id);
            let state = uow.load::<User>(&stream).await?;
            let events = User::decide(&state, UserCommand::RequestPasswordReset { expires_at })
                .map_err(Rejection::Member)?;
            uow.stage(&stream, &events);
            Ok(())
        })
    })
    .await?;
    Ok(())
}

/// Sets a new password with a reset token (good once, for [`RESET_TTL`]), ends every session
/// of the member, and records `PasswordReset`. A token that is not one, used or expired is a
/// 422 on `token`.
pub async fn reset_password(app: &App, token: &str, password: String) -> Result<(), AppError> {
    crate::team::check_password("password", &password)?;
    let invalid = || AppError::invalid("token", "the link is not valid, was used or expired");
    let tenant_id = vault::tenant_of_token(token).ok_or_else(invalid)?;
    let hash = vault::hash_password(password).await?;
    let ctx = CommandContext::fresh(tenant_id, "system:password-reset");
    let token_hash = vault::sha256(token);
    let (hash, token_hash) = (&hash, &token_hash);
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conn = uow.conn().await?;
            let user_id = vault::users::redeem_password_reset(&mut *conn, token_hash)
                .await?
                .ok_or_else(invalid)?;
            vault::users::set_password(&mut *conn, user_id, hash)
                .await?
                .ok_or_else(invalid)?;
            vault::sessions::revoke_user(conn, user_id).await?;
            let stream = stream::<UserEvent>(user_id);
            let state = uow.load::<User>(&stream).await?;
            let events =
                User::decide(&state, UserCommand::ResetPassword).map_err(Rejection::Member)?;
            uow.stage(&stream, &events);
            Ok(())
        })
    })
    .await?;
    Ok(())
}
