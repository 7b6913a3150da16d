//! Ports for servers a test starts as processes.
//!
//! A test picks the port, then the process binds it some time later. Asking the OS for a free
//! port (binding port 0) hands out one of the ephemeral range, the same range every outgoing
//! connection of every test takes its local port from: with the suite opening thousands of
//! connections to Postgres, NATS and HTTP, one of them could take the port in between, and the
//! server then died with "Address in use". So the ports come from below the ephemeral range,
//! where only servers bind, at random (tests run as separate processes, with nothing shared to
//! count with), and each is checked free when picked.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::net::TcpListener;

/// The lowest port handed out: above the well-known and registered services this machine runs.
const LOWEST: u16 = 10_000;

/// A port nothing listens on right now, outside the range the OS gives outgoing connections.
pub fn free_port() -> u16 {
    let below = ephemeral_start();
    if below <= LOWEST + 1_000 {
        return any_free_port();
    }
    let span = u64::from(below - LOWEST);
    loop {
        let port = LOWEST + (random() % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The first port of the OS's ephemeral range (Linux's default when it cannot be read).
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

fn any_free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A fresh random number (std's hasher keys are drawn from the OS for each `RandomState`).
fn random() -> u64 {
    RandomState::new().hash_one(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_below_the_ephemeral_range_and_are_free() {
        let below = ephemeral_start();
        for _ in 0..50 {
            let port = free_port();
            assert!((LOWEST..below).contains(&port), "{port}");
            TcpListener::bind(("127.0.0.1", port)).expect("free");
        }
    }
}
