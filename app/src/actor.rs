//! Who calls a tenant's use case, and what they may do.

use domain::access::{Permission, Role};
use uuid::Uuid;

use crate::error::AppError;

/// A tenant's caller: a member signed in with their role, or an API key with its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User { id: Uuid, role: Role },
    ApiKey { id: Uuid, scopes: Vec<Permission> },
}

impl Actor {
    /// Whether the member's role, or the key's scopes, allow `permission`.
    pub fn can(&self, permission: Permission) -> bool {
        match self {
            Actor::User { role, .. } => role.can(permission),
            Actor::ApiKey { scopes, .. } => scopes.contains(&permission),
        }
    }

    /// Forbidden unless allowed.
    pub fn require(&self, permission: Permission) -> Result<(), AppError> {
        if self.can(permission) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "this credential may not {}",
                permission.as_str()
            )))
        }
    }

    /// As recorded in event metadata: `user:<id>` or `api_key:<id>`.
    pub fn label(&self) -> String {
        match self {
            Actor::User { id, .. } => format!("user:{id}"),
            Actor::ApiKey { id, .. } => format!("api_key:{id}"),
        }
    }

    /// The member behind the call (`None` for an API key).
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Actor::User { id, .. } => Some(*id),
            Actor::ApiKey { .. } => None,
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self {
            Actor::User { role, .. } => Some(*role),
            Actor::ApiKey { .. } => None,
        }
    }

    /// Only an owner may grant (or take away) the owner role.
    pub fn may_grant(&self, role: Role) -> Result<(), AppError> {
        if role == Role::Owner && self.role() != Some(Role::Owner) {
            return Err(AppError::Forbidden(
                "only an owner may grant or change the owner role".into(),
            ));
        }
        Ok(())
    }
}
