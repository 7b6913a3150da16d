//! API keys: shown once at creation, stored as SHA-256, scoped, optionally expiring,
//! revocable. A key never grants more than the member who created it may do.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use domain::Decider as _;
use domain::access::{ApiKey, ApiKeyCommand, ApiKeyEvent, Permission};
use domain::ids::{ApiKeyId, UserId};
use eventstore::EventStore;
use uuid::Uuid;

use crate::events::stream;
use crate::{Actor, App, AppError, CommandContext, Committed, Rejection, execute};

/// API keys are recognisable by this prefix (and so never mistaken for a JWT).
pub const API_KEY_PREFIX: &str = "bk_live_";

/// What a new key is for.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<Permission>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A new key, with the key itself (shown once: only its hash is kept).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub key_id: Uuid,
    pub key: String,
    pub prefix: String,
    pub scopes: Vec<Permission>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn create(
    app: &App,
    ctx: &CommandContext,
    by: &Actor,
    request: NewApiKey,
) -> Result<Committed<CreatedKey>, AppError> {
    let name = request.name.trim().to_owned();
    if !(1..=60).contains(&name.chars().count()) {
        return Err(AppError::invalid("name", "1 to 60 characters"));
    }
    for scope in &request.scopes {
        if !by.can(*scope) {
            return Err(AppError::Forbidden(format!(
                "you may not grant {}",
                scope.as_str()
            )));
        }
    }
    let Some(issued_by) = by.user_id() else {
        return Err(AppError::Forbidden(
            "API keys are created by people, not by other keys".into(),
        ));
    };
    let key_id = Uuid::new_v4();
    let secret: [u8; 32] = rand::random();
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let prefix: String = key.chars().take(API_KEY_PREFIX.len() + 4).collect();
    let events = ApiKey::decide(
        &Default::default(),
        ApiKeyCommand::Issue {
            key_id: ApiKeyId::from_uuid(key_id),
            name: name.clone(),
            prefix: prefix.clone(),
            scopes: request.scopes.clone(),
            expires_at: request.expires_at,
            issued_by: UserId::from_uuid(issued_by),
            now: Utc::now(),
        },
    )
    .map_err(Rejection::ApiKey)?;
    let ApiKeyEvent::ApiKeyIssued { scopes, .. } = &events[0] else {
        unreachable!("issuing issues")
    };
    let created = CreatedKey {
        key_id,
        prefix,
        scopes: scopes.clone(),
        expires_at: request.expires_at,
        key,
    };
    let scope_labels: Vec<String> = created
        .scopes
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    let (events, created, name, scope_labels) = (&events, &created, &name, &scope_labels);
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let tenant_id = uow.tenant_id();
            let hash = vault::sha256(&created.key);
            let conn = uow.conn().await?;
            vault::directory::register_api_key(&mut *conn, &hash, tenant_id, key_id).await?;
            vault::api_keys::insert(
                conn,
                tenant_id,
                vault::api_keys::NewKey {
                    key_id,
                    key_hash: &hash,
                    prefix: &created.prefix,
                    name,
                    scopes: scope_labels,
                    expires_at: created.expires_at,
                },
            )
            .await?;
            uow.stage(&stream::<ApiKeyEvent>(key_id), events);
            Ok(created.clone())
        })
    })
    .await
}

/// Revokes a key: it stops working at once.
pub async fn revoke(
    app: &App,
    ctx: &CommandContext,
    by: &Actor,
    key_id: Uuid,
) -> Result<Committed<()>, AppError> {
    let revoked_by = UserId::from_uuid(by.user_id().unwrap_or(Uuid::nil()));
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let key_stream = stream::<ApiKeyEvent>(key_id);
            let state = uow.load::<ApiKey>(&key_stream).await?;
            let events = ApiKey::decide(&state, ApiKeyCommand::Revoke { revoked_by })
                .map_err(Rejection::ApiKey)?;
            vault::api_keys::revoke(uow.conn().await?, key_id).await?;
            uow.stage(&key_stream, &events);
            Ok(())
        })
    })
    .await
}

/// The tenant and the actor of a presented API key, if it is live (neither revoked nor
/// expired); its use is recorded.
pub async fn authenticate(
    store: &EventStore,
    key: &str,
) -> Result<Option<(Uuid, Actor)>, AppError> {
    let hash = vault::sha256(key);
    let Some((tenant_id, key_id)) = vault::directory::api_key_owner(store.pool(), &hash).await?
    else {
        return Ok(None);
    };
    let mut tx = store.begin(tenant_id).await?;
    let scopes = vault::api_keys::use_live_key(tx.conn(), key_id, &hash).await?;
    tx.commit().await?;
    Ok(scopes.map(|scopes| {
        let scopes = scopes.iter().filter_map(|s| Permission::parse(s)).collect();
        (tenant_id, Actor::ApiKey { id: key_id, scopes })
    }))
}
