-- A business's owner proves their email before the business connects WhatsApp or takes
-- bookings. A verification link's token: its hash (what the link is redeemed with), the address
-- it was sent to, and the token sealed with the platform's key only until the notifier has
-- emailed it. Never in events.
create table email_verifications (
    token_hash  bytea       primary key,
    tenant_id   uuid        not null,
    email       text        not null,
    token_enc   bytea,
    expires_at  timestamptz not null,
    used_at     timestamptz,
    created_at  timestamptz not null default now()
);
create index email_verifications_tenant on email_verifications (tenant_id, created_at);
alter table email_verifications enable row level security;
alter table email_verifications force row level security;
create policy tenant_isolation on email_verifications for all to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
grant select, insert, update on email_verifications to booking_app;

-- Businesses onboarded before verification existed count as verified.
alter table rm_tenants add column email_verified boolean not null default true;
