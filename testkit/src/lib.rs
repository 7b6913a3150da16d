//! Test harness over the real services: each test gets its own Postgres database (cloned from
//! a migrated template), its own NATS namespace (stream and subjects), and, when it needs to
//! kill one, its own nats-server or redis-server process. Tests therefore run in parallel without sharing
//! state, and clean up after themselves.
//!
//! Where the services are: `BOOKING_TEST_ADMIN_URL` (a Postgres superuser, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `BOOKING_TEST_NATS_URL` (default
//! `nats://127.0.0.1:4223`, the project's server with the users of `nats/auth.conf`; a test connects
//! as one of them, see [`login`]). `just test` makes sure they run.

#![forbid(unsafe_code)]

mod database;
mod nats_server;
mod pg_cluster;
mod ports;
mod redis_server;
mod tcp_gate;

pub use database::TestDb;
pub use nats_server::{NatsCluster, NatsServer, TestNats, connect_as, dev_env, login};
pub use pg_cluster::PgCluster;
pub use ports::free_port;
pub use redis_server::RedisServer;
pub use tcp_gate::TcpGate;

/// Runs an async clean-up from a `Drop`, on a thread and runtime of its own (a test's runtime
/// may be shutting down, and blocking inside it would deadlock a current-thread runtime).
pub(crate) fn block_on_cleanup<F>(cleanup: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let _ = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for clean-up")
            .block_on(cleanup)
    })
    .join();
}
