//! Personal data in an immutable log: sealed with a key per customer, erased by deleting the key
//! (crypto-shredding).
//!
//! Whoever appends seals each personal value of a payload (a phone number, a name, what a
//! customer wrote or was told) with its customer's key, as a node the store recognises without
//! knowing the event type:
//!
//! ```json
//! {"$personal": {"subject": "<uuid>", "sealed": "<base64 nonce || AES-256-GCM ciphertext>",
//!                "erased": <what the value reads as once the customer is erased>}}
//! ```
//!
//! Every read of the store reveals them (`EventStore`, `GlobalLog`), as does every consumer of
//! the events stream ([`reveal`]): the relay alone publishes them sealed, so JetStream never
//! holds a personal value in the clear. The key of a customer who was erased is gone, and what
//! was sealed with it reads as its `erased` stand-in, for every reader, rebuild and new
//! consumer alike. The ciphertext is bound to its tenant and subject, so a sealed value copied
//! into another tenant's or customer's event does not open.

use std::collections::{HashMap, HashSet};

use aes_gcm::aead::{Aead as _, AeadCore as _, KeyInit as _, Payload};
use base64::Engine as _;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::types::{RecordedEvent, TenantId};

/// The key of a sealed node.
pub const MARK: &str = "$personal";

/// One customer's key: the subject id that stands for them in sealed values, and the key.
#[derive(Clone)]
pub struct SubjectKey {
    pub subject: Uuid,
    key: [u8; 32],
}

impl std::fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubjectKey")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

impl SubjectKey {
    /// A new subject id and key, for a customer met for the first time.
    pub fn fresh() -> Self {
        Self {
            subject: Uuid::new_v4(),
            key: rand::random(),
        }
    }

    fn from_row(subject: Uuid, key: &[u8]) -> Result<Self, sqlx::Error> {
        let key = key
            .try_into()
            .map_err(|_| undecodable(format!("the key of subject {subject} is not 32 bytes")))?;
        Ok(Self { subject, key })
    }

    fn cipher(&self) -> aes_gcm::Aes256Gcm {
        aes_gcm::Aes256Gcm::new_from_slice(&self.key).expect("32-byte key")
    }

    /// `value` sealed for `tenant`, reading as `erased` once this key is gone.
    pub fn seal(&self, tenant: TenantId, value: &Value, erased: Value) -> Value {
        let nonce = aes_gcm::Aes256Gcm::generate_nonce(&mut aes_gcm::aead::OsRng);
        let plaintext = serde_json::to_vec(value).expect("JSON serializes");
        let aad = binding(tenant, self.subject);
        let mut sealed = nonce.to_vec();
        sealed.extend(
            self.cipher()
                .encrypt(
                    &nonce,
                    Payload {
                        msg: &plaintext,
                        aad: &aad,
                    },
                )
                .expect("AES-GCM encrypts any length"),
        );
        json!({ MARK: {
            "subject": self.subject,
            "sealed": base64::engine::general_purpose::STANDARD.encode(sealed),
            "erased": erased,
        }})
    }

    fn open(&self, tenant: TenantId, sealed: &str) -> Option<Value> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if bytes.len() < 12 {
            return None;
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let aad = binding(tenant, self.subject);
        let plaintext = self
            .cipher()
            .decrypt(
                aes_gcm::Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .ok()?;
        serde_json::from_slice(&plaintext).ok()
    }
}

fn binding(tenant: TenantId, subject: Uuid) -> [u8; 32] {
    let mut aad = [0u8; 32];
    aad[..16].copy_from_slice(tenant.as_bytes());
    aad[16..].copy_from_slice(subject.as_bytes());
    aad
}

fn undecodable(message: String) -> sqlx::Error {
    sqlx::Error::Decode(message.into())
}

/// The key of `phone`, a customer of `tenant`, if the business has one (one statement, no
/// insert: a customer met for the first time gets [`SubjectKey::fresh`], saved with
/// [`save_key`] in the transaction of the events it seals).
pub async fn key_of_phone(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    phone: &str,
) -> Result<Option<SubjectKey>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select subject_id as "subject_id!", key as "key!"
             from customer_key_of_phone($1, $2)"#,
        tenant,
        phone
    )
    .fetch_optional(conn)
    .await?;
    row.map(|row| SubjectKey::from_row(row.subject_id, &row.key))
        .transpose()
}

/// Saves `key` as the key of `phone`, a customer of `tenant` met for the first time. `false`
/// when another transaction saved one first (the caller's events, sealed with this one, must
/// not be appended: deciding again finds the key that won).
pub async fn save_key(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    phone: &str,
    key: &SubjectKey,
) -> Result<bool, sqlx::Error> {
    let row = sqlx::query!(
        r#"select subject_id as "subject_id!" from customer_key($1, $2, $3, $4)"#,
        tenant,
        phone,
        key.subject,
        &key.key[..]
    )
    .fetch_one(conn)
    .await?;
    Ok(row.subject_id == key.subject)
}

/// The key of `phone`, a customer of `tenant`, made on first use (one statement; two first
/// uses at once agree on one key). It commits by itself: for imports and tests that name a
/// stream before appending to it; a command's keys commit with its events ([`save_key`]).
pub async fn subject_key(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    phone: &str,
) -> Result<SubjectKey, sqlx::Error> {
    let candidate: [u8; 32] = rand::random();
    let row = sqlx::query!(
        r#"select subject_id as "subject_id!", key as "key!"
             from customer_key($1, $2, $3, $4)"#,
        tenant,
        phone,
        Uuid::new_v4(),
        &candidate[..]
    )
    .fetch_one(conn)
    .await?;
    SubjectKey::from_row(row.subject_id, &row.key)
}

/// The key of a subject of `tenant` (`None`: erased).
pub async fn key_of(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    subject: Uuid,
) -> Result<Option<SubjectKey>, sqlx::Error> {
    let wanted = HashMap::from([(tenant, HashSet::from([subject]))]);
    Ok(keys_of(conn, wanted).await?.remove(&(tenant, subject)))
}

/// The phone of a subject of `tenant`, or `None` once they are erased; on a connection of the
/// tenant's transaction (or the operator's).
pub async fn phone_of(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    subject: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        "select phone from customer_keys where tenant_id = $1 and subject_id = $2",
        tenant,
        subject
    )
    .fetch_optional(conn)
    .await
}

/// The subject id of `phone`, a customer `tenant` has met, without making one.
pub async fn subject_of(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    phone: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select customer_subject($1, $2) as "subject""#,
        tenant,
        phone
    )
    .fetch_one(conn)
    .await
}

/// Erases `phone`, a customer of the tenant of `conn`'s transaction: deletes their key and
/// records the erasure. Their subject id, or `None` when the business never held anything
/// of them (or they were erased already).
pub async fn erase(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    phone: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    let Some(subject) = sqlx::query_scalar!(
        "delete from customer_keys where tenant_id = $1 and phone = $2 returning subject_id",
        tenant,
        phone
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    sqlx::query!(
        "insert into customer_erasures (tenant_id, subject_id) values ($1, $2)
         on conflict do nothing",
        tenant,
        subject
    )
    .execute(&mut *conn)
    .await?;
    Ok(Some(subject))
}

/// Whether a payload holds a sealed value.
pub fn is_sealed(payload: &Value) -> bool {
    let mut found = false;
    walk(payload, &mut |_| found = true);
    found
}

/// The subjects a payload's sealed values belong to.
fn subjects_in(payload: &Value, into: &mut HashSet<Uuid>) {
    walk(payload, &mut |node| {
        if let Some(subject) = node["subject"].as_str().and_then(|s| s.parse().ok()) {
            into.insert(subject);
        }
    });
}

/// Calls `f` with the inside of every sealed node.
fn walk(value: &Value, f: &mut impl FnMut(&Value)) {
    match value {
        Value::Object(map) => match map.get(MARK) {
            Some(inner) if map.len() == 1 => f(inner),
            _ => map.values().for_each(|v| walk(v, f)),
        },
        Value::Array(items) => items.iter().for_each(|v| walk(v, f)),
        _ => {}
    }
}

/// Replaces every sealed node of `value` by what `f` makes of its inside.
fn replace(
    value: &mut Value,
    f: &mut impl FnMut(&Value) -> Result<Value, sqlx::Error>,
) -> Result<(), sqlx::Error> {
    match value {
        Value::Object(map) => {
            if map.len() == 1
                && let Some(inner) = map.get(MARK)
            {
                *value = f(inner)?;
                return Ok(());
            }
            map.values_mut().try_for_each(|v| replace(v, f))
        }
        Value::Array(items) => items.iter_mut().try_for_each(|v| replace(v, f)),
        _ => Ok(()),
    }
}

/// Reveals the sealed values of `events` (of any tenants): each opens with its customer's key,
/// or reads as its stand-in when the customer was erased. One statement per tenant concerned;
/// no connection taken when nothing is sealed. A value that does not open with a key that
/// exists was altered: an error, never a silent stand-in.
pub async fn reveal<E: Sealed>(pool: &PgPool, events: &mut [E]) -> Result<(), sqlx::Error> {
    let wanted = subjects_of(events);
    if wanted.is_empty() {
        return Ok(());
    }
    let mut conn = pool.acquire().await?;
    let keys = keys_of(&mut conn, wanted).await?;
    open_all(events, &keys)
}

/// [`reveal`] on a connection the caller holds (inside its tenant transaction).
pub async fn reveal_in<E: Sealed>(
    conn: &mut sqlx::PgConnection,
    events: &mut [E],
) -> Result<(), sqlx::Error> {
    let wanted = subjects_of(events);
    if wanted.is_empty() {
        return Ok(());
    }
    let keys = keys_of(conn, wanted).await?;
    open_all(events, &keys)
}

type Keys = HashMap<(TenantId, Uuid), SubjectKey>;

/// An event whose payload may hold sealed values: the store's own, or a consumer's reading of
/// the stream's envelope.
pub trait Sealed {
    fn tenant_id(&self) -> TenantId;
    fn event_id(&self) -> Uuid;
    fn payload_mut(&mut self) -> &mut Value;
    fn payload(&self) -> &Value;
}

impl Sealed for RecordedEvent {
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn event_id(&self) -> Uuid {
        self.event_id
    }
    fn payload_mut(&mut self) -> &mut Value {
        &mut self.payload
    }
    fn payload(&self) -> &Value {
        &self.payload
    }
}

fn subjects_of<E: Sealed>(events: &[E]) -> HashMap<TenantId, HashSet<Uuid>> {
    let mut wanted: HashMap<TenantId, HashSet<Uuid>> = HashMap::new();
    for event in events {
        let mut subjects = HashSet::new();
        subjects_in(event.payload(), &mut subjects);
        if !subjects.is_empty() {
            wanted
                .entry(event.tenant_id())
                .or_default()
                .extend(subjects);
        }
    }
    wanted
}

async fn keys_of(
    conn: &mut sqlx::PgConnection,
    wanted: HashMap<TenantId, HashSet<Uuid>>,
) -> Result<Keys, sqlx::Error> {
    let mut keys = Keys::new();
    for (tenant, subjects) in wanted {
        let subjects: Vec<Uuid> = subjects.into_iter().collect();
        let rows = sqlx::query!(
            r#"select subject_id as "subject_id!", key as "key!"
                 from customer_keys_of($1, $2)"#,
            tenant,
            &subjects
        )
        .fetch_all(&mut *conn)
        .await?;
        for row in rows {
            keys.insert(
                (tenant, row.subject_id),
                SubjectKey::from_row(row.subject_id, &row.key)?,
            );
        }
    }
    Ok(keys)
}

fn open_all<E: Sealed>(events: &mut [E], keys: &Keys) -> Result<(), sqlx::Error> {
    for event in events.iter_mut() {
        let (tenant, event_id) = (event.tenant_id(), event.event_id());
        replace(event.payload_mut(), &mut |inner| {
            let subject: Option<Uuid> = inner["subject"].as_str().and_then(|s| s.parse().ok());
            let key = subject.and_then(|s| keys.get(&(tenant, s)));
            match (key, inner["sealed"].as_str()) {
                (None, _) => Ok(inner.get("erased").cloned().unwrap_or(Value::Null)),
                (Some(key), Some(sealed)) => key.open(tenant, sealed).ok_or_else(|| {
                    undecodable(format!("a sealed value of event {event_id} does not open"))
                }),
                (Some(_), None) => Err(undecodable(format!(
                    "a sealed value of event {event_id} has no ciphertext"
                ))),
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SubjectKey {
        SubjectKey {
            subject: Uuid::from_u128(7),
            key: [9; 32],
        }
    }

    #[test]
    fn a_sealed_value_opens_for_its_tenant_and_subject_only() {
        let (tenant, other) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let value = json!({"phone": "+34600000001", "name": "Ana"});
        let sealed = key().seal(tenant, &value, json!("[erased]"));
        let text = sealed.to_string();
        assert!(
            !text.contains("34600000001") && !text.contains("Ana"),
            "{text}"
        );
        let inner = &sealed[MARK];
        let ciphertext = inner["sealed"].as_str().unwrap();
        assert_eq!(key().open(tenant, ciphertext), Some(value));
        assert_eq!(key().open(other, ciphertext), None, "bound to its tenant");
        let mut someone_else = key();
        someone_else.subject = Uuid::from_u128(8);
        assert_eq!(
            someone_else.open(tenant, ciphertext),
            None,
            "bound to its subject"
        );
        assert!(is_sealed(&json!({"customer": sealed})));
        assert!(!is_sealed(&json!({"customer": {"phone": "+34600000001"}})));
    }

    #[test]
    fn every_sealed_node_is_found_and_replaced_nested_or_not() {
        let tenant = Uuid::from_u128(1);
        let mut payload = json!({
            "to": key().seal(tenant, &json!("+34600000001"), json!("+999")),
            "reply": {"items": [key().seal(tenant, &json!("hi"), json!("[erased]"))]},
            "reply_id": "r1",
        });
        let mut subjects = HashSet::new();
        subjects_in(&payload, &mut subjects);
        assert_eq!(subjects, HashSet::from([Uuid::from_u128(7)]));
        replace(&mut payload, &mut |inner| Ok(inner["erased"].clone())).unwrap();
        assert_eq!(
            payload,
            json!({"to": "+999", "reply": {"items": ["[erased]"]}, "reply_id": "r1"})
        );
    }
}
