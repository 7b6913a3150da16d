-- Security events, kept: every request a business's route refused for who asked or what they
-- asked for, failed and throttled sign-ins, and the reads and erasures of a customer's data.
-- The APIs write them in batches (platform::security::SecurityLog); a business's owners and
-- admins read their own (`GET /v1/security-events`), operators all. Nothing personal of a
-- business's customers is kept here (a phone is not; an account's email is the business's
-- member's). Kept 180 days: the writers delete what is older.
create table security_events (
    id         uuid        primary key default gen_random_uuid(),
    at         timestamptz not null default now(),
    -- The tenant whose credential asked, or whose account was tried (none when unknown).
    tenant_id  uuid,
    kind       text        not null,
    -- The credential that asked, when it was genuine: `user:<id>`, `api_key:<id>`.
    actor      text,
    -- The client's address, when known.
    source     text,
    detail     jsonb       not null default '{}'
);
create index security_events_by_tenant on security_events (tenant_id, at desc, id desc);
create index security_events_by_age on security_events (at);
alter table security_events enable row level security;
alter table security_events force row level security;
-- Any API writes events of any tenant (one batch holds several); a tenant reads its own.
create policy writers_insert on security_events for insert to booking_app with check (true);
create policy tenant_reads on security_events for select to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
create policy retention on security_events for delete to booking_app
    using (at < now() - interval '180 days');
create policy operator_reads_all on security_events for select to booking_operator using (true);
grant select, insert, delete on security_events to booking_app;
grant select on security_events to booking_operator;
