-- Invitations and API keys. Secrets are stored as SHA-256 only.

-- One-time invitation tokens: the invitee sets a password with one.
create table invitations (
    tenant_id   uuid not null,
    token_hash  bytea not null,
    user_id     uuid not null,
    expires_at  timestamptz not null,
    used_at     timestamptz,
    primary key (tenant_id, token_hash)
);

-- API key metadata and hashes, per tenant.
create table api_keys (
    tenant_id     uuid not null,
    key_id        uuid not null,
    key_hash      bytea not null,
    prefix        text not null,
    name          text not null,
    scopes        text[] not null,
    expires_at    timestamptz,
    revoked_at    timestamptz,
    last_used_at  timestamptz,
    created_at    timestamptz not null default now(),
    primary key (tenant_id, key_id)
);

do $$
declare
    t text;
begin
    foreach t in array array['invitations', 'api_keys'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format($p$create policy tenant_isolation on %I for all to booking_app
            using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
            with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)$p$, t);
        execute format('grant select, insert, update on %I to booking_app', t);
    end loop;
end
$$;

-- Which tenant a presented key belongs to, by its hash: read before any tenant is known.
-- A SHA-256 of a 256-bit random key reveals nothing.
create table api_key_directory (
    key_hash   bytea primary key,
    tenant_id  uuid not null,
    key_id     uuid not null
);
grant select, insert on api_key_directory to booking_app;
