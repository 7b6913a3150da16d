-- The hours a business offered, as each configuration set them: utilisation divides the booked
-- minutes of a day by the minutes on offer under the hours in force that day, not today's.
-- Written by the analytics consumer from each BotConfigured event (its settings, as published).
create table analytics.hours (
    tenant_id uuid        not null,
    -- When the configuration was recorded; it applies from that local day on.
    since     timestamptz not null,
    settings  jsonb       not null,
    primary key (tenant_id, since)
);
alter table analytics.hours enable row level security;
alter table analytics.hours force row level security;
create policy tenant_isolation on analytics.hours for all to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
create policy operator_reads_all on analytics.hours for select to booking_operator using (true);
grant select, insert, update, delete on analytics.hours to booking_app;
grant select on analytics.hours to booking_operator;

-- A rebuild forgets them too.
create or replace function analytics.reset(p_consumer text) returns void
language plpgsql security definer set search_path = analytics, public as $$
begin
    perform 1 from analytics.checkpoints where consumer = p_consumer for update;
    delete from analytics.bookings;
    delete from analytics.sessions;
    delete from analytics.messages_daily;
    delete from analytics.hours;
    delete from analytics.tenants;
    delete from analytics.dead_letters where consumer = p_consumer;
    update analytics.checkpoints
       set stream_sequence = 0, transaction_id = '0'::xid8, global_position = 0, applied = 0,
           updated_at = now()
     where consumer = p_consumer;
end
$$;
