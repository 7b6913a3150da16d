-- Reads one stream's events from a version on, in one statement: called in autocommit mode,
-- loading an aggregate is one round trip and one implicit transaction (it was four: begin,
-- set the tenant, select, roll back). SECURITY INVOKER: it runs as the caller, under RLS, and
-- sets the tenant transaction-locally as `append_to_stream` does, so the setting ends with the
-- statement (or with the caller's own transaction, which is the same tenant's).
create function read_stream(
    p_tenant_id    uuid,
    p_stream_type  text,
    p_stream_id    text,
    p_from_version integer
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
       and e.stream_id = p_stream_id and e.version >= p_from_version
     order by e.version;
end
$$;
revoke all on function read_stream from public;
grant execute on function read_stream to booking_app;
