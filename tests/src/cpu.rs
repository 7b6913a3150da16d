//! CPU time by process, read from `/proc`: the platform's binaries, Postgres (every backend,
//! plus the backends that ended meanwhile, through the postmaster's reaped-children times),
//! NATS, Redis and the load generator itself. A benchmark takes a snapshot before and after a
//! fixed workload and divides by its units of work: CPU-ms per unit, which a shared, noisy
//! machine moves far less than it moves wall-clock time.

use std::collections::BTreeMap;

/// Linux reports these times in USER_HZ ticks, which its ABI fixes at 100 a second.
const TICKS_PER_SECOND: f64 = 100.0;

/// The system services measured, by the command name the kernel shows.
const SERVICES: [(&str, &str); 3] = [
    ("postgres", "postgres"),
    ("nats-server", "nats-server"),
    ("redis-server", "redis-server"),
];

/// CPU ticks (user and system) by process group, at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot(BTreeMap<String, u64>);

/// One `/proc/<pid>/stat`: the command name and the process's own ticks plus those of its
/// children it has reaped.
fn stat(pid: &str) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    // After "pid (comm) ": state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    let ticks = (11..15)
        .map(|i| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    Some((comm, ticks))
}

impl Snapshot {
    /// Now: each named process of `pids` under its name, the system services by command name,
    /// and this process as `load generator`.
    pub fn take(pids: &[(&str, u32)]) -> Self {
        let mut groups = BTreeMap::new();
        for (name, pid) in pids {
            if let Some((_, ticks)) = stat(&pid.to_string()) {
                groups.insert((*name).to_owned(), ticks);
            }
        }
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let pid = entry.file_name().to_string_lossy().into_owned();
                if !pid.bytes().all(|b| b.is_ascii_digit()) {
                    continue;
                }
                if let Some((comm, ticks)) = stat(&pid)
                    && let Some((_, group)) = SERVICES.iter().find(|(c, _)| *c == comm)
                {
                    *groups.entry((*group).to_owned()).or_insert(0) += ticks;
                }
            }
        }
        if let Some((_, ticks)) = stat("self") {
            groups.insert("load generator".to_owned(), ticks);
        }
        Self(groups)
    }

    /// CPU seconds by group spent between `self` (earlier) and `later`, largest first.
    pub fn until(&self, later: &Snapshot) -> Vec<(String, f64)> {
        let mut spent: Vec<(String, f64)> = later
            .0
            .iter()
            .map(|(group, ticks)| {
                let before = self.0.get(group).copied().unwrap_or(0);
                (
                    group.clone(),
                    ticks.saturating_sub(before) as f64 / TICKS_PER_SECOND,
                )
            })
            .collect();
        spent.sort_by(|a, b| b.1.total_cmp(&a.1));
        spent
    }
}

/// Prints a markdown table of CPU time by group, per `unit` (`units` of them), marking which
/// groups are the platform (the rest play its peers or drive the load).
pub fn print_table(spent: &[(String, f64)], units: u64, unit: &str, platform: &[&str]) {
    let per = |s: f64| s * 1000.0 / units.max(1) as f64;
    println!("| process | CPU s | CPU-ms per {unit} |");
    println!("|---|---:|---:|");
    for (group, seconds) in spent {
        let role = if platform.contains(&group.as_str()) {
            ""
        } else {
            " (not the platform)"
        };
        println!("| {group}{role} | {seconds:.1} | {:.2} |", per(*seconds));
    }
    let total: f64 = spent
        .iter()
        .filter(|(g, _)| platform.contains(&g.as_str()))
        .map(|(_, s)| s)
        .sum();
    println!(
        "| **the platform ({})** | **{total:.1}** | **{:.2}** |",
        platform.join(", "),
        per(total)
    );
}

/// A process's resident memory in MiB (`VmRSS` of `/proc/<pid>/status`).
pub fn resident_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}

/// The most a process has held resident since it started, in MiB (`VmHWM`, the kernel's
/// high-water mark): a peak that sampling could miss.
pub fn peak_resident_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmHWM:")
}

/// Starts a process's high-water mark again from what it holds now (writing 5 to
/// `/proc/<pid>/clear_refs`), so that the next [`peak_resident_mib`] is the peak of what came
/// after. False where the kernel refused (another user's process, no procfs).
pub fn reset_peak_resident(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// A size field of `/proc/<pid>/status`, in MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix(field))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
