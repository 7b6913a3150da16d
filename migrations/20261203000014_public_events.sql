-- The public events feed: each tenant's public events (domain::integration), numbered 1, 2, ...
-- in the log's commit order. The server-sent-events stream (`GET /v1/events/stream`) reads it;
-- `Last-Event-ID` is a number of this sequence. A projection ("integrations"): a rebuild
-- replays the log in the same order and numbers every event the same.
create table rm_public_events (
    tenant_id  uuid        not null,
    seq        bigint      not null,
    event_id   uuid        not null,
    topic      text        not null,
    body       jsonb       not null,
    created_at timestamptz not null,
    primary key (tenant_id, seq)
);
create unique index rm_public_events_by_event on rm_public_events (tenant_id, event_id);

-- The last number given, per tenant.
create table rm_public_event_heads (
    tenant_id uuid   primary key,
    last_seq  bigint not null
);

create table rm_integrations_applied (
    tenant_id   uuid    not null,
    stream_type text    not null,
    stream_id   text    not null,
    version     integer not null,
    primary key (tenant_id, stream_type, stream_id)
);

insert into rm_tables values
    ('integrations', 'rm_integrations_applied'),
    ('integrations', 'rm_public_events'),
    ('integrations', 'rm_public_event_heads');

do $$
declare
    t text;
begin
    foreach t in array array['rm_integrations_applied', 'rm_public_events', 'rm_public_event_heads'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format($p$create policy tenant_isolation on %I for all to booking_app
            using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
            with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)$p$, t);
        execute format('grant select, insert, update, delete on %I to booking_app', t);
    end loop;
end
$$;

-- API keys may carry the scope that reads the feed.
alter table api_keys drop constraint api_keys_scopes_label;
alter table api_keys
    add constraint api_keys_scopes_label check (scopes <@ array[
        'read_bookings', 'write_bookings', 'read_config', 'write_config', 'read_conversations',
        'reply_conversations', 'manage_users', 'manage_api_keys', 'manage_whats_app',
        'manage_billing', 'read_audit', 'read_usage', 'read_events']::text[]);
