use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A Postgres cluster of one's own (`initdb` into a temporary directory, on a free port, trust
/// authentication on loopback), for tests that need a second cluster: a restore, whose
/// transaction ids are not the first cluster's. Stopped and deleted when dropped.
///
/// The server binaries are taken from `BOOKING_PG_BIN` (a directory) or the newest
/// `/usr/lib/postgresql/<version>/bin`. As root, they run as the `postgres` user (Postgres
/// refuses to run as root).
pub struct PgCluster {
    port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl PgCluster {
    pub fn start() -> Self {
        let cluster = Self::empty();
        let data = cluster.dir.join("data");
        ok(cluster
            .as_server_user(&cluster.bin.join("initdb"))
            .arg("--pgdata")
            .arg(&data)
            .args(["--username=postgres", "--auth=trust", "--encoding=UTF8"])
            .args(["--locale=C.UTF-8", "--no-sync"]));
        cluster.run();
        cluster
    }

    /// A streaming-replication hot standby of `primary`: a `pg_basebackup` of it (which writes
    /// the replication settings, `-R`), started on a port of its own. Read-only; it replays the
    /// primary's WAL as it comes.
    pub fn standby_of(primary: &PgCluster) -> Self {
        let standby = Self::empty();
        ok(standby
            .as_server_user(&standby.bin.join("pg_basebackup"))
            .arg("--pgdata")
            .arg(standby.dir.join("data"))
            .args(["--host=127.0.0.1", "--username=postgres", "--no-sync"])
            .args([
                "--wal-method=stream",
                "--checkpoint=fast",
                "--write-recovery-conf",
            ])
            .arg(format!("--port={}", primary.port)));
        standby.run();
        standby
    }

    fn empty() -> Self {
        let dir =
            std::env::temp_dir().join(format!("booking-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let cluster = Self {
            port: crate::free_port(),
            dir,
            bin: server_bin(),
        };
        if is_root() {
            ok(Command::new("chown")
                .arg("postgres:postgres")
                .arg(&cluster.dir));
        }
        cluster
    }

    fn run(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100",
            self.port,
            self.dir.display()
        );
        ok(self
            .as_server_user(&self.bin.join("pg_ctl"))
            .arg("--pgdata")
            .arg(self.dir.join("data"))
            .arg("--log")
            .arg(self.dir.join("server.log"))
            .args(["--wait", "--options", &options, "start"]));
    }

    /// Stops the server at once, as a crash would (`immediate`); the data stays.
    pub fn kill(&self) {
        let _ = self
            .as_server_user(&self.bin.join("pg_ctl"))
            .arg("--pgdata")
            .arg(self.dir.join("data"))
            .args(["--mode=immediate", "--wait", "stop"])
            .output();
    }

    /// The superuser, on the cluster's `postgres` database.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn as_server_user(&self, program: &Path) -> Command {
        let mut command = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        } else {
            Command::new(program)
        };
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        command
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn server_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("BOOKING_PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres server binaries in /usr/lib/postgresql (or BOOKING_PG_BIN)")
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("a Postgres version with initdb in /usr/lib/postgresql")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

fn ok(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {:?}: {err}", command.get_program()));
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        command.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
}
