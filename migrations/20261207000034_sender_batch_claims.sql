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
-- One statement: the new claims are inserted (in key order, so two callers with overlapping
-- replies wait for each other rather than deadlock), the lapsed ones failed, and the others
-- read as they stood when it began. A reply another sender claimed after that moment is in
-- neither, and is left out: the caller takes it as busy.
--
-- Every reply is found by its primary key whatever the planner knows of the table: a fresh
-- `wa_outbound` has no statistics, and the plans then cached (a sequential scan joined by
-- hash) made each call cost in proportion to the table (measured: 0.05 ms per reply over the
-- first 3,000, 0.4 ms over the next 6,000, against a flat 0.02 with the lookups).
create function wa_claim_batch(
    p_tenant_ids    uuid[],
    p_reply_ids     text[],
    p_stale_after   double precision,
    p_lapsed_reason text
) returns table (tenant_id uuid, reply_id text, outcome text, sent_wamid text,
                 failure_code bigint, failure_reason text)
language plpgsql security invoker
set role = booking_sender
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
as $$
#variable_conflict use_column
begin
    if cardinality(p_tenant_ids) is distinct from cardinality(p_reply_ids) then
        raise exception 'wa_claim_batch: % tenants for % replies',
            cardinality(p_tenant_ids), cardinality(p_reply_ids);
    end if;
    perform set_config('app.tenant_ids',
                       (select jsonb_object_agg(t::text, true) from unnest(p_tenant_ids) t)::text,
                       true);
    return query
    with wanted as (
        select distinct w.t, w.r from unnest(p_tenant_ids, p_reply_ids) as w(t, r)
    ), taken as (
        insert into wa_outbound as o (tenant_id, reply_id, state)
        select t, r, 'sending' from wanted order by t, r
        on conflict on constraint wa_outbound_pkey do nothing
        returning o.tenant_id, o.reply_id
    ), lapsed as (
        update wa_outbound o
           set state = 'failed', error_code = 0, error = p_lapsed_reason, updated_at = now()
          from wanted
         where o.tenant_id = wanted.t and o.reply_id = wanted.r
           and o.state = 'sending'
           and o.updated_at < now() - make_interval(secs => p_stale_after)
        returning o.tenant_id, o.reply_id
    )
    select taken.tenant_id, taken.reply_id, 'fresh'::text, null::text, null::bigint, null::text
      from taken
    union all
    -- The rows as they stood when the statement began (not the ones it inserts).
    select o.tenant_id, o.reply_id,
           case when l.reply_id is not null then 'lapsed'
                when o.state = 'sending' then 'busy'
                else o.state end,
           case when l.reply_id is null then o.wamid end,
           case when l.reply_id is not null then 0::bigint else o.error_code end,
           case when l.reply_id is not null then p_lapsed_reason else o.error end
      from wa_outbound o
      join wanted on o.tenant_id = wanted.t and o.reply_id = wanted.r
      left join lapsed l on l.tenant_id = o.tenant_id and l.reply_id = o.reply_id;
    perform set_config('app.tenant_ids', '', true);
end
$$;

-- Records how claimed replies' sends ended: the i-th reply's state ('sent' with its wamid, or
-- 'failed' with Meta's code and reason). A row for each reply that had a claim; a reply with
-- none is left out. Found by primary key, as above.
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
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
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
