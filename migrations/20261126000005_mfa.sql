-- TOTP secrets (sealed like the WhatsApp credentials), per user. `last_step` is the last
-- 30-second step a code was accepted for: a code is good once.
create table mfa_secrets (
    tenant_id   uuid not null,
    user_id     uuid not null,
    secret_enc  bytea not null,
    enabled     boolean not null default false,
    last_step   bigint not null default 0,
    created_at  timestamptz not null default now(),
    primary key (tenant_id, user_id)
);
alter table mfa_secrets enable row level security;
alter table mfa_secrets force row level security;
create policy tenant_isolation on mfa_secrets for all to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
grant select, insert, update, delete on mfa_secrets to booking_app;
