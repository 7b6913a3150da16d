-- Status-like columns take only the domain's labels (domain/src/labels.rs; the sender's
-- claim states in projector/src/sender.rs): a value nobody defined is refused, not stored as
-- something else. A test compares each constraint with the labels of the code.
--
-- A rebuild's shadow tables now live in the `rebuild` schema under the live tables' names,
-- so the projector runs the same (compile-checked) statements against both: the rebuild
-- sets `search_path` to `rebuild, public` in its own transactions. The swap drops a live
-- table and moves its shadow into `public` under the lock, as the rename did before.

update rm_bookings set channel = 'whatsapp' where channel = 'whats_app';

alter table rm_tenants
    add constraint rm_tenants_status_label check (status in ('active', 'suspended', 'closed')),
    add constraint rm_tenants_plan_label check (plan in ('starter', 'growth', 'pro'));
alter table rm_users
    add constraint rm_users_role_label check (role in ('owner', 'admin', 'staff', 'viewer'));
alter table rm_bookings
    add constraint rm_bookings_status_label
        check (status in ('requested', 'confirmed', 'cancelled', 'completed', 'no_show')),
    add constraint rm_bookings_channel_label check (channel in ('whatsapp', 'dashboard', 'api'));
alter table rm_conversations
    add constraint rm_conversations_last_direction_label check (last_direction in ('in', 'out'));
alter table rm_messages
    add constraint rm_messages_direction_label check (direction in ('in', 'out')),
    add constraint rm_messages_status_label
        check (status in ('pending', 'sent', 'delivered', 'read', 'failed'));
alter table user_credentials
    add constraint user_credentials_role_label check (role in ('owner', 'admin', 'staff', 'viewer'));
alter table api_keys
    add constraint api_keys_scopes_label check (scopes <@ array[
        'read_bookings', 'write_bookings', 'read_config', 'write_config', 'read_conversations',
        'reply_conversations', 'manage_users', 'manage_api_keys', 'manage_whats_app',
        'manage_billing', 'read_audit', 'read_usage']::text[]);
alter table wa_outbound
    add constraint wa_outbound_state_label check (state in ('sending', 'sent', 'failed'));

-- Rebuilds write here; only the functions below create, swap and drop its tables.
create schema rebuild;
grant usage on schema rebuild to booking_app, booking_operator;

create or replace function rm_create_shadows(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
begin
    if not exists (select 1 from rm_tables where projection = p) then
        raise exception 'unknown projection %', p using errcode = '22023';
    end if;
    for t in select table_name from rm_tables where projection = p loop
        execute format('drop table if exists rebuild.%I', t);
        execute format('create table rebuild.%I (like public.%I including all)', t, t);
        execute format('alter table rebuild.%I enable row level security', t);
        execute format('alter table rebuild.%I force row level security', t);
        execute format($p$create policy tenant_isolation on rebuild.%I for all to booking_app
            using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
            with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)$p$, t);
        execute format('grant select, insert, update, delete on rebuild.%I to booking_app', t);
    end loop;
end
$$;

create or replace function rm_swap(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
begin
    for t in select table_name from rm_tables where projection = p order by table_name loop
        execute format('drop table public.%I', t);
        execute format('alter table rebuild.%I set schema public', t);
    end loop;
end
$$;

create or replace function rm_drop_shadows(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
begin
    for t in select table_name from rm_tables where projection = p loop
        execute format('drop table if exists rebuild.%I', t);
    end loop;
end
$$;

-- One tenant's rows of a projection, deleted before its events are replayed in place. Runs
-- as the caller (the application role), so row-level security confines it to that tenant.
create function rm_clear_tenant(p text, tenant uuid) returns void
language plpgsql security invoker set search_path = public as $$
declare
    t text;
begin
    if not exists (select 1 from rm_tables where projection = p) then
        raise exception 'unknown projection %', p using errcode = '22023';
    end if;
    for t in select table_name from rm_tables where projection = p loop
        execute format('delete from public.%I where tenant_id = $1', t) using tenant;
    end loop;
end
$$;
grant execute on function rm_clear_tenant(text, uuid) to booking_app;
