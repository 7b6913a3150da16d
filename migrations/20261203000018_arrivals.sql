-- The front desk marks a customer as arrived (they are in the waiting room): the calendar and
-- the booking's page show it, beside the booking's status.
alter table rm_bookings
    add column arrived_at timestamptz;
