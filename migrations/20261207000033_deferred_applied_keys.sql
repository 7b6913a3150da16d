-- A rebuild's first pass reads each tenant's history once, in commit order, so it knows what it
-- has applied of every stream without asking the table, and writes each stream's last version
-- once, with a plain insert (the projector's `load_together`). The shadows'
-- `rm_<projection>_applied` therefore need their primary key only from the catch-up on, whose
-- statements find their rows by it: the key is added by `rm_index_shadows` after the load (one
-- sort of the loaded rows instead of an index kept up row by row), like the readers' indexes.
--
-- `rm_deferred_indexes` now also lists those constraints (by name: a key and its index share
-- it): `rm_create_shadows` leaves them out and `rm_index_shadows` adds them, from the live
-- tables' definitions, before the deferred indexes.
insert into rm_deferred_indexes (index_name)
select c.conname
  from rm_tables t
  join pg_constraint c on c.conrelid = format('public.%I', t.table_name)::regclass
 where t.table_name like 'rm\_%\_applied' and c.contype = 'p';

-- The statements that give table `t`'s shadow the live table's keys, unique and exclusion
-- constraints, under their live names: those deferred to after the load or the others, as
-- `rm_shadow_index_definitions` does for the indexes.
create function rm_shadow_constraint_definitions(t text, deferred boolean) returns setof text
language sql stable set search_path = public as $$
    select format('alter table rebuild.%I add constraint %I %s', t, c.conname,
                  pg_get_constraintdef(c.oid))
      from pg_constraint c
     where c.conrelid = format('public.%I', t)::regclass
       and c.contype in ('p', 'u', 'x')
       and (c.conname in (select index_name from rm_deferred_indexes)) = deferred
     order by c.conname
$$;

-- Migration 31's function, the deferred constraints left out.
create or replace function rm_create_shadows(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
    pol record;
    def text;
begin
    if not exists (select 1 from rm_tables where projection = p) then
        raise exception 'unknown projection %', p using errcode = '22023';
    end if;
    for t in select table_name from rm_tables where projection = p loop
        execute format('drop table if exists rebuild.%I', t);
        execute format('create table rebuild.%I (like public.%I including all excluding indexes)',
                       t, t);
        for def in select rm_shadow_constraint_definitions(t, false) loop
            execute def;
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

-- Migration 30's function, the deferred constraints added first.
create or replace function rm_index_shadows(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
    def text;
begin
    if not exists (select 1 from rm_tables where projection = p) then
        raise exception 'unknown projection %', p using errcode = '22023';
    end if;
    for t in select table_name from rm_tables where projection = p loop
        for def in select rm_shadow_constraint_definitions(t, true) loop
            execute def;
        end loop;
        for def in select rm_shadow_index_definitions(t, true) loop
            execute def;
        end loop;
    end loop;
end
$$;

revoke all on function rm_shadow_constraint_definitions(text, boolean) from public;
