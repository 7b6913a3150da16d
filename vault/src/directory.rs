//! The global directories: names that are unique across tenants and resolve a request to its
//! tenant before any tenant is known. They hold no secret (a SHA-256 of a 256-bit random
//! token is not one) and are not under row-level security.

use sqlx::PgExecutor;
use uuid::Uuid;

/// The constraint a second business claiming a slug runs into.
pub const SLUG_TAKEN: &str = "tenant_directory_pkey";
/// The constraint a number connected to another business runs into.
pub const NUMBER_TAKEN: &str = "whatsapp_routes_pkey";

/// Claims `slug` for `tenant_id` (fails on [`SLUG_TAKEN`]).
pub async fn reserve_slug(
    conn: impl PgExecutor<'_>,
    slug: &str,
    tenant_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into tenant_directory (slug, tenant_id) values ($1, $2)",
        slug,
        tenant_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenant a slug belongs to.
pub async fn tenant_of_slug(
    conn: impl PgExecutor<'_>,
    slug: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select tenant_id from tenant_directory where slug = $1",
        slug
    )
    .fetch_optional(conn)
    .await
}

/// Routes `phone_number_id` to `tenant_id` with the hash of the verify token Meta will echo,
/// replacing the tenant's previous number (fails on [`NUMBER_TAKEN`] when another tenant has
/// it).
pub async fn route_number(
    conn: impl PgExecutor<'_>,
    phone_number_id: &str,
    tenant_id: Uuid,
    verify_token_hash: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into whatsapp_routes (phone_number_id, tenant_id, verify_token_hash)
         values ($1, $2, $3)
         on conflict (tenant_id) do update
           set phone_number_id = excluded.phone_number_id,
               verify_token_hash = excluded.verify_token_hash,
               updated_at = now()",
        phone_number_id,
        tenant_id,
        verify_token_hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenants of the given numbers (numbers no tenant connected are absent).
pub async fn tenants_of_numbers(
    conn: impl PgExecutor<'_>,
    phone_number_ids: &[String],
) -> Result<Vec<(String, Uuid)>, sqlx::Error> {
    let rows = sqlx::query!(
        "select phone_number_id, tenant_id from whatsapp_routes
         where phone_number_id = any($1)",
        phone_number_ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.phone_number_id, r.tenant_id))
        .collect())
}

/// Routes Stripe's `customer_id` to `tenant_id` (a second call with the same pair is a
/// no-op; the first customer of a tenant stands).
pub async fn route_stripe_customer(
    conn: impl PgExecutor<'_>,
    customer_id: &str,
    tenant_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into stripe_customers (customer_id, tenant_id) values ($1, $2)
         on conflict do nothing",
        customer_id,
        tenant_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenant a Stripe customer belongs to.
pub async fn tenant_of_stripe_customer(
    conn: impl PgExecutor<'_>,
    customer_id: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select tenant_id from stripe_customers where customer_id = $1",
        customer_id
    )
    .fetch_optional(conn)
    .await
}

/// Whether some tenant's number was connected with this verify token.
pub async fn verify_token_known(
    conn: impl PgExecutor<'_>,
    verify_token_hash: &[u8],
) -> Result<bool, sqlx::Error> {
    let known = sqlx::query_scalar!(
        r#"select exists (select from whatsapp_routes where verify_token_hash = $1) as "known!""#,
        verify_token_hash
    )
    .fetch_one(conn)
    .await?;
    Ok(known)
}

/// Records which tenant and key a key hash belongs to.
pub async fn register_api_key(
    conn: impl PgExecutor<'_>,
    key_hash: &[u8],
    tenant_id: Uuid,
    key_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into api_key_directory (key_hash, tenant_id, key_id) values ($1, $2, $3)",
        key_hash,
        tenant_id,
        key_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The tenant and key id of a presented key's hash.
pub async fn api_key_owner(
    conn: impl PgExecutor<'_>,
    key_hash: &[u8],
) -> Result<Option<(Uuid, Uuid)>, sqlx::Error> {
    let row = sqlx::query!(
        "select tenant_id, key_id from api_key_directory where key_hash = $1",
        key_hash
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.tenant_id, r.key_id)))
}
