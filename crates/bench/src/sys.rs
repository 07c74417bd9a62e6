//! The operating system side: file-descriptor limit, resident memory of a
//! process, and what machine this is.

use serde::{Deserialize, Serialize};

/// Raises this process's `RLIMIT_NOFILE` soft limit to the hard limit.
/// Returns the soft limit now in force.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

/// The current `RLIMIT_NOFILE` (soft, hard).
pub fn nofile_limit() -> std::io::Result<(u64, u64)> {
    rlimit::Resource::NOFILE.get()
}

/// `VmRSS` of a process in bytes, from `/proc/<pid>/status`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss(&status)
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    let unit = parts.next().unwrap_or("kB");
    Some(match unit {
        "kB" => n * 1024,
        "mB" | "MB" => n * 1024 * 1024,
        _ => n,
    })
}

/// The kernel's count of connections dropped because a listen queue was
/// full (`TcpExt: ListenOverflows` in `/proc/net/netstat`). System-wide:
/// on a benchmark machine, that is the server's listen queue. A dropped
/// SYN is retransmitted after 1 s, which shows as a 1 s latency tail.
pub fn listen_overflows() -> Option<u64> {
    parse_tcp_ext(
        &std::fs::read_to_string("/proc/net/netstat").ok()?,
        "ListenOverflows",
    )
}

fn parse_tcp_ext(netstat: &str, field: &str) -> Option<u64> {
    let mut lines = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?.split_whitespace();
    let values = lines.next()?.split_whitespace();
    names
        .zip(values)
        .find(|(n, _)| *n == field)
        .and_then(|(_, v)| v.parse().ok())
}

/// The machine a comparison ran on.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name from `/proc/cpuinfo` (`unknown` when absent).
    pub cpu_model: String,
    /// CPUs this process may use (`available_parallelism`).
    pub cores: usize,
    /// Total memory (`MemTotal`), in GiB, to one decimal.
    pub memory_gib: f64,
    /// Kernel release (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// When the comparison was made, as given (e.g. `date -u +%FT%TZ`).
    pub date: String,
}

impl Machine {
    /// Reads `/proc`; `date` is passed in (the script's `date -u`).
    pub fn detect(date: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_gib = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| (kb / 1024.0 / 1024.0 * 10.0).round() / 10.0)
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Self {
            cpu_model,
            cores,
            memory_gib,
            kernel,
            date,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tsockgate\nVmPeak:\t  99 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        let own = rss_bytes(std::process::id()).expect("own RSS");
        assert!(own > 1024 * 1024, "{own}");
    }

    #[test]
    fn reads_listen_overflows() {
        let netstat = "TcpExt: SyncookiesSent ListenOverflows ListenDrops\nTcpExt: 0 208 208\nIpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(parse_tcp_ext(netstat, "ListenOverflows"), Some(208));
        assert_eq!(parse_tcp_ext(netstat, "Nope"), None);
        assert_eq!(parse_tcp_ext("", "ListenOverflows"), None);
    }

    #[test]
    fn machine_info_is_filled_in() {
        let m = Machine::detect("today".into());
        assert!(m.cores >= 1);
        assert!(m.memory_gib > 0.0);
        assert!(!m.kernel.is_empty());
    }
}
