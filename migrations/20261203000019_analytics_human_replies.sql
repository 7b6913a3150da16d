-- How long a customer handed to a person waits for that person: the time the conversation was
-- handed off (the customer asked for a person, or the bot gave up), and the time of the first
-- staff reply after it. A business taking a conversation over on its own initiative starts no
-- wait. Written by the analytics consumer; sessions applied before this migration have neither
-- until a rebuild (`analytics rebuild`) applies the stream again.
alter table analytics.sessions
    add column waiting_since     timestamptz,
    add column staff_replied_at  timestamptz;
