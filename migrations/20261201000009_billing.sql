-- Billing: the read models of a business's subscription and invoices, the routing and
-- claims billing and email need, and what the limits need of the log.

-- A plan's limits count a month's bookings from the log itself: a narrow index, as bookings
-- are a small share of events.
create index events_booking_requests on events (tenant_id, recorded_at)
    where event_type = 'AppointmentRequested';

-- billing: one row per tenant, and its invoices.
create table rm_billing (
    tenant_id             uuid        primary key,
    status                text        not null
        check (status in ('trialing', 'active', 'past_due', 'suspended', 'cancelled')),
    plan                  text        not null check (plan in ('starter', 'growth', 'pro')),
    cycle                 text        check (cycle in ('monthly', 'yearly')),
    trial_ends_at         timestamptz,
    customer_id           text,
    subscription_id       text,
    period_start          timestamptz,
    period_end            timestamptz,
    cancel_at_period_end  boolean     not null default false,
    grace_ends_at         timestamptz,
    checkout_url          text,
    updated_at            timestamptz not null
);

create table rm_billing_alerts (
    tenant_id  uuid        not null,
    month      text        not null, -- YYYY-MM
    metric     text        not null check (metric in ('bookings', 'messages')),
    threshold  smallint    not null,
    used       integer     not null,
    "limit"    integer     not null,
    at         timestamptz not null,
    primary key (tenant_id, month, metric)
);

create table rm_invoices (
    tenant_id    uuid        not null,
    invoice_id   text        not null,
    number       text,
    period_start timestamptz not null,
    period_end   timestamptz not null,
    amount_due   bigint      not null,
    amount_paid  bigint      not null,
    currency     text        not null,
    status       text        not null check (status in ('paid', 'failed', 'action_required')),
    hosted_url   text,
    updated_at   timestamptz not null,
    primary key (tenant_id, invoice_id)
);

do $$
declare
    t text;
begin
    create table rm_billing_applied (
        tenant_id   uuid    not null,
        stream_type text    not null,
        stream_id   text    not null,
        version     integer not null,
        primary key (tenant_id, stream_type, stream_id)
    );
    insert into rm_tables values
        ('billing', 'rm_billing'), ('billing', 'rm_billing_alerts'), ('billing', 'rm_invoices'),
        ('billing', 'rm_billing_applied');
    foreach t in array array['rm_billing', 'rm_billing_alerts', 'rm_invoices', 'rm_billing_applied'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format($p$create policy tenant_isolation on %I for all to booking_app
            using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
            with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)$p$, t);
        execute format('grant select, insert, update, delete on %I to booking_app', t);
    end loop;
end
$$;

-- The billing clock (a reactor of the projector) finds, across tenants, the trials and grace
-- periods that ran out and the months near a limit: the operator role reads those three
-- read models (and nothing it could write).
do $$
declare
    t text;
begin
    foreach t in array array['rm_billing', 'rm_billing_alerts', 'rm_usage'] loop
        execute format('create policy operator_reads on %I for select to booking_operator using (true)', t);
        execute format('grant select on %I to booking_operator', t);
    end loop;
end
$$;

-- A rebuild's shadows carry every policy and grant of the live table, so a swap keeps them.
create or replace function rm_create_shadows(p text) returns void
language plpgsql security definer set search_path = public as $$
declare
    t text;
    pol record;
begin
    if not exists (select 1 from rm_tables where projection = p) then
        raise exception 'unknown projection %', p using errcode = '22023';
    end if;
    for t in select table_name from rm_tables where projection = p loop
        execute format('drop table if exists rebuild.%I', t);
        execute format('create table rebuild.%I (like public.%I including all)', t, t);
        execute format('alter table rebuild.%I enable row level security', t);
        execute format('alter table rebuild.%I force row level security', t);
        for pol in select * from pg_policies where schemaname = 'public' and tablename = t loop
            execute format('create policy %I on rebuild.%I as %s for %s to %s', pol.policyname, t,
                    pol.permissive, pol.cmd, array_to_string(pol.roles, ', '))
                || coalesce(' using (' || pol.qual || ')', '')
                || coalesce(' with check (' || pol.with_check || ')', '');
        end loop;
        execute format('grant select, insert, update, delete on rebuild.%I to booking_app', t);
        if has_table_privilege('booking_operator', format('public.%I', t), 'select') then
            execute format('grant select on rebuild.%I to booking_operator', t);
        end if;
    end loop;
end
$$;

-- Which tenant a Stripe customer is: Stripe's webhooks name the customer, and arrive before
-- any tenant is known. No secret; not under RLS (like whatsapp_routes).
create table stripe_customers (
    customer_id  text primary key,
    tenant_id    uuid not null unique,
    created_at   timestamptz not null default now()
);
grant select, insert on stripe_customers to booking_app;
grant select on stripe_customers to booking_operator;

-- The notifier's claims: one row per causing event and recipient, written before the email
-- is sent, so that an email goes out at most once (a claim left by a crash is never sent
-- again). The outcome is an event on the tenant's notification stream.
create table email_claims (
    tenant_id   uuid        not null,
    event_id    uuid        not null,
    recipient   text        not null,
    template    text        not null,
    claimed_at  timestamptz not null default now(),
    primary key (tenant_id, event_id, recipient)
);
alter table email_claims enable row level security;
alter table email_claims force row level security;
create policy tenant_isolation on email_claims for all to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
grant select, insert, delete on email_claims to booking_app;

-- An invitation's token, sealed with the platform's key, kept only until the notifier has
-- emailed it to the invitee (the API shows it once too). Never in events.
create table invitation_outbox (
    tenant_id   uuid        not null,
    user_id     uuid        not null,
    token_enc   bytea       not null,
    expires_at  timestamptz not null,
    primary key (tenant_id, user_id)
);
alter table invitation_outbox enable row level security;
alter table invitation_outbox force row level security;
create policy tenant_isolation on invitation_outbox for all to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
grant select, insert, delete on invitation_outbox to booking_app;

-- Password resets: the token's hash (what a reset is redeemed with), and the token sealed with
-- the platform's key only until the notifier has emailed it. Never in events.
create table password_resets (
    token_hash  bytea       primary key,
    tenant_id   uuid        not null,
    user_id     uuid        not null,
    token_enc   bytea,
    expires_at  timestamptz not null,
    used_at     timestamptz,
    created_at  timestamptz not null default now()
);
create index password_resets_user on password_resets (tenant_id, user_id);
alter table password_resets enable row level security;
alter table password_resets force row level security;
create policy tenant_isolation on password_resets for all to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
grant select, insert, update on password_resets to booking_app;
