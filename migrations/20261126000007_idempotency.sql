-- Answers to POSTs that carried an Idempotency-Key, so a retry gets the first answer. Keyed by
-- the SHA-256 of the caller's credential and the key (not tenant data: no RLS); the request's
-- fingerprint tells a retry from a different request under the same key. Answers are sealed
-- (they may hold a secret shown once, such as a new API key). Rows older than a day are swept.
create table idempotency_keys (
    scope        bytea       not null,
    key          text        not null,
    fingerprint  bytea       not null,
    status       integer,    -- null while the first request is in progress
    response_enc bytea,
    created_at   timestamptz not null default now(),
    primary key (scope, key)
);
create index idempotency_keys_age on idempotency_keys (created_at);
grant select, insert, update, delete on idempotency_keys to booking_app;
