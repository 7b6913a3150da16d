-- An access token names its session (the refresh-token family) and the member's session epoch
-- when it was issued. Deactivating a member or changing their role moves the epoch on, and
-- logging out revokes the family: every request sees either at once, not when the token runs
-- out.
alter table user_credentials add column session_epoch bigint not null default 0;

-- Whether a token of (member, epoch, session) still speaks for them: one round trip per
-- request, under the tenant's row-level security (the caller's role, the tenant set for this
-- call only and the previous setting restored).
create function session_is_live(p_tenant uuid, p_user uuid, p_epoch bigint, p_session uuid)
returns boolean
language plpgsql volatile set search_path = public as $$
declare
    previous text := current_setting('app.tenant_id', true);
    live boolean;
begin
    perform set_config('app.tenant_id', p_tenant::text, true);
    live := exists (select 1 from user_credentials
                     where user_id = p_user and active and session_epoch = p_epoch)
        and exists (select 1 from refresh_tokens
                     where family_id = p_session and user_id = p_user and revoked_at is null);
    perform set_config('app.tenant_id', coalesce(previous, ''), true);
    return live;
end
$$;
revoke all on function session_is_live(uuid, uuid, bigint, uuid) from public;
grant execute on function session_is_live(uuid, uuid, bigint, uuid) to booking_app;
