//! Helpers for end-to-end tests: finding the workspace's binaries and waiting on HTTP.
//! The tests themselves are in `tests/`.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A binary of the workspace, built by `cargo build --bins` (which `just test` runs first).
/// `BOOKING_BIN_DIR` overrides where to look.
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("BOOKING_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/<profile>/deps/<test binary> -> target/<profile>
            let exe = std::env::current_exe().expect("the test binary's path");
            exe.parent()
                .and_then(|deps| deps.parent())
                .expect("a target directory")
                .to_path_buf()
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --bins` first (`just test` does)",
        path.display()
    );
    path
}

/// Polls `url` until it answers `status` or `timeout` passes; returns the last status seen.
pub async fn wait_for_status(url: &str, status: u16, timeout: Duration) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client");
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send().await {
            last = Some(response.status().as_u16());
            if last == Some(status) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// A port nothing listens on right now (the OS picks it; a race with another process taking
/// it before the caller binds is possible but rare).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
