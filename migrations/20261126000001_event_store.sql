-- The event store: one append-only table, tenant-isolated by row-level security.
--
-- Runs as the owner role (booking_owner). It creates the two roles the services use:
--   booking_app       the services' role: owns nothing, no BYPASSRLS, sees one tenant per
--                     transaction (set_config('app.tenant_id', ..., true)), may only INSERT/SELECT.
--   booking_operator  cross-tenant reads for the relay, audit and replay; never used with a
--                     tenant's credentials.
-- Roles are cluster-wide, so creation is guarded; passwords are set at deployment, not here.

do $$
begin
    if not exists (select from pg_roles where rolname = 'booking_app') then
        create role booking_app login nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
    end if;
    if not exists (select from pg_roles where rolname = 'booking_operator') then
        create role booking_operator login nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
    end if;
end
$$;

grant usage on schema public to booking_app, booking_operator;

create table events (
    global_position bigint generated always as identity,
    -- Readers order by (transaction_id, global_position) and only read below the snapshot's
    -- xmin, so an event that commits late is never skipped (reference/event-store-ordering.md).
    transaction_id  xid8        not null default pg_current_xact_id(),
    tenant_id       uuid        not null,
    stream_type     text        not null,
    stream_id       text        not null,
    version         integer     not null,
    event_id        uuid        not null,
    event_type      text        not null,
    schema_version  integer     not null,
    payload         jsonb       not null,
    metadata        jsonb       not null default '{}',
    recorded_at     timestamptz not null default now(),

    -- Optimistic concurrency: a lost race on a stream is a unique violation on this key.
    constraint events_stream_version primary key (tenant_id, stream_type, stream_id, version),
    -- Idempotency and NATS de-duplication (Nats-Msg-Id) rely on event ids being global, so
    -- this is the one key that does not lead with tenant_id.
    constraint events_event_id unique (event_id),
    constraint events_version_positive check (version >= 1),
    constraint events_schema_version_positive check (schema_version >= 1),
    -- stream_type and event_type become NATS subject tokens.
    constraint events_stream_type_token check (stream_type ~ '^[A-Za-z0-9_-]{1,64}$'),
    constraint events_event_type_token check (event_type ~ '^[A-Za-z0-9_-]{1,128}$'),
    constraint events_stream_id_length check (length(stream_id) between 1 and 256)
);

-- Global commit order (relay, replay, operator audit).
create index events_commit_order on events (transaction_id, global_position);
-- One tenant's commit order (tenant audit log, per-tenant readers).
create index events_tenant_commit_order on events (tenant_id, transaction_id, global_position);

-- Append-only, whoever asks: privileges already forbid UPDATE and DELETE to the service roles;
-- this also stops the owner.
create function events_are_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'events are append-only (% refused)', tg_op using errcode = 'P0001';
end
$$;
create trigger events_no_update_delete before update or delete on events
    for each row execute function events_are_append_only();
create trigger events_no_truncate before truncate on events
    for each statement execute function events_are_append_only();

alter table events enable row level security;
alter table events force row level security;

-- No tenant set (or set to '') means no rows; an insert for another tenant is rejected.
create policy tenant_isolation on events
    for all to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);

-- The operator reads every tenant's events and writes none.
create policy operator_reads_all on events
    for select to booking_operator
    using (true);

grant select, insert on events to booking_app;
grant select on events to booking_operator;

-- Where each relay has published up to. Not tenant data: one row per relay name.
create table relay_checkpoints (
    relay           text primary key,
    transaction_id  xid8        not null,
    global_position bigint      not null,
    updated_at      timestamptz not null default now()
);
grant select, insert, update on relay_checkpoints to booking_operator;

-- Appends one stream's events, checking the expected version, in one statement: called in
-- autocommit mode, a single-stream append is one round trip and one implicit transaction.
-- SECURITY INVOKER: it runs as the caller, under RLS; it sets the tenant transaction-locally
-- exactly as the services' tenant transactions do.
--   p_expected null: no expectation; writers of the same stream queue on a lock instead of
--   racing. Otherwise the stream must be at p_expected (0: must not exist).
-- Returns the inserted rows, or none when the expectation does not hold. Two writers passing
-- the check at once collide on the primary key (a unique violation for the caller to resolve).
create function append_to_stream(
    p_tenant_id       uuid,
    p_stream_type     text,
    p_stream_id       text,
    p_expected        integer,
    p_event_ids       uuid[],
    p_event_types     text[],
    p_schema_versions integer[],
    p_payloads        jsonb[],
    p_metadata        jsonb[]
) returns table (out_version integer, out_global_position bigint, out_transaction_id bigint)
language plpgsql security invoker as $$
declare
    head integer;
begin
    perform set_config('app.tenant_id', p_tenant_id::text, true);
    if p_expected is null then
        perform pg_advisory_xact_lock(
            hashtextextended(p_tenant_id::text || '/' || p_stream_type || '/' || p_stream_id, 0));
    end if;
    -- Not max(version): under RLS the cached generic plan aggregates every event of the
    -- stream. Walking the primary key backwards stops at the first entry.
    select e.version into head
      from events e
     where e.tenant_id = p_tenant_id and e.stream_type = p_stream_type and e.stream_id = p_stream_id
     order by e.version desc
     limit 1;
    head := coalesce(head, 0);
    if p_expected is not null and head <> p_expected then
        return;
    end if;
    if cardinality(p_event_ids) = 1 then
        -- Most commands produce one event per stream; unnest would cost as much again.
        return query
        insert into events as e (tenant_id, stream_type, stream_id, version,
                                 event_id, event_type, schema_version, payload, metadata)
        values (p_tenant_id, p_stream_type, p_stream_id, head + 1,
                p_event_ids[1], p_event_types[1], p_schema_versions[1], p_payloads[1], p_metadata[1])
        returning e.version, e.global_position, e.transaction_id::text::bigint;
    else
        return query
        insert into events as e (tenant_id, stream_type, stream_id, version,
                                 event_id, event_type, schema_version, payload, metadata)
        select p_tenant_id, p_stream_type, p_stream_id, head + n.ord::integer,
               n.event_id, n.event_type, n.schema_version, n.payload, n.metadata
          from unnest(p_event_ids, p_event_types, p_schema_versions, p_payloads, p_metadata)
               with ordinality as n(event_id, event_type, schema_version, payload, metadata, ord)
        returning e.version, e.global_position, e.transaction_id::text::bigint;
    end if;
end
$$;
revoke all on function append_to_stream from public;
grant execute on function append_to_stream to booking_app;
