-- Reminders before appointments. rm_bookings keeps the reminders still to send and when the
-- next one is due, which the conversation clock finds across tenants (as the operator role),
-- and when the customer said they will come (a reminder's Confirm).
alter table rm_bookings
    add column reminders_due timestamptz[] not null default '{}',
    add column next_reminder_at timestamptz,
    add column attendance_confirmed_at timestamptz;
create index rm_bookings_reminders_due on rm_bookings (next_reminder_at)
    where next_reminder_at is not null;

create policy operator_reads on rm_bookings for select to booking_operator using (true);
grant select on rm_bookings to booking_operator;
