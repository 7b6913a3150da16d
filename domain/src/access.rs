//! Who may do what: dashboard users and API keys, as metadata only. Streams `user/<user_id>`
//! and `api_key/<key_id>`. Password hashes, refresh tokens and key hashes live in the command
//! side's own tables; no event ever carries a secret.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decider::Decider;
use crate::event::DomainEvent;
use crate::ids::{ApiKeyId, UserId};
use crate::values::Email;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Staff,
    Viewer,
}

crate::labels::labels!(Role {
    Owner => "owner",
    Admin => "admin",
    Staff => "staff",
    Viewer => "viewer",
});

/// What a request may need. API key scopes are permissions too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    ReadBookings,
    WriteBookings,
    ReadConfig,
    WriteConfig,
    ReadConversations,
    ReplyConversations,
    ManageUsers,
    ManageApiKeys,
    ManageWhatsApp,
    ManageBilling,
    ReadAudit,
    /// The plan's usage: messages and bookings counted against its limits.
    ReadUsage,
    /// The public events feed (`domain::integration`): the server-sent-events stream.
    ReadEvents,
    /// The business's webhook endpoints and their delivery log.
    ManageWebhooks,
    /// A customer's right to erasure: everything personal the business holds of them.
    EraseCustomers,
}

crate::labels::labels!(Permission {
    ReadBookings => "read_bookings",
    WriteBookings => "write_bookings",
    ReadConfig => "read_config",
    WriteConfig => "write_config",
    ReadConversations => "read_conversations",
    ReplyConversations => "reply_conversations",
    ManageUsers => "manage_users",
    ManageApiKeys => "manage_api_keys",
    ManageWhatsApp => "manage_whats_app",
    ManageBilling => "manage_billing",
    ReadAudit => "read_audit",
    ReadUsage => "read_usage",
    ReadEvents => "read_events",
    ManageWebhooks => "manage_webhooks",
    EraseCustomers => "erase_customers",
});

impl Role {
    /// The permission matrix. Owners do everything; admins all but billing; staff run the
    /// day (bookings, conversations); viewers read the day.
    pub fn can(self, permission: Permission) -> bool {
        use Permission as P;
        match self {
            Role::Owner => true,
            Role::Admin => permission != P::ManageBilling,
            Role::Staff => matches!(
                permission,
                P::ReadBookings
                    | P::WriteBookings
                    | P::ReadConfig
                    | P::ReadConversations
                    | P::ReplyConversations
            ),
            Role::Viewer => matches!(
                permission,
                P::ReadBookings | P::ReadConfig | P::ReadConversations
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserCommand {
    Invite {
        user_id: UserId,
        email: Email,
        role: Role,
        /// None for the owner who onboarded the tenant.
        invited_by: Option<UserId>,
    },
    ChangeRole {
        role: Role,
    },
    Deactivate,
    /// The user confirmed a TOTP authenticator: logins now need a code.
    EnableSecondFactor,
    /// Someone asked to reset the user's password (the token is the vault's, emailed).
    RequestPasswordReset {
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// The user chose a new password with a reset token.
    ResetPassword,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum UserEvent {
    UserInvited {
        user_id: UserId,
        email: Email,
        role: Role,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        invited_by: Option<UserId>,
    },
    UserRoleChanged {
        from: Role,
        to: Role,
    },
    UserDeactivated,
    /// Logins of this user need a TOTP code from now on (the secret is stored elsewhere).
    SecondFactorEnabled,
    /// A password reset was asked for; its link is emailed (the token is never in an event).
    PasswordResetRequested {
        expires_at: chrono::DateTime<chrono::Utc>,
    },
    /// The password was changed with a reset link; every session of the user was ended.
    PasswordReset,
}

impl DomainEvent for UserEvent {
    const STREAM_TYPE: &'static str = "user";

    fn event_type(&self) -> &'static str {
        match self {
            Self::UserInvited { .. } => "UserInvited",
            Self::UserRoleChanged { .. } => "UserRoleChanged",
            Self::UserDeactivated => "UserDeactivated",
            Self::SecondFactorEnabled => "SecondFactorEnabled",
            Self::PasswordResetRequested { .. } => "PasswordResetRequested",
            Self::PasswordReset => "PasswordReset",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserState {
    pub user: Option<(UserId, Email, Role, bool)>,
    pub second_factor: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("already exists")]
    Exists,
    #[error("does not exist")]
    NotFound,
    #[error("is deactivated")]
    Deactivated,
    #[error("already has that role")]
    SameRole,
    #[error("is revoked")]
    Revoked,
    #[error("an API key needs at least one scope")]
    NoScopes,
    #[error("the expiry is in the past")]
    ExpiryInThePast,
}

pub struct User;

impl Decider for User {
    type State = UserState;
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = AccessError;

    fn decide(state: &UserState, command: UserCommand) -> Result<Vec<UserEvent>, AccessError> {
        match (&state.user, command) {
            (
                None,
                UserCommand::Invite {
                    user_id,
                    email,
                    role,
                    invited_by,
                },
            ) => Ok(vec![UserEvent::UserInvited {
                user_id,
                email,
                role,
                invited_by,
            }]),
            (None, _) => Err(AccessError::NotFound),
            (Some(_), UserCommand::Invite { .. }) => Err(AccessError::Exists),
            (Some((_, _, _, false)), _) => Err(AccessError::Deactivated),
            (Some((_, _, from, true)), UserCommand::ChangeRole { role }) => {
                if *from == role {
                    Err(AccessError::SameRole)
                } else {
                    Ok(vec![UserEvent::UserRoleChanged {
                        from: *from,
                        to: role,
                    }])
                }
            }
            (Some(_), UserCommand::Deactivate) => Ok(vec![UserEvent::UserDeactivated]),
            (Some(_), UserCommand::EnableSecondFactor) if state.second_factor => Ok(vec![]),
            (Some(_), UserCommand::EnableSecondFactor) => Ok(vec![UserEvent::SecondFactorEnabled]),
            (Some(_), UserCommand::RequestPasswordReset { expires_at }) => {
                Ok(vec![UserEvent::PasswordResetRequested { expires_at }])
            }
            (Some(_), UserCommand::ResetPassword) => Ok(vec![UserEvent::PasswordReset]),
        }
    }

    fn evolve(mut state: UserState, event: &UserEvent) -> UserState {
        match event {
            UserEvent::UserInvited {
                user_id,
                email,
                role,
                ..
            } => {
                state.user = Some((*user_id, email.clone(), *role, true));
            }
            UserEvent::UserRoleChanged { to, .. } => {
                if let Some(user) = state.user.as_mut() {
                    user.2 = *to;
                }
            }
            UserEvent::UserDeactivated => {
                if let Some(user) = state.user.as_mut() {
                    user.3 = false;
                }
            }
            UserEvent::SecondFactorEnabled => state.second_factor = true,
            UserEvent::PasswordResetRequested { .. } | UserEvent::PasswordReset => {}
        }
        state
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApiKeyCommand {
    Issue {
        key_id: ApiKeyId,
        name: String,
        /// The key's visible prefix (`bk_live_3F9a…`), never the secret part.
        prefix: String,
        scopes: Vec<Permission>,
        expires_at: Option<DateTime<Utc>>,
        issued_by: UserId,
        now: DateTime<Utc>,
    },
    Revoke {
        revoked_by: UserId,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ApiKeyEvent {
    ApiKeyIssued {
        key_id: ApiKeyId,
        name: String,
        prefix: String,
        scopes: Vec<Permission>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<DateTime<Utc>>,
        issued_by: UserId,
    },
    ApiKeyRevoked {
        revoked_by: UserId,
    },
}

impl DomainEvent for ApiKeyEvent {
    const STREAM_TYPE: &'static str = "api_key";

    fn event_type(&self) -> &'static str {
        match self {
            Self::ApiKeyIssued { .. } => "ApiKeyIssued",
            Self::ApiKeyRevoked { .. } => "ApiKeyRevoked",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApiKeyState {
    pub issued: bool,
    pub revoked: bool,
}

pub struct ApiKey;

impl Decider for ApiKey {
    type State = ApiKeyState;
    type Command = ApiKeyCommand;
    type Event = ApiKeyEvent;
    type Error = AccessError;

    fn decide(
        state: &ApiKeyState,
        command: ApiKeyCommand,
    ) -> Result<Vec<ApiKeyEvent>, AccessError> {
        match command {
            ApiKeyCommand::Issue {
                key_id,
                name,
                prefix,
                mut scopes,
                expires_at,
                issued_by,
                now,
            } => {
                if state.issued {
                    return Err(AccessError::Exists);
                }
                if scopes.is_empty() {
                    return Err(AccessError::NoScopes);
                }
                if expires_at.is_some_and(|at| at <= now) {
                    return Err(AccessError::ExpiryInThePast);
                }
                scopes.sort();
                scopes.dedup();
                Ok(vec![ApiKeyEvent::ApiKeyIssued {
                    key_id,
                    name,
                    prefix,
                    scopes,
                    expires_at,
                    issued_by,
                }])
            }
            ApiKeyCommand::Revoke { revoked_by } => {
                if !state.issued {
                    return Err(AccessError::NotFound);
                }
                if state.revoked {
                    return Err(AccessError::Revoked);
                }
                Ok(vec![ApiKeyEvent::ApiKeyRevoked { revoked_by }])
            }
        }
    }

    fn evolve(mut state: ApiKeyState, event: &ApiKeyEvent) -> ApiKeyState {
        match event {
            ApiKeyEvent::ApiKeyIssued { .. } => state.issued = true,
            ApiKeyEvent::ApiKeyRevoked { .. } => state.revoked = true,
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::scenario::given;
    use crate::event::assert_round_trips;

    fn uid(n: u128) -> UserId {
        UserId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn invited() -> UserEvent {
        UserEvent::UserInvited {
            user_id: uid(1),
            email: Email::parse("staff@demo.example").unwrap(),
            role: Role::Staff,
            invited_by: Some(uid(0)),
        }
    }

    #[test]
    fn the_permission_matrix() {
        assert!(Role::Owner.can(Permission::ManageBilling));
        assert!(!Role::Admin.can(Permission::ManageBilling));
        assert!(Role::Admin.can(Permission::ManageUsers));
        assert!(Role::Staff.can(Permission::WriteBookings));
        assert!(!Role::Staff.can(Permission::WriteConfig));
        assert!(!Role::Viewer.can(Permission::WriteBookings));
        assert!(Role::Viewer.can(Permission::ReadBookings));
    }

    #[test]
    fn users_are_invited_change_roles_and_are_deactivated() {
        given::<User>(&[invited()])
            .when(UserCommand::ChangeRole { role: Role::Admin })
            .then_expect(&[UserEvent::UserRoleChanged {
                from: Role::Staff,
                to: Role::Admin,
            }]);
        given::<User>(&[invited()])
            .when(UserCommand::ChangeRole { role: Role::Staff })
            .then_expect_error(AccessError::SameRole);
        given::<User>(&[invited(), UserEvent::UserDeactivated])
            .when(UserCommand::ChangeRole { role: Role::Admin })
            .then_expect_error(AccessError::Deactivated);
        given::<User>(&[])
            .when(UserCommand::Deactivate)
            .then_expect_error(AccessError::NotFound);
    }

    #[test]
    fn a_user_or_key_is_created_once() {
        let UserEvent::UserInvited {
            user_id,
            email,
            role,
            invited_by,
        } = invited()
        else {
            unreachable!()
        };
        given::<User>(&[invited()])
            .when(UserCommand::Invite {
                user_id,
                email,
                role,
                invited_by,
            })
            .then_expect_error(AccessError::Exists);
        let issued = ApiKeyEvent::ApiKeyIssued {
            key_id: ApiKeyId::from_uuid(uuid::Uuid::from_u128(5)),
            name: "Website".into(),
            prefix: "bk_live_3F9a".into(),
            scopes: vec![Permission::ReadBookings],
            expires_at: None,
            issued_by: uid(0),
        };
        given::<ApiKey>(&[issued])
            .when(ApiKeyCommand::Issue {
                key_id: ApiKeyId::from_uuid(uuid::Uuid::from_u128(5)),
                name: "Again".into(),
                prefix: "bk_live_3F9a".into(),
                scopes: vec![Permission::ReadBookings],
                expires_at: None,
                issued_by: uid(0),
                now: "2026-12-01T10:00:00Z".parse().unwrap(),
            })
            .then_expect_error(AccessError::Exists);
        given::<ApiKey>(&[])
            .when(ApiKeyCommand::Revoke { revoked_by: uid(0) })
            .then_expect_error(AccessError::NotFound);
    }

    #[test]
    fn api_keys_need_scopes_a_future_expiry_and_are_revoked_once() {
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let issue = |scopes: Vec<Permission>, expires: &str| ApiKeyCommand::Issue {
            key_id: ApiKeyId::from_uuid(uuid::Uuid::from_u128(5)),
            name: "Website".into(),
            prefix: "bk_live_3F9a".into(),
            scopes,
            expires_at: Some(expires.parse().unwrap()),
            issued_by: uid(0),
            now,
        };
        given::<ApiKey>(&[])
            .when(issue(vec![], "2027-01-01T00:00:00Z"))
            .then_expect_error(AccessError::NoScopes);
        given::<ApiKey>(&[])
            .when(issue(
                vec![Permission::ReadBookings],
                "2026-11-01T00:00:00Z",
            ))
            .then_expect_error(AccessError::ExpiryInThePast);
        let issued = ApiKeyEvent::ApiKeyIssued {
            key_id: ApiKeyId::from_uuid(uuid::Uuid::from_u128(5)),
            name: "Website".into(),
            prefix: "bk_live_3F9a".into(),
            scopes: vec![Permission::ReadBookings, Permission::WriteBookings],
            expires_at: Some("2027-01-01T00:00:00Z".parse().unwrap()),
            issued_by: uid(0),
        };
        given::<ApiKey>(&[])
            .when(issue(
                vec![
                    Permission::WriteBookings,
                    Permission::ReadBookings,
                    Permission::ReadBookings,
                ],
                "2027-01-01T00:00:00Z",
            ))
            .then_expect(std::slice::from_ref(&issued));
        let revoked = ApiKeyEvent::ApiKeyRevoked { revoked_by: uid(0) };
        given::<ApiKey>(&[issued.clone(), revoked.clone()])
            .when(ApiKeyCommand::Revoke { revoked_by: uid(0) })
            .then_expect_error(AccessError::Revoked);
        assert_round_trips(&[issued, revoked]);
        assert_round_trips(&[
            invited(),
            UserEvent::UserRoleChanged {
                from: Role::Staff,
                to: Role::Viewer,
            },
            UserEvent::UserDeactivated,
            UserEvent::SecondFactorEnabled,
        ]);
        given::<User>(&[invited()])
            .when(UserCommand::EnableSecondFactor)
            .then_expect(&[UserEvent::SecondFactorEnabled]);
        given::<User>(&[invited(), UserEvent::SecondFactorEnabled])
            .when(UserCommand::EnableSecondFactor)
            .then_expect(&[]);
        given::<User>(&[invited(), UserEvent::UserDeactivated])
            .when(UserCommand::EnableSecondFactor)
            .then_expect_error(AccessError::Deactivated);
    }
}
