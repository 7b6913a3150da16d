//! `domain` stays pure: nothing in its dependency tree does I/O on its own.

use std::process::Command;

/// Crates that would mean an async runtime, a database, HTTP, a cache or a broker.
const FORBIDDEN: &[&str] = &[
    "tokio",
    "async-std",
    "smol",
    "mio",
    "sqlx",
    "postgres",
    "reqwest",
    "hyper",
    "axum",
    "tower",
    "redis",
    "async-nats",
    "nats",
    "eventstore",
    "platform",
];

#[test]
fn the_domain_depends_on_no_runtime_database_http_cache_or_broker_crate() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "domain",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"chrono"), "the tree was read: {crates:?}");
    let offending: Vec<&&str> = crates.iter().filter(|c| FORBIDDEN.contains(c)).collect();
    assert!(offending.is_empty(), "domain depends on {offending:?}");
}
