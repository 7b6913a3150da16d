-- A customer's key is made with the first events that need it, in their transaction: a command
-- that is refused or loses a race leaves no key (and so no phone) behind. The unit of work
-- looks the key up with this function (one statement, no insert) and, for a customer met for
-- the first time, inserts its own candidate with `customer_key` on its transaction.
create function customer_key_of_phone(
    p_tenant_id uuid,
    p_phone     text
) returns table (subject_id uuid, key bytea)
language plpgsql security invoker as $$
begin
    perform set_config('app.tenant_id', p_tenant_id::text, true);
    return query
    select k.subject_id, k.key from customer_keys k
     where k.tenant_id = p_tenant_id and k.phone = p_phone;
end
$$;
revoke all on function customer_key_of_phone from public;
grant execute on function customer_key_of_phone to booking_app;
