-- The projector records the stream versions it has applied for a whole batch (or a share of
-- one) with one statement per projection, not one per tenant. That statement writes rows of
-- the tenants listed in `app.tenant_ids`, which the projector sets, for its transaction only, to
-- the tenants whose events it applies there. Only the projector's bookkeeping tables
-- (`rm_<projection>_applied`: a stream's id and the version applied, no customer data, read by
-- no query) accept it; every other table still checks each row against `app.tenant_id` alone.
-- The policies are permissive, so a row passes either one. `rm_create_shadows` copies the
-- policies of the live tables, so a rebuild's shadows have it too.
do $$
declare
    t text;
begin
    for t in select table_name from rm_tables where table_name like 'rm\_%\_applied' loop
        execute format($p$create policy batch_tenants on %I for all to booking_app
            using (tenant_id = any ((select nullif(current_setting('app.tenant_ids', true), '')::uuid[])::uuid[]))
            with check (tenant_id = any ((select nullif(current_setting('app.tenant_ids', true), '')::uuid[])::uuid[]))$p$, t);
    end loop;
end
$$;
