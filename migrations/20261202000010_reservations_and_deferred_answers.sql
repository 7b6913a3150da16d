-- A time a customer chose is kept for them while they finish booking (a reservation), and a
-- customer writing faster than the bot may answer is answered later. Both end by time: the
-- conversation clock (a reactor of the projector) finds, across tenants, the reservations
-- that ran out and the answers that are due, and gives each its command.

-- rm_agenda: a reservation is a row whose hold ends at held_until (a booking's has none).
alter table rm_agenda add column held_until timestamptz;
create index rm_agenda_reservations on rm_agenda (held_until) where held_until is not null;

-- rm_conversations: when the message waiting for an answer is due.
alter table rm_conversations add column answer_due_at timestamptz;
create index rm_conversations_answers_due on rm_conversations (answer_due_at)
    where answer_due_at is not null;

do $$
declare
    t text;
begin
    foreach t in array array['rm_agenda', 'rm_conversations'] loop
        execute format('create policy operator_reads on %I for select to booking_operator using (true)', t);
        execute format('grant select on %I to booking_operator', t);
    end loop;
end
$$;
