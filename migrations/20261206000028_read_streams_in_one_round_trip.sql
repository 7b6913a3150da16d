-- Reads several streams' events, each from its own version on, in one statement: a conversation
-- turn reads the conversation and its business's tenant, configuration and billing this way,
-- each after the version the command API keeps it folded at. Called in autocommit mode it is one
-- round trip and one implicit transaction (it was four: begin, set the tenant, select, roll
-- back). SECURITY INVOKER, like `read_stream`: it runs as the caller, under RLS, and sets the
-- tenant transaction-locally.
create function read_streams_from(
    p_tenant_id     uuid,
    p_stream_types  text[],
    p_stream_ids    text[],
    p_from_versions integer[]
) returns table (
    global_position bigint,
    tx_id           bigint,
    tenant_id       uuid,
    stream_type     text,
    stream_id       text,
    version         integer,
    event_id        uuid,
    event_type      text,
    schema_version  integer,
    payload         jsonb,
    metadata        jsonb,
    recorded_at     timestamptz
)
language plpgsql security invoker as $$
begin
    perform set_config('app.tenant_id', p_tenant_id::text, true);
    return query
    select e.global_position, e.transaction_id::text::bigint, e.tenant_id, e.stream_type,
           e.stream_id, e.version, e.event_id, e.event_type, e.schema_version, e.payload,
           e.metadata, e.recorded_at
      from unnest(p_stream_types, p_stream_ids, p_from_versions) as s(stream_type, stream_id, from_version)
      join events e
        on e.tenant_id = p_tenant_id and e.stream_type = s.stream_type
       and e.stream_id = s.stream_id and e.version >= s.from_version
     order by e.stream_type, e.stream_id, e.version;
end
$$;
revoke all on function read_streams_from from public;
grant execute on function read_streams_from to booking_app;

-- The events of every stream of one type whose id lies in a range (a resource's agenda days
-- over the dates a conversation may offer), in one statement likewise.
create function read_streams_between(
    p_tenant_id   uuid,
    p_stream_type text,
    p_from_id     text,
    p_to_id       text
) returns table (
    global_position bigint,
    tx_id           bigint,
    tenant_id       uuid,
    stream_type     text,
    stream_id       text,
    version         integer,
    event_id        uuid,
    event_type      text,
    schema_version  integer,
    payload         jsonb,
    metadata        jsonb,
    recorded_at     timestamptz
)
language plpgsql security invoker as $$
begin
    perform set_config('app.tenant_id', p_tenant_id::text, true);
    return query
    select e.global_position, e.transaction_id::text::bigint, e.tenant_id, e.stream_type,
           e.stream_id, e.version, e.event_id, e.event_type, e.schema_version, e.payload,
           e.metadata, e.recorded_at
      from events e
     where e.tenant_id = p_tenant_id and e.stream_type = p_stream_type
       and e.stream_id between p_from_id and p_to_id
     order by e.stream_id, e.version;
end
$$;
revoke all on function read_streams_between from public;
grant execute on function read_streams_between to booking_app;
