-- A rebuild's shadow tables take the live tables' indexes under the live tables' own names, and
-- the indexes that only readers use are built once the shadows are loaded.
--
-- Until now a shadow was created `like ... including all`, which names every index it copies by
-- Postgres's default rule (`rm_bookings_tenant_id_starts_at_booking_id_idx`), so after a
-- rebuild the live tables' indexes no longer had the names the migrations gave them, and a later
-- migration naming one would not have found it. Now the primary key and the unique and exclusion
-- constraints are added, and the other indexes created, from their live definitions.
--
-- The indexes listed in `rm_deferred_indexes` serve the query API, the dashboard and the clocks,
-- never a projection's own statements (which find their rows by primary key or by a unique
-- index). A rebuild builds them from the finished rows with `rm_index_shadows`, before the swap
-- and outside its lock, instead of keeping them up row by row while it loads. An index missing
-- from the list is built with the table, which is only slower.
create table rm_deferred_indexes (
    index_name text primary key
);
insert into rm_deferred_indexes (index_name) values
    ('rm_agenda_reservations'),
    ('rm_bookings_by_customer'),
    ('rm_bookings_by_start'),
    ('rm_bookings_reminders_due'),
    ('rm_conversations_answers_due'),
    ('rm_conversations_inbox'),
    ('rm_conversations_waiting');

-- The definitions of the live table `t`'s indexes that do not back a constraint, written for
-- its shadow: `deferred` chooses those built after the load, or the others.
create function rm_shadow_index_definitions(t text, deferred boolean) returns setof text
language sql stable set search_path = public as $$
    select replace(pg_get_indexdef(x.indexrelid),
                   format(' ON public.%I ', t), format(' ON rebuild.%I ', t))
      from pg_index x
      join pg_class i on i.oid = x.indexrelid
     where x.indrelid = format('public.%I', t)::regclass
       and not exists (select from pg_constraint c where c.conindid = x.indexrelid
                                                     and c.conrelid = x.indrelid)
       and (i.relname in (select index_name from rm_deferred_indexes)) = deferred
     order by i.relname
$$;

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
        execute format('grant select, insert, update, delete on rebuild.%I to booking_app', t);
        if has_table_privilege('booking_operator', format('public.%I', t), 'select') then
            execute format('grant select on rebuild.%I to booking_operator', t);
        end if;
    end loop;
end
$$;

-- Builds the shadows' deferred indexes (after the load, before the swap).
create function rm_index_shadows(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
    def text;
begin
    if not exists (select 1 from rm_tables where projection = p) then
        raise exception 'unknown projection %', p using errcode = '22023';
    end if;
    for t in select table_name from rm_tables where projection = p loop
        for def in select rm_shadow_index_definitions(t, true) loop
            execute def;
        end loop;
    end loop;
end
$$;

revoke all on function rm_shadow_index_definitions(text, boolean), rm_index_shadows(text) from public;
grant execute on function rm_index_shadows(text) to booking_operator;
