-- The projector applies a batch of many tenants' events with one statement per table, not one
-- (or several) per tenant. Its statements bind each row's tenant, but the read models' policy
-- admits only the one tenant of `app.tenant_id`, so until now the projector switched the
-- setting before each tenant's rows: a round trip per tenant per batch, and a statement per
-- tenant per table.
--
-- `booking_projector` is the role the projector takes (`set local role`) for the span of a
-- batch, inside its transaction. It has no login; `booking_app` may take it. Its own policy on
-- every table it writes or reads admits the tenants listed in `app.tenant_ids`, which the
-- projector sets, for the same transaction, to the batch's tenants; `booking_app`'s policies (and so the
-- query API's plans, which lean on `tenant_id = app.tenant_id`) are untouched, and apply to it
-- no more than its own apply to `booking_app`. With no list set it sees and writes nothing.
--
-- It reads the log and the customers' keys (a gap filled from the store, a conversation's
-- customer revealed) and writes nothing but read models. Migration 29's `batch_tenants`
-- policies, which let `booking_app` record a batch's stream versions, go: the projector's role
-- records them now, and `booking_app` is back to one tenant everywhere.
do $$
begin
    if not exists (select from pg_roles where rolname = 'booking_projector') then
        create role booking_projector nologin nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
    end if;
end
$$;
grant booking_projector to booking_app;
grant usage on schema public, rebuild to booking_projector;

-- The list is a JSON object keyed by the tenants' ids (`{"<uuid>": true, ...}`), read once per
-- statement: a row's tenant is found among the keys by binary search, and the test is a filter
-- the planner cannot turn into an index condition. (`tenant_id = any(<uuid[]>)` can be one: the
-- planner then read every row of the batch's tenants through a bitmap and hashed them, where
-- the statements want one primary-key lookup per row; and as a filter it compares each row with
-- every tenant of the list.)
do $$
declare
    t text;
    batch constant text :=
        $q$(select nullif(current_setting('app.tenant_ids', true), '')::jsonb) ? tenant_id::text$q$;
begin
    for t in select table_name from rm_tables loop
        -- Migration 29's policy for `booking_app`, which the projector's role replaces.
        execute format('drop policy if exists batch_tenants on %I', t);
        execute format('grant select, insert, update, delete on %I to booking_projector', t);
        execute format('create policy projector_batch on %I for all to booking_projector using (%s) with check (%s)',
                       t, batch, batch);
    end loop;
    foreach t in array array['events', 'customer_keys', 'customer_erasures'] loop
        execute format('grant select on %I to booking_projector', t);
        execute format('create policy projector_batch on %I for select to booking_projector using (%s)',
                       t, batch);
    end loop;
end
$$;
grant execute on function customer_keys_of to booking_projector;

-- A rebuild's shadows are written by the projector's role too (migration 30's function, with
-- that grant added).
create or replace function rm_create_shadows(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
    pol record;
    con record;
    def text;
begin
    if not exists (select 1 from rm_tables where projection = p) then
        raise exception 'unknown projection %', p using errcode = '22023';
    end if;
    for t in select table_name from rm_tables where projection = p loop
        execute format('drop table if exists rebuild.%I', t);
        execute format('create table rebuild.%I (like public.%I including all excluding indexes)',
                       t, t);
        for con in select conname, pg_get_constraintdef(oid) as definition
                     from pg_constraint
                    where conrelid = format('public.%I', t)::regclass
                      and contype in ('p', 'u', 'x')
                    order by conname loop
            execute format('alter table rebuild.%I add constraint %I %s', t, con.conname,
                           con.definition);
        end loop;
        for def in select rm_shadow_index_definitions(t, false) loop
            execute def;
        end loop;
        execute format('alter table rebuild.%I enable row level security', t);
        execute format('alter table rebuild.%I force row level security', t);
        for pol in select * from pg_policies where schemaname = 'public' and tablename = t loop
            execute format('create policy %I on rebuild.%I as %s for %s to %s', pol.policyname, t,
                    pol.permissive, pol.cmd, array_to_string(pol.roles, ', '))
                || coalesce(' using (' || pol.qual || ')', '')
                || coalesce(' with check (' || pol.with_check || ')', '');
        end loop;
        execute format('grant select, insert, update, delete on rebuild.%I to booking_app, booking_projector', t);
        if has_table_privilege('booking_operator', format('public.%I', t), 'select') then
            execute format('grant select on rebuild.%I to booking_operator', t);
        end if;
    end loop;
end
$$;
