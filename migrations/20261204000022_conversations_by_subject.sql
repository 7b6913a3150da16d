-- A customer's conversation stream is named by their subject id (`conversation/<subject>`),
-- not by their phone: stream ids stay in the log forever, and an erased customer must leave
-- nothing there that names them. The subject is made with the customer's key
-- (`customer_keys`, 20261204000021) on first contact.

-- The subject of a phone the business has met, without making one.
create function customer_subject(
    p_tenant_id uuid,
    p_phone     text
) returns uuid
language plpgsql security invoker as $$
declare
    v_subject uuid;
begin
    perform set_config('app.tenant_id', p_tenant_id::text, true);
    select k.subject_id into v_subject from customer_keys k
     where k.tenant_id = p_tenant_id and k.phone = p_phone;
    return v_subject;
end
$$;
revoke all on function customer_subject from public;
grant execute on function customer_subject to booking_app;

-- The inbox row of a conversation is found by its stream's subject for the events that do
-- not carry the phone (the bot's state, a handoff, a deferral).
alter table rm_conversations add column subject uuid;
create unique index rm_conversations_subject on rm_conversations (tenant_id, subject);

-- Analytics' sessions are a customer's by their subject (the conversation's id), as the
-- events stream names them: no phone in analytics' sessions.
alter table analytics.sessions rename column phone to subject;

-- API keys may carry the scope that erases customers.
alter table api_keys drop constraint api_keys_scopes_label;
alter table api_keys
    add constraint api_keys_scopes_label check (scopes <@ array[
        'read_bookings', 'write_bookings', 'read_config', 'write_config', 'read_conversations',
        'reply_conversations', 'manage_users', 'manage_api_keys', 'manage_whats_app',
        'manage_billing', 'read_audit', 'read_usage', 'read_events', 'manage_webhooks',
        'erase_customers']::text[]);
