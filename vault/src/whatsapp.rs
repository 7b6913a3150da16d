//! A tenant's WhatsApp credentials: the access token and the app secret, sealed. Tenant
//! table: run inside the tenant's transaction.

use uuid::Uuid;

use crate::Conn;

/// What connecting a number stores.
#[derive(Debug, Clone)]
pub struct SealedCredentials<'a> {
    pub phone_number_id: &'a str,
    pub display_phone_number: &'a str,
    pub access_token_enc: &'a [u8],
    pub app_secret_enc: &'a [u8],
}

/// Stores the tenant's credentials, replacing its previous number's.
pub async fn store(
    conn: &mut Conn,
    tenant_id: Uuid,
    credentials: SealedCredentials<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into whatsapp_credentials
             (tenant_id, phone_number_id, display_phone_number, access_token_enc, app_secret_enc)
         values ($1, $2, $3, $4, $5)
         on conflict (tenant_id) do update
           set phone_number_id = excluded.phone_number_id,
               display_phone_number = excluded.display_phone_number,
               access_token_enc = excluded.access_token_enc,
               app_secret_enc = excluded.app_secret_enc,
               updated_at = now()",
        tenant_id,
        credentials.phone_number_id,
        credentials.display_phone_number,
        credentials.access_token_enc,
        credentials.app_secret_enc
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The sealed app secret webhooks are signed with.
pub async fn app_secret(conn: &mut Conn) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar!("select app_secret_enc from whatsapp_credentials")
        .fetch_optional(conn)
        .await
}

/// The number replies are sent from and its sealed access token.
pub async fn sender(conn: &mut Conn) -> Result<Option<(String, Vec<u8>)>, sqlx::Error> {
    let row = sqlx::query!("select phone_number_id, access_token_enc from whatsapp_credentials")
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| (r.phone_number_id, r.access_token_enc)))
}
