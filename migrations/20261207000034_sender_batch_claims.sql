-- The WhatsApp sender claims and settles the replies of many tenants with one statement: the
-- replies its conversations reach at the same moment (each one still claimed just before its
-- send and settled just after, as before; see `projector::coalesce`). Migration 32 made each
-- claim and each settling one statement; with many conversations sending at once, they were
-- still one round trip and one commit each, about a fifth of Postgres's work in a drain.
--
-- `booking_sender` is the role the two functions below take (their `set role` clause) for the
-- span of their statement. It has no login; `booking_app` may take it. Its one policy, on
-- `wa_outbound` alone, admits the tenants listed in `app.tenant_ids`, which each function sets,
-- to the tenants of the replies it was given, and clears before it returns (the role ends with
-- the function by its clause): as migration 31's `booking_projector` does for read models.
-- `booking_app`'s policy on the table is untouched. Migration 32's single-reply functions stay:
-- `wa_release`, and the others for a sender of the previous release still running during a
-- rolling deploy.
do $$
begin
    if not exists (select from pg_roles where rolname = 'booking_sender') then
        create role booking_sender nologin nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
    end if;
end
$$;
grant booking_sender to booking_app;
-- A function may take a role (its `set role` clause) only if its creator may.
do $$ begin execute format('grant booking_sender to %I', current_user); end $$;
grant usage on schema public to booking_sender;
grant select, insert, update on wa_outbound to booking_sender;
create policy sender_batch on wa_outbound for all to booking_sender
    using ((select nullif(current_setting('app.tenant_ids', true), '')::jsonb) ? tenant_id::text)
    with check ((select nullif(current_setting('app.tenant_ids', true), '')::jsonb) ? tenant_id::text);

-- Claims replies for sending, the i-th reply being (p_tenant_ids[i], p_reply_ids[i]). One row
-- per distinct reply, with `outcome` as `wa_claim` answers it:
--   fresh   the claim is the caller's: send the reply;
--   sent    it was sent before, as `sent_wamid`;
--   failed  it failed before, with `failure_code` and `failure_reason`;
--   lapsed  a sender took it more than `p_stale_after` seconds ago and never settled it (it
--           died mid-call): it is now failed with `p_lapsed_reason`, and not sent again;
--   busy    another sender holds it right now.
-- Rows are inserted and locked in key order, so two callers with overlapping replies wait for
-- each other rather than deadlock.
create function wa_claim_batch(
    p_tenant_ids    uuid[],
    p_reply_ids     text[],
    p_stale_after   double precision,
    p_lapsed_reason text
) returns table (tenant_id uuid, reply_id text, outcome text, sent_wamid text,
                 failure_code bigint, failure_reason text)
language plpgsql security invoker
set role = booking_sender
as $$
#variable_conflict use_column
declare
    fresh_tenants uuid[];
    fresh_replies text[];
begin
    if cardinality(p_tenant_ids) is distinct from cardinality(p_reply_ids) then
        raise exception 'wa_claim_batch: % tenants for % replies',
            cardinality(p_tenant_ids), cardinality(p_reply_ids);
    end if;
    perform set_config('app.tenant_ids',
                       (select jsonb_object_agg(t::text, true) from unnest(p_tenant_ids) t)::text,
                       true);
    with wanted as (
        select distinct t, r from unnest(p_tenant_ids, p_reply_ids) as w(t, r) order by t, r
    ), taken as (
        insert into wa_outbound as o (tenant_id, reply_id, state)
        select t, r, 'sending' from wanted order by t, r
        on conflict on constraint wa_outbound_pkey do nothing
        returning o.tenant_id, o.reply_id
    )
    select coalesce(array_agg(taken.tenant_id), '{}'), coalesce(array_agg(taken.reply_id), '{}')
      into fresh_tenants, fresh_replies
      from taken;
    return query
    select f.t, f.r, 'fresh'::text, null::text, null::bigint, null::text
      from unnest(fresh_tenants, fresh_replies) as f(t, r);
    -- Taken before: wait for whoever holds them, then read how they stand (this statement
    -- sees what committed since the insert), lapsing the ones a dead sender left.
    return query
    with held as (
        select o.*
          from wa_outbound o
          join (select distinct t, r from unnest(p_tenant_ids, p_reply_ids) as w(t, r)) w
            on o.tenant_id = w.t and o.reply_id = w.r
         where (o.tenant_id, o.reply_id) not in
               (select f.t, f.r from unnest(fresh_tenants, fresh_replies) as f(t, r))
         order by o.tenant_id, o.reply_id
           for update of o
    ), lapsed as (
        update wa_outbound o
           set state = 'failed', error_code = 0, error = p_lapsed_reason, updated_at = now()
          from held
         where o.tenant_id = held.tenant_id and o.reply_id = held.reply_id
           and held.state = 'sending'
           and held.updated_at < now() - make_interval(secs => p_stale_after)
        returning o.tenant_id, o.reply_id
    )
    select held.tenant_id, held.reply_id,
           case when lapsed.reply_id is not null then 'lapsed'
                when held.state = 'sending' then 'busy'
                else held.state end,
           case when lapsed.reply_id is null then held.wamid end,
           case when lapsed.reply_id is not null then 0::bigint else held.error_code end,
           case when lapsed.reply_id is not null then p_lapsed_reason else held.error end
      from held
      left join lapsed on lapsed.tenant_id = held.tenant_id and lapsed.reply_id = held.reply_id;
    perform set_config('app.tenant_ids', '', true);
end
$$;

-- Records how claimed replies' sends ended: the i-th reply's state ('sent' with its wamid, or
-- 'failed' with Meta's code and reason). A row for each reply that had a claim; a reply with
-- none is left out.
create function wa_settle_batch(
    p_tenant_ids  uuid[],
    p_reply_ids   text[],
    p_states      text[],
    p_wamids      text[],
    p_error_codes bigint[],
    p_errors      text[]
) returns table (tenant_id uuid, reply_id text)
language plpgsql security invoker
set role = booking_sender
as $$
#variable_conflict use_column
begin
    if cardinality(p_tenant_ids) is distinct from cardinality(p_reply_ids)
       or cardinality(p_tenant_ids) is distinct from cardinality(p_states)
       or cardinality(p_tenant_ids) is distinct from cardinality(p_wamids)
       or cardinality(p_tenant_ids) is distinct from cardinality(p_error_codes)
       or cardinality(p_tenant_ids) is distinct from cardinality(p_errors) then
        raise exception 'wa_settle_batch: arrays of different lengths';
    end if;
    perform set_config('app.tenant_ids',
                       (select jsonb_object_agg(t::text, true) from unnest(p_tenant_ids) t)::text,
                       true);
    return query
    update wa_outbound o
       set state = s.state, wamid = s.wamid, error_code = s.code, error = s.error,
           attempts = o.attempts + 1, updated_at = now()
      from (select distinct on (t, r) t, r, state, wamid, code, error
              from unnest(p_tenant_ids, p_reply_ids, p_states, p_wamids, p_error_codes, p_errors)
                   as s(t, r, state, wamid, code, error)
             order by t, r) s
     where o.tenant_id = s.t and o.reply_id = s.r
    returning o.tenant_id, o.reply_id;
    perform set_config('app.tenant_ids', '', true);
end
$$;

revoke all on function wa_claim_batch, wa_settle_batch from public;
grant execute on function wa_claim_batch, wa_settle_batch to booking_app;
