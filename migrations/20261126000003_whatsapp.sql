-- WhatsApp numbers: routing (global, no secrets) and credentials (per tenant, encrypted).

-- Which tenant a webhook's phone_number_id belongs to, and the SHA-256 of the verify token
-- Meta echoes on webhook verification. Read before any tenant is known, so not under RLS; it
-- holds no secret (a hash of a random token is not one).
create table whatsapp_routes (
    phone_number_id    text primary key,
    tenant_id          uuid not null unique,
    verify_token_hash  bytea not null,
    updated_at         timestamptz not null default now()
);
create index whatsapp_routes_verify_token on whatsapp_routes (verify_token_hash);
grant select, insert, update, delete on whatsapp_routes to booking_app;
grant select on whatsapp_routes to booking_operator;

-- The access token and app secret, AES-256-GCM encrypted with the platform's key
-- (nonce || ciphertext). Never in events, never in logs.
create table whatsapp_credentials (
    tenant_id            uuid primary key,
    phone_number_id      text not null,
    display_phone_number text not null,
    access_token_enc     bytea not null,
    app_secret_enc       bytea not null,
    updated_at           timestamptz not null default now()
);
alter table whatsapp_credentials enable row level security;
alter table whatsapp_credentials force row level security;
create policy tenant_isolation on whatsapp_credentials for all to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
grant select, insert, update, delete on whatsapp_credentials to booking_app;
