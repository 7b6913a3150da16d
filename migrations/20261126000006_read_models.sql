-- Read models: what the projector builds from the log and the query API reads.
--
-- Every table carries tenant_id first in its key and has the event store's RLS policy. Each
-- projection owns a set of tables (listed in rm_tables) including `rm_<projection>_applied`,
-- the last version of each stream it has applied, written in the same transaction as the
-- read-model rows. A rebuild fills shadow copies (`<table>__next`) and swaps them in.

create table rm_tables (
    projection text not null,
    table_name text not null,
    primary key (projection, table_name)
);

-- tenants: the tenant stream and the user stream.
create table rm_tenants (
    tenant_id                  uuid primary key,
    slug                       text        not null,
    business_name              text        not null,
    contact_email              text        not null,
    time_zone                  text        not null,
    plan                       text        not null,
    status                     text        not null,
    status_reason              text,
    trial_ends_at              timestamptz not null,
    whatsapp_phone_number_id   text,
    whatsapp_display_number    text,
    whatsapp_credentials_valid boolean,
    onboarded_at               timestamptz not null,
    updated_at                 timestamptz not null
);

create table rm_users (
    tenant_id  uuid        not null,
    user_id    uuid        not null,
    email      text        not null,
    role       text        not null,
    active        boolean     not null,
    second_factor boolean     not null default false,
    invited_at    timestamptz not null,
    updated_at timestamptz not null,
    primary key (tenant_id, user_id)
);

-- catalog: the bot configuration stream.
create table rm_bot_config (
    tenant_id  uuid primary key,
    version    integer     not null,
    settings   jsonb,
    updated_at timestamptz not null
);

create table rm_services (
    tenant_id  uuid        not null,
    service_id uuid        not null,
    name       text        not null,
    active     boolean     not null,
    service    jsonb       not null,
    position   integer     not null,
    updated_at timestamptz not null,
    primary key (tenant_id, service_id)
);

-- bookings: the booking streams.
create table rm_bookings (
    tenant_id      uuid        not null,
    booking_id     uuid        not null,
    reference      text        not null,
    service_id     uuid        not null,
    service_name   text        not null,
    resource       text        not null,
    starts_at      timestamptz not null,
    ends_at        timestamptz not null,
    status         text        not null,
    channel        text        not null,
    customer_phone text        not null,
    customer_name  text,
    price_minor    bigint      not null,
    currency       text        not null,
    version        integer     not null,
    created_at     timestamptz not null,
    updated_at     timestamptz not null,
    primary key (tenant_id, booking_id)
);
create index rm_bookings_by_start on rm_bookings (tenant_id, starts_at, booking_id);
create index rm_bookings_by_customer on rm_bookings (tenant_id, customer_phone, starts_at);

create table rm_booking_history (
    tenant_id      uuid        not null,
    booking_id     uuid        not null,
    version        integer     not null,
    event_type     text        not null,
    payload        jsonb       not null,
    actor          text,
    correlation_id uuid,
    recorded_at    timestamptz not null,
    primary key (tenant_id, booking_id, version)
);

-- agenda: what each resource holds on each day.
create table rm_agenda (
    tenant_id  uuid        not null,
    resource   text        not null,
    day        date        not null,
    booking_id uuid        not null,
    starts_at  timestamptz not null,
    ends_at    timestamptz not null,
    primary key (tenant_id, resource, day, booking_id)
);

-- conversations: the inbox and each conversation's messages.
create table rm_conversations (
    tenant_id       uuid        not null,
    customer_phone  text        not null,
    profile_name    text,
    last_message_at timestamptz not null,
    last_direction  text        not null,
    last_preview    text        not null,
    bot_state       jsonb,
    handed_off      boolean     not null default false,
    messages        integer     not null default 0,
    updated_at      timestamptz not null,
    primary key (tenant_id, customer_phone)
);
create index rm_conversations_inbox on rm_conversations (tenant_id, last_message_at desc, customer_phone);

create table rm_messages (
    tenant_id      uuid        not null,
    customer_phone text        not null,
    version        integer     not null,
    message_id     text        not null, -- the inbound wamid, or the reply id
    direction      text        not null, -- 'in' or 'out'
    content        jsonb       not null,
    at             timestamptz not null,
    wamid          text,
    status         text,       -- outbound: pending, sent, delivered, read, failed
    error_code     bigint,
    error_reason   text,
    primary key (tenant_id, customer_phone, version)
);
create unique index rm_messages_by_id on rm_messages (tenant_id, message_id);
create index rm_messages_by_wamid on rm_messages (tenant_id, wamid) where wamid is not null;

-- usage: counters per tenant and calendar month (UTC).
create table rm_usage (
    tenant_id          uuid    not null,
    period             text    not null, -- YYYY-MM
    messages_in        bigint  not null default 0,
    messages_out       bigint  not null default 0,
    bookings_created   bigint  not null default 0,
    bookings_cancelled bigint  not null default 0,
    primary key (tenant_id, period)
);

do $$
declare
    p text;
    t text;
begin
    foreach p in array array['tenants', 'catalog', 'bookings', 'agenda', 'conversations', 'usage'] loop
        execute format($q$create table %I (
            tenant_id   uuid    not null,
            stream_type text    not null,
            stream_id   text    not null,
            version     integer not null,
            primary key (tenant_id, stream_type, stream_id)
        )$q$, 'rm_' || p || '_applied');
        insert into rm_tables values (p, 'rm_' || p || '_applied');
    end loop;
    insert into rm_tables values
        ('tenants', 'rm_tenants'), ('tenants', 'rm_users'),
        ('catalog', 'rm_bot_config'), ('catalog', 'rm_services'),
        ('bookings', 'rm_bookings'), ('bookings', 'rm_booking_history'),
        ('agenda', 'rm_agenda'),
        ('conversations', 'rm_conversations'), ('conversations', 'rm_messages'),
        ('usage', 'rm_usage');
    for t in select table_name from rm_tables loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format($p$create policy tenant_isolation on %I for all to booking_app
            using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
            with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)$p$, t);
        execute format('grant select, insert, update, delete on %I to booking_app', t);
    end loop;
end
$$;
grant select on rm_tables to booking_app, booking_operator;

-- How far each projection's live consumer has come, without a hole (not tenant data). The
-- query API compares a consistency token with it.
create table rm_positions (
    projection      text primary key,
    -- Every message of the JetStream stream up to here is applied or dead-lettered...
    stream_sequence bigint      not null default 0,
    -- ...and so is every event of the log up to here.
    transaction_id  xid8        not null,
    global_position bigint      not null,
    updated_at      timestamptz not null default now()
);
grant select, insert, update on rm_positions to booking_app;
grant select on rm_positions to booking_operator;

-- Events a projection gave up on after its redeliveries, with the error. Ids and the error
-- only, no payload: an operator lists and retries them (`projector dead-letters`).
create table rm_dead_letters (
    projection  text        not null,
    event_id    uuid        not null,
    tenant_id   uuid        not null,
    stream_type text        not null,
    stream_id   text        not null,
    version     integer     not null,
    event_type  text        not null,
    position    text        not null,
    error       text        not null,
    attempts    integer     not null,
    failed_at   timestamptz not null default now(),
    primary key (projection, event_id)
);
grant select, insert, update, delete on rm_dead_letters to booking_app;
grant select, delete on rm_dead_letters to booking_operator;

-- The WhatsApp sender's claim on each reply: a reply is sent at most once, also across
-- redelivery and restart.
create table wa_outbound (
    tenant_id  uuid        not null,
    reply_id   text        not null,
    state      text        not null, -- sending, sent, failed
    attempts   integer     not null default 0,
    wamid      text,
    error_code bigint,
    error      text,
    updated_at timestamptz not null default now(),
    primary key (tenant_id, reply_id)
);
alter table wa_outbound enable row level security;
alter table wa_outbound force row level security;
create policy tenant_isolation on wa_outbound for all to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
grant select, insert, update on wa_outbound to booking_app;

-- Rebuild support, for the operator role only: shadow tables, a lock on the live ones, the
-- swap. SECURITY DEFINER runs them as the owner; the table names come from rm_tables only.
create function rm_create_shadows(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
    shadow text;
begin
    if not exists (select 1 from rm_tables where projection = p) then
        raise exception 'unknown projection %', p using errcode = '22023';
    end if;
    for t in select table_name from rm_tables where projection = p loop
        shadow := t || '__next';
        execute format('drop table if exists %I', shadow);
        execute format('create table %I (like %I including all)', shadow, t);
        execute format('alter table %I enable row level security', shadow);
        execute format('alter table %I force row level security', shadow);
        execute format($p$create policy tenant_isolation on %I for all to booking_app
            using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
            with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)$p$, shadow);
        execute format('grant select, insert, update, delete on %I to booking_app', shadow);
    end loop;
end
$$;

create function rm_lock_live(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
begin
    for t in select table_name from rm_tables where projection = p order by table_name loop
        execute format('lock table %I in access exclusive mode', t);
    end loop;
end
$$;

create function rm_swap(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
begin
    for t in select table_name from rm_tables where projection = p order by table_name loop
        execute format('alter table %I rename to %I', t, t || '__old');
        execute format('alter table %I rename to %I', t || '__next', t);
        execute format('drop table %I', t || '__old');
    end loop;
end
$$;

create function rm_drop_shadows(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
begin
    for t in select table_name from rm_tables where projection = p loop
        execute format('drop table if exists %I', t || '__next');
    end loop;
end
$$;

revoke all on function rm_create_shadows(text), rm_lock_live(text), rm_swap(text), rm_drop_shadows(text) from public;
grant execute on function rm_create_shadows(text), rm_lock_live(text), rm_swap(text), rm_drop_shadows(text) to booking_operator;
