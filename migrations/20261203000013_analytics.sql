-- Analytics: facts the analytics consumer (`analytics/`) derives from the events stream, as an
-- outside consumer would, and the query API reads.
--
-- Its own schema, not a projection: it is not in rm_tables, so a consistency token waits for it
-- only where an analytics read asks. Every tenant table has tenant_id first in its key and the
-- read models' RLS policy; the operator reads every tenant's rows for the platform-wide view.
-- Local days are the tenant's: a timestamp is kept as such and turned into the tenant's day
-- (analytics.tenants.time_zone) when read.

create schema analytics;
grant usage on schema analytics to booking_app, booking_operator;

-- How far the consumer has applied the stream: every message up to stream_sequence (and every
-- event up to the position) is in the facts below. Written in the same transaction as them.
create table analytics.checkpoints (
    consumer        text primary key,
    stream_sequence bigint      not null,
    transaction_id  xid8        not null,
    global_position bigint      not null,
    applied         bigint      not null default 0,
    updated_at      timestamptz not null default now()
);
grant select, insert, update, delete on analytics.checkpoints to booking_app;
grant select on analytics.checkpoints to booking_operator;

-- Events the consumer could not apply, after retries; it went on past them.
create table analytics.dead_letters (
    consumer        text        not null,
    stream_sequence bigint      not null,
    tenant_id       uuid,
    event_id        uuid,
    event_type      text,
    error           text        not null,
    failed_at       timestamptz not null default now(),
    primary key (consumer, stream_sequence)
);
grant select, insert, delete on analytics.dead_letters to booking_app;
grant select, delete on analytics.dead_letters to booking_operator;

create table analytics.tenants (
    tenant_id     uuid primary key,
    business_name text        not null,
    time_zone     text        not null,
    onboarded_at  timestamptz not null
);

-- One row a booking, as it stands.
create table analytics.bookings (
    tenant_id      uuid        not null,
    booking_id     uuid        not null,
    service_id     uuid        not null,
    service_name   text        not null,
    resource       text        not null,
    channel        text        not null check (channel in ('whatsapp', 'dashboard', 'api')),
    customer_phone text        not null,
    price_minor    bigint      not null,
    currency       text        not null,
    booked_at      timestamptz not null,
    starts_at      timestamptz not null,
    ends_at        timestamptz not null,
    outcome        text        not null default 'booked'
        check (outcome in ('booked', 'cancelled', 'completed', 'no_show')),
    cancelled_at   timestamptz,
    cancelled_by   text check (cancelled_by in ('customer', 'business')),
    moves          integer     not null default 0,
    primary key (tenant_id, booking_id)
);
create index analytics_bookings_booked on analytics.bookings (tenant_id, booked_at);
create index analytics_bookings_starts on analytics.bookings (tenant_id, starts_at);
-- Returning customers: a customer's earlier appointments (100x faster than the starts index
-- for a month of a busy salon, `just bench-analytics`).
create index analytics_bookings_customer
    on analytics.bookings (tenant_id, customer_phone, starts_at);

-- One row a conversation session: from a customer's first message (or the first after an
-- idle session ended) to the next end.
create table analytics.sessions (
    tenant_id          uuid        not null,
    phone              text        not null,
    started_at         timestamptz not null,
    ended              boolean     not null default false,
    messages_in        integer     not null default 0,
    messages_out       integer     not null default 0,
    -- When Meta accepted the session's first reply (OutboundMessageSent).
    first_reply_at     timestamptz,
    reached_time       boolean     not null default false,
    handed_off         boolean     not null default false,
    booking_id         uuid,
    booked_at          timestamptz,
    primary key (tenant_id, phone, started_at)
);
create index analytics_sessions_started on analytics.sessions (tenant_id, started_at);
create index analytics_sessions_open on analytics.sessions (tenant_id, phone) where not ended;

-- Messages in and out by the tenant's local day (counted once: the checkpoint skips what was
-- applied).
create table analytics.messages_daily (
    tenant_id uuid    not null,
    day       date    not null,
    inbound   integer not null default 0,
    outbound  integer not null default 0,
    primary key (tenant_id, day)
);

do $$
declare
    t text;
begin
    foreach t in array array['tenants', 'bookings', 'sessions', 'messages_daily'] loop
        execute format('alter table analytics.%I enable row level security', t);
        execute format('alter table analytics.%I force row level security', t);
        execute format($p$create policy tenant_isolation on analytics.%I for all to booking_app
            using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
            with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)$p$, t);
        execute format($p$create policy operator_reads_all on analytics.%I
            for select to booking_operator using (true)$p$, t);
        execute format('grant select, insert, update, delete on analytics.%I to booking_app', t);
        execute format('grant select on analytics.%I to booking_operator', t);
    end loop;
end
$$;

-- A rebuild starts the facts afresh: every tenant's rows, the dead letters and the checkpoint,
-- at once (the checkpoint's row lock waits for a batch in flight). The operator role calls it;
-- it reads nothing.
create function analytics.reset(p_consumer text) returns void
language plpgsql security definer set search_path = analytics, public as $$
begin
    perform 1 from analytics.checkpoints where consumer = p_consumer for update;
    delete from analytics.bookings;
    delete from analytics.sessions;
    delete from analytics.messages_daily;
    delete from analytics.tenants;
    delete from analytics.dead_letters where consumer = p_consumer;
    update analytics.checkpoints
       set stream_sequence = 0, transaction_id = '0'::xid8, global_position = 0, applied = 0,
           updated_at = now()
     where consumer = p_consumer;
end
$$;
revoke execute on function analytics.reset(text) from public;
grant execute on function analytics.reset(text) to booking_operator;
