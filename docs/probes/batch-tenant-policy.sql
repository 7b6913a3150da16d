-- Probe for issue 15's next step (docs/scaling.md, "Where the drain's time goes now"): what an
-- RLS policy that checks each row's tenant against a batch's tenants costs, beside the per-
-- tenant policy of DESIGN.md and beside no RLS at all. 100,000 rows over 1,000 tenants.
-- Run it against a local server as a superuser (it makes and keeps its own database, rlsprobe):
--     psql -h 127.0.0.1 -U postgres -d postgres -f docs/probes/batch-tenant-policy.sql
-- The subquery around current_setting makes it an InitPlan: evaluated once per statement, not
-- once per row; the cast keeps `= any` an array comparison rather than a subquery's.
drop database if exists rlsprobe; create database rlsprobe;
\c rlsprobe
do $$ begin if not exists (select from pg_roles where rolname='probe_app') then create role probe_app; end if; end $$;
create table one (tenant_id uuid, k int, v text, primary key (tenant_id, k));
create table many (tenant_id uuid, k int, v text, primary key (tenant_id, k));
create table none_ (tenant_id uuid, k int, v text, primary key (tenant_id, k));
alter table one enable row level security; alter table one force row level security;
alter table many enable row level security; alter table many force row level security;
create policy p on one for all to probe_app using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid) with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
create policy p on many for all to probe_app using (tenant_id = any((select nullif(current_setting('app.tenant_ids', true), '')::uuid[])::uuid[])) with check (tenant_id = any((select nullif(current_setting('app.tenant_ids', true), '')::uuid[])::uuid[]));
grant all on one, many, none_ to probe_app;
set role probe_app;
\timing on
\echo per tenant: 1000 tenants x (set_config + insert of 100 rows)
begin;
do $$ declare t int; begin for t in 1..1000 loop
  perform set_config('app.tenant_id', ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0')), true);
  insert into one select ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid, g, 'x' from generate_series(1,100) g;
end loop; end $$;
commit;
\echo batch: app.tenant_ids of 1000 tenants, one insert of 100000 rows
begin;
select set_config('app.tenant_ids', (select array_agg(('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid)::text from generate_series(1,1000) t), true) is not null as set;
insert into many select ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid, g, 'x' from generate_series(1,1000) t, generate_series(1,100) g;
commit;
\echo no RLS: one insert of 100000 rows
insert into none_ select ('00000000-0000-0000-0000-' || lpad(t::text, 12, '0'))::uuid, g, 'x' from generate_series(1,1000) t, generate_series(1,100) g;
\echo refused: a row of a tenant outside the batch
begin;
select set_config('app.tenant_ids', '{00000000-0000-0000-0000-000000000001}', true) is not null as set;
insert into many values ('00000000-0000-0000-0000-000000000002', 1, 'x');
rollback;
