-- Crypto-shredding: a business's customers' personal data (phone numbers, names, what they
-- wrote, what they were told) is sealed in events with a key per customer, and erasing the
-- customer deletes the key. The log stays immutable; what it held of them is unreadable.
--
-- One row per customer of a tenant: the subject id that stands for them in sealed values, the
-- phone they are known by (gone with the row), and their AES-256-GCM key. Keys live here and
-- nowhere else: never in events, NATS, logs or read models.
create table customer_keys (
    tenant_id   uuid        not null,
    subject_id  uuid        not null,
    phone       text        not null,
    key         bytea       not null check (length(key) = 32),
    created_at  timestamptz not null default now(),
    primary key (tenant_id, subject_id),
    constraint customer_keys_phone unique (tenant_id, phone)
);
alter table customer_keys enable row level security;
alter table customer_keys force row level security;
create policy tenant_isolation on customer_keys for all to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
-- The operator's cross-tenant reads (rebuild, audit, dead letters) reveal what they read.
create policy operator_reads_all on customer_keys for select to booking_operator using (true);
grant select, insert, delete on customer_keys to booking_app;
grant select on customer_keys to booking_operator;

-- Who was erased, and when: subject ids only (nothing personal). A back-up restored from
-- before an erasure still holds the key; the restore procedure deletes the keys of every
-- subject listed here again, from the newest copy of this table.
create table customer_erasures (
    tenant_id   uuid        not null,
    subject_id  uuid        not null,
    erased_at   timestamptz not null default now(),
    primary key (tenant_id, subject_id)
);
alter table customer_erasures enable row level security;
alter table customer_erasures force row level security;
create policy tenant_isolation on customer_erasures for all to booking_app
    using (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid);
create policy operator_reads_all on customer_erasures for select to booking_operator using (true);
grant select, insert on customer_erasures to booking_app;
grant select on customer_erasures to booking_operator;

-- The key of a tenant's customer, made with the caller's candidate on first use: one
-- statement in autocommit. Two first uses at once agree on the row that won.
create function customer_key(
    p_tenant_id uuid,
    p_phone     text,
    p_subject   uuid,
    p_key       bytea
) returns table (subject_id uuid, key bytea)
language plpgsql security invoker as $$
begin
    perform set_config('app.tenant_id', p_tenant_id::text, true);
    insert into customer_keys (tenant_id, subject_id, phone, key)
    values (p_tenant_id, p_subject, p_phone, p_key)
    on conflict (tenant_id, phone) do nothing;
    return query
    select k.subject_id, k.key from customer_keys k
     where k.tenant_id = p_tenant_id and k.phone = p_phone;
end
$$;
revoke all on function customer_key from public;
grant execute on function customer_key to booking_app;

-- The keys of some of a tenant's subjects (an erased one has none): one statement.
create function customer_keys_of(
    p_tenant_id uuid,
    p_subjects  uuid[]
) returns table (subject_id uuid, key bytea)
language plpgsql security invoker as $$
begin
    perform set_config('app.tenant_id', p_tenant_id::text, true);
    return query
    select k.subject_id, k.key from customer_keys k
     where k.tenant_id = p_tenant_id and k.subject_id = any(p_subjects);
end
$$;
revoke all on function customer_keys_of from public;
grant execute on function customer_keys_of to booking_app, booking_operator;
