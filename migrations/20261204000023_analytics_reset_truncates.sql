-- analytics.reset ran its deletes as the owner (SECURITY DEFINER), to whom row-level security,
-- forced on the facts, shows no rows: the facts were never deleted, and a rebuild only
-- overwrote the rows it derived again (a fact of nothing in the log stayed). TRUNCATE is not
-- subject to row-level security; the owner may truncate its tables. It waits for a batch in
-- flight (the checkpoint's row lock first, then the tables' locks).
create or replace function analytics.reset(p_consumer text) returns void
language plpgsql security definer set search_path = analytics, public as $$
begin
    perform 1 from analytics.checkpoints where consumer = p_consumer for update;
    truncate analytics.bookings, analytics.sessions, analytics.messages_daily, analytics.hours,
             analytics.tenants;
    delete from analytics.dead_letters where consumer = p_consumer;
    update analytics.checkpoints
       set stream_sequence = 0, transaction_id = '0'::xid8, global_position = 0, applied = 0,
           updated_at = now()
     where consumer = p_consumer;
end
$$;
