-- The WhatsApp sender's claims on replies, one statement each. Called in autocommit mode, a
-- claim, its settling and its release are each one round trip and one implicit transaction
-- (each was four: begin, set the tenant, the statement, commit). SECURITY INVOKER: they run
-- as the caller, under wa_outbound's row-level security, and set the tenant
-- transaction-locally as `read_stream` does, so the setting ends with the statement.

-- A reply held back while its tenant's circuit breaker is open gives its claim back (deletes
-- it). booking_app was never granted that: the release failed, the claim stayed "sending"
-- until it lapsed, and the reply, never sent, was recorded as failed with an unknown outcome.
grant delete on wa_outbound to booking_app;

-- Claims a reply for sending. `outcome` is:
--   fresh   the claim is the caller's: send the reply;
--   sent    it was sent before, as `sent_wamid`;
--   failed  it failed before, with `failure_code` and `failure_reason`;
--   lapsed  a sender took it more than `p_stale_after` seconds ago and never settled it (it
--           died mid-call): it is now failed with `p_lapsed_reason`, and not sent again, since
--           Meta has no idempotency key and it may have gone;
--   busy    another sender holds it right now.
create function wa_claim(
    p_tenant_id     uuid,
    p_reply_id      text,
    p_stale_after   double precision,
    p_lapsed_reason text
) returns table (outcome text, sent_wamid text, failure_code bigint, failure_reason text)
language plpgsql security invoker as $$
declare
    held wa_outbound%rowtype;
begin
    perform set_config('app.tenant_id', p_tenant_id::text, true);
    insert into wa_outbound (tenant_id, reply_id, state)
    values (p_tenant_id, p_reply_id, 'sending')
    on conflict on constraint wa_outbound_pkey do nothing;
    if found then
        return query select 'fresh'::text, null::text, null::bigint, null::text;
        return;
    end if;
    -- Taken before: wait for whoever holds it, then read how it stands.
    select * into strict held
      from wa_outbound o
     where o.tenant_id = p_tenant_id and o.reply_id = p_reply_id
       for update;
    if held.state = 'sending'
       and held.updated_at < now() - make_interval(secs => p_stale_after) then
        update wa_outbound o
           set state = 'failed', error_code = 0, error = p_lapsed_reason, updated_at = now()
         where o.tenant_id = p_tenant_id and o.reply_id = p_reply_id;
        return query select 'lapsed'::text, null::text, 0::bigint, p_lapsed_reason;
        return;
    end if;
    return query
    select case held.state when 'sending' then 'busy' else held.state end,
           held.wamid, held.error_code, held.error;
end
$$;

-- Records how a claimed reply's send ended (state 'sent' with its wamid, or 'failed' with
-- Meta's code and reason). False when there was no such claim.
create function wa_settle(
    p_tenant_id  uuid,
    p_reply_id   text,
    p_state      text,
    p_wamid      text,
    p_error_code bigint,
    p_error      text
) returns boolean
language plpgsql security invoker as $$
begin
    perform set_config('app.tenant_id', p_tenant_id::text, true);
    update wa_outbound o
       set state = p_state, wamid = p_wamid, error_code = p_error_code, error = p_error,
           attempts = o.attempts + 1, updated_at = now()
     where o.tenant_id = p_tenant_id and o.reply_id = p_reply_id;
    return found;
end
$$;

-- Gives a claim back unsent (its tenant's breaker opened before the send): the next delivery
-- of the reply claims it afresh. A settled claim is left alone. False when nothing was held.
create function wa_release(p_tenant_id uuid, p_reply_id text) returns boolean
language plpgsql security invoker as $$
begin
    perform set_config('app.tenant_id', p_tenant_id::text, true);
    delete from wa_outbound o
     where o.tenant_id = p_tenant_id and o.reply_id = p_reply_id and o.state = 'sending';
    return found;
end
$$;

revoke all on function wa_claim, wa_settle, wa_release from public;
grant execute on function wa_claim, wa_settle, wa_release to booking_app;
