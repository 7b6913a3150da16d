//! Identifiers. Each is its own type so that a booking id can never be passed as a tenant id.
//! The domain never makes ids (that needs randomness): they arrive in commands.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $ty:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $ty(Uuid);

        impl $ty {
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $ty {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A business on the platform.
    TenantId
);
uuid_id!(
    /// One appointment.
    BookingId
);
uuid_id!(
    /// A service the business offers (a haircut, a consultation).
    ServiceId
);
uuid_id!(
    /// A person who signs in to the dashboard.
    UserId
);
uuid_id!(
    /// An API key (its secret is never part of the domain).
    ApiKeyId
);
uuid_id!(
    /// A URL a business registered for its webhooks (its signing secret is the vault's).
    WebhookEndpointId
);

/// What a booking occupies: a chair, a room, a practitioner. A tenant without resources books
/// everything on its single default resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResourceId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a resource id is 1 to 64 characters of a-z 0-9 _ - (got {0:?})")]
pub struct ResourceIdError(String);

impl ResourceId {
    pub fn parse(raw: &str) -> Result<Self, ResourceIdError> {
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(ResourceIdError(raw.to_owned()))
        }
    }

    /// The resource of a tenant that has not set up any.
    pub fn default_resource() -> Self {
        Self("main".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
