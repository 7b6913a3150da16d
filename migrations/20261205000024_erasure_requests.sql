-- A customer may ask on WhatsApp to have their data deleted (`ErasureRequested`): the inbox
-- shows the request until the customer is erased.
alter table rm_conversations add column erasure_requested_at timestamptz;
