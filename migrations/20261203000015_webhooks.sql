-- Signed webhooks: a business's endpoints for its public events (rm_public_events).
--
-- webhook_secrets        the vault's: each endpoint's signing secret, sealed (never an event)
-- rm_webhook_endpoints   projection "integrations": the endpoints as their events left them
-- rm_webhook_redeliveries  projection "integrations": an event asked to be delivered again
-- webhook_cursors        the deliverer's: per endpoint, the next public event to deliver and
--                        how its attempts go (not a read model: a rebuild keeps it)
-- webhook_deliveries     the deliverer's: the delivery log, one row per endpoint and event

create table webhook_secrets (
    tenant_id   uuid        not null,
    endpoint_id uuid        not null,
    secret_enc  bytea       not null,
    created_at  timestamptz not null default now(),
    primary key (tenant_id, endpoint_id)
);

create table rm_webhook_endpoints (
    tenant_id       uuid        not null,
    endpoint_id     uuid        not null,
    url             text        not null,
    -- Topic names; empty: every topic.
    topics          text[]      not null,
    description     text        not null,
    status          text        not null constraint rm_webhook_endpoints_status check (status in ('enabled', 'disabled')),
    -- Why it is disabled: {"kind": "manual"} or {"kind": "failing", ...}.
    disabled_reason jsonb,
    -- The first public event it receives: the one after the last numbered when it was registered.
    start_seq       bigint      not null,
    created_at      timestamptz not null,
    updated_at      timestamptz not null,
    primary key (tenant_id, endpoint_id)
);

create table rm_webhook_redeliveries (
    tenant_id    uuid        not null,
    endpoint_id  uuid        not null,
    seq          bigint      not null,
    requested_at timestamptz not null,
    primary key (tenant_id, endpoint_id, seq)
);

insert into rm_tables values
    ('integrations', 'rm_webhook_endpoints'),
    ('integrations', 'rm_webhook_redeliveries');

create table webhook_cursors (
    tenant_id       uuid        not null,
    endpoint_id     uuid        not null,
    next_seq        bigint      not null,
    -- Failed attempts in a row at next_seq, since when, and when to try again.
    attempts        integer     not null default 0,
    failing_since   timestamptz,
    next_attempt_at timestamptz not null default '-infinity',
    -- An instance delivering to this endpoint holds it until then.
    lease_until     timestamptz not null default '-infinity',
    primary key (tenant_id, endpoint_id)
);

create table webhook_deliveries (
    tenant_id       uuid        not null,
    endpoint_id     uuid        not null,
    seq             bigint      not null,
    event_id        uuid        not null,
    topic           text        not null,
    status          text        not null constraint webhook_deliveries_status check (status in ('delivered', 'retrying', 'failed')),
    attempts        integer     not null,
    last_attempt_at timestamptz not null,
    -- The receiver's HTTP status, or why there was none (timeout, refused, ...).
    response_status integer,
    error           text,
    duration_ms     integer     not null,
    delivered_at    timestamptz,
    next_attempt_at timestamptz,
    primary key (tenant_id, endpoint_id, seq)
);
-- The delivery log, newest first.
create index webhook_deliveries_recent on webhook_deliveries (tenant_id, endpoint_id, last_attempt_at desc, seq desc);

do $$
declare
    t text;
begin
    foreach t in array array['webhook_secrets', 'rm_webhook_endpoints', 'rm_webhook_redeliveries',
                             'webhook_cursors', 'webhook_deliveries'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format($p$create policy tenant_isolation on %I for all to booking_app
            using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
            with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)$p$, t);
        execute format('grant select, insert, update, delete on %I to booking_app', t);
    end loop;
    -- The deliverer finds what is due across tenants as the operator role (reads only).
    foreach t in array array['rm_webhook_endpoints', 'rm_webhook_redeliveries', 'webhook_cursors',
                             'webhook_deliveries', 'rm_public_event_heads'] loop
        execute format('create policy operator_reads on %I for select to booking_operator using (true)', t);
        execute format('grant select on %I to booking_operator', t);
    end loop;
end
$$;

-- API keys may carry the scope that manages webhooks.
alter table api_keys drop constraint api_keys_scopes_label;
alter table api_keys
    add constraint api_keys_scopes_label check (scopes <@ array[
        'read_bookings', 'write_bookings', 'read_config', 'write_config', 'read_conversations',
        'reply_conversations', 'manage_users', 'manage_api_keys', 'manage_whats_app',
        'manage_billing', 'read_audit', 'read_usage', 'read_events', 'manage_webhooks']::text[]);
