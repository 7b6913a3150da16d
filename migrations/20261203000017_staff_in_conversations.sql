-- A person of the business can take a conversation over, reply, and hand it back to the bot.
-- The inbox shows who has it and when WhatsApp's 24-hour window to reply freely closes (24
-- hours after the customer's last message); each message shows who of the business sent it
-- (null: the bot, or the customer).
alter table rm_conversations
    add column taken_over_by   text,
    add column last_inbound_at timestamptz;

alter table rm_messages
    add column sent_by text;

update rm_conversations c
   set last_inbound_at = (select max(m.at) from rm_messages m
                           where m.tenant_id = c.tenant_id
                             and m.customer_phone = c.customer_phone
                             and m.direction = 'in');

-- Waiting for a person first: the inbox's own order.
create index rm_conversations_waiting on rm_conversations (tenant_id, last_message_at desc, customer_phone)
    where handed_off;
