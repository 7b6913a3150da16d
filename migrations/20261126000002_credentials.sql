-- Credentials and reservations: state that must not live in the event log (secrets) or that
-- enforces uniqueness across tenants. Events record that these things happened; these tables
-- hold what cannot be replayed from events.

-- Slugs are unique across tenants and resolve a login to its tenant. Not tenant data: a
-- directory the application role reads without a tenant set. Holds no secret.
create table tenant_directory (
    slug        text primary key,
    tenant_id   uuid not null unique,
    created_at  timestamptz not null default now()
);
grant select, insert on tenant_directory to booking_app;
grant select on tenant_directory to booking_operator;

-- Password hashes (argon2id) of dashboard users.
create table user_credentials (
    tenant_id      uuid not null,
    user_id        uuid not null,
    email          text not null,
    password_hash  text not null,
    role           text not null,
    active         boolean not null default true,
    created_at     timestamptz not null default now(),
    primary key (tenant_id, user_id),
    unique (tenant_id, email)
);

-- Refresh tokens, stored as SHA-256; rotated on every use. Reusing a rotated token revokes its
-- whole family (a stolen token is detected the moment either party uses it again).
create table refresh_tokens (
    tenant_id    uuid not null,
    token_hash   bytea not null,
    family_id    uuid not null,
    user_id      uuid not null,
    expires_at   timestamptz not null,
    used_at      timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz not null default now(),
    primary key (tenant_id, token_hash)
);
create index refresh_tokens_family on refresh_tokens (tenant_id, family_id);

do $$
declare
    t text;
begin
    foreach t in array array['user_credentials', 'refresh_tokens'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format($p$create policy tenant_isolation on %I for all to booking_app
            using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
            with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)$p$, t);
        execute format('grant select, insert, update on %I to booking_app', t);
    end loop;
end
$$;
