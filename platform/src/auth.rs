//! Access tokens: short-lived JWTs (HS256) naming the tenant, the user and the role, signed
//! with the active key and verified against every configured key by its `kid`, so keys rotate
//! without logging anyone out. The tenant of a request comes from here, never from its body
//! or path.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use domain::access::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::credentials::bearer;
use crate::problem::Problem;

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub issuer: String,
    pub access_ttl_secs: u64,
    pub refresh_ttl_days: u32,
    /// Signs new tokens.
    pub active_kid: String,
    /// Every key that may have signed a token still alive (at least 32 bytes each).
    pub keys: Vec<KeySetting>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeySetting {
    pub kid: String,
    pub secret: SecretString,
}

/// The access token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    /// The tenant.
    pub tid: Uuid,
    pub role: Role,
    /// The session (refresh-token family) the token was issued in.
    pub sid: Uuid,
    /// The member's session epoch when it was issued.
    pub ep: i64,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
}

impl AccessClaims {
    pub fn session(&self) -> SessionRef {
        SessionRef {
            id: self.sid,
            epoch: self.ep,
        }
    }
}

/// The session an access token speaks for: its refresh-token family, and the member's session
/// epoch then. A token whose session was ended (logout) or whose member's epoch moved on
/// (deactivated, another role) speaks for nobody, whatever its expiry says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRef {
    pub id: Uuid,
    pub epoch: i64,
}

/// The keys that sign and verify access tokens. Cheap to clone: extractors take it from a
/// service's state with every request.
#[derive(Clone)]
pub struct JwtKeys(std::sync::Arc<Keys>);

struct Keys {
    active_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    issuer: String,
    access_ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("active_kid", &self.0.active_kid)
            .field("kids", &self.0.verifying.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    pub fn from_settings(settings: &AuthSettings) -> anyhow::Result<Self> {
        let mut verifying = HashMap::new();
        let mut signing = None;
        for key in &settings.keys {
            let secret = key.secret.expose_secret().as_bytes();
            if secret.len() < 32 {
                bail!("JWT key {} is shorter than 32 bytes", key.kid);
            }
            verifying.insert(key.kid.clone(), DecodingKey::from_secret(secret));
            if key.kid == settings.active_kid {
                signing = Some(EncodingKey::from_secret(secret));
            }
        }
        Ok(Self(std::sync::Arc::new(Keys {
            active_kid: settings.active_kid.clone(),
            signing: signing.context("the active JWT key is not among the keys")?,
            verifying,
            issuer: settings.issuer.clone(),
            access_ttl: Duration::from_secs(settings.access_ttl_secs),
        })))
    }

    pub fn access_ttl(&self) -> Duration {
        self.0.access_ttl
    }

    fn issuer(&self) -> &str {
        &self.0.issuer
    }

    pub fn issue(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        role: Role,
        session: SessionRef,
    ) -> anyhow::Result<String> {
        let now = unix_now();
        let claims = AccessClaims {
            sub: user_id,
            tid: tenant_id,
            role,
            sid: session.id,
            ep: session.epoch,
            iss: self.issuer().to_owned(),
            iat: now,
            exp: now + self.access_ttl().as_secs(),
        };
        self.sign(&claims)
    }

    /// The claims of a valid token: known `kid`, HS256 only (so `alg: none` and algorithm
    /// confusion fail), our issuer, not expired (no leeway), untampered.
    pub fn verify(&self, token: &str) -> Option<AccessClaims> {
        self.decode(token)
    }

    fn decode<C: serde::de::DeserializeOwned>(&self, token: &str) -> Option<C> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.alg != Algorithm::HS256 {
            return None;
        }
        let key = self.0.verifying.get(header.kid.as_deref()?)?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[self.issuer()]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 0;
        jsonwebtoken::decode::<C>(token, key, &validation)
            .ok()
            .map(|data| data.claims)
    }

    fn sign<C: Serialize>(&self, claims: &C) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.0.active_kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.0.signing)?)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Who is calling: established from the bearer token, for every tenant route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    /// Whether it still speaks for the member is for the caller to ask the vault.
    pub session: SessionRef,
}

impl<S> FromRequestParts<S> for Principal
where
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = JwtKeys::from_ref(state);
        let token = bearer(parts).ok_or_else(Problem::unauthorized)?;
        let claims = keys.verify(token).ok_or_else(Problem::unauthorized)?;
        Ok(Principal {
            tenant_id: claims.tid,
            user_id: claims.sub,
            role: claims.role,
            session: claims.session(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(active: &str) -> AuthSettings {
        AuthSettings {
            issuer: "booking".into(),
            access_ttl_secs: 900,
            refresh_ttl_days: 30,
            active_kid: active.into(),
            keys: vec![
                KeySetting {
                    kid: "k1".into(),
                    secret: SecretString::from("k1-secret-k1-secret-k1-secret-k1-secret"),
                },
                KeySetting {
                    kid: "k2".into(),
                    secret: SecretString::from("k2-secret-k2-secret-k2-secret-k2-secret"),
                },
            ],
        }
    }

    #[test]
    fn tokens_verify_across_a_key_rotation() {
        let old = JwtKeys::from_settings(&settings("k1")).unwrap();
        let new = JwtKeys::from_settings(&settings("k2")).unwrap();
        let (t, u) = (Uuid::new_v4(), Uuid::new_v4());
        let session = SessionRef {
            id: Uuid::new_v4(),
            epoch: 3,
        };
        let token = old.issue(t, u, Role::Admin, session).unwrap();
        let claims = new.verify(&token).expect("still valid after rotation");
        assert_eq!((claims.tid, claims.sub, claims.role), (t, u, Role::Admin));
        assert_eq!(claims.session(), session);
    }

    #[test]
    fn short_keys_and_a_missing_active_key_are_configuration_errors() {
        let mut s = settings("k1");
        s.keys[0].secret = SecretString::from("short");
        assert!(JwtKeys::from_settings(&s).is_err());
        assert!(JwtKeys::from_settings(&settings("k9")).is_err());
    }
}

/// An operator token's claims: no tenant, `op: true`, signed with the operator keys (never the
/// tenants' keys), so a tenant credential cannot pass for one and vice versa.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorClaims {
    pub sub: String,
    pub op: bool,
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
}

/// The operator keys: a separate key set, configured apart from the tenants'.
#[derive(Clone, Debug)]
pub struct OperatorKeys(pub JwtKeys);

impl OperatorKeys {
    pub fn issue(&self, operator: &str, ttl: Duration) -> anyhow::Result<String> {
        let now = unix_now();
        let claims = OperatorClaims {
            sub: operator.to_owned(),
            op: true,
            iss: self.0.issuer().to_owned(),
            iat: now,
            exp: now + ttl.as_secs(),
        };
        self.0.sign(&claims)
    }

    fn verify(&self, token: &str) -> Option<OperatorClaims> {
        self.0.decode::<OperatorClaims>(token).filter(|c| c.op)
    }
}

/// A platform operator, for operator routes only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub id: String,
}

impl<S> FromRequestParts<S> for Operator
where
    OperatorKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let keys = OperatorKeys::from_ref(state);
        let token = bearer(parts).ok_or_else(Problem::unauthorized)?;
        let claims = keys.verify(token).ok_or_else(Problem::unauthorized)?;
        Ok(Operator { id: claims.sub })
    }
}
