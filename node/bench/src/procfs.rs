//! Memory and CPU of processes, from `/proc/PID/status` and `/proc/PID/stat` (Linux).

use serde::{Deserialize, Serialize};

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcSample {
    /// Resident set size now (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident set size so far (`VmHWM`), KiB.
    pub hwm_kib: u64,
    /// User plus system CPU time so far (`utime + stime`), clock ticks.
    pub cpu_ticks: u64,
}

/// `VmRSS` and `VmHWM` of a `/proc/PID/status` text, in KiB.
pub fn parse_status(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
    };
    Some((field("VmRSS")?, field("VmHWM")?))
}

/// `utime + stime` (fields 14 and 15) of a `/proc/PID/stat` line. The command name (field 2)
/// is in parentheses and may itself hold spaces and parentheses, so fields are counted from
/// the last `)`.
pub fn parse_stat(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `fields[0]` is field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Reads a process now; `None` if it is gone or this is not Linux.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (rss_kib, hwm_kib) = parse_status(&status)?;
    Some(ProcSample {
        rss_kib,
        hwm_kib,
        cpu_ticks: parse_stat(&stat)?,
    })
}

/// The process's command name (`/proc/PID/comm`), for labels.
pub fn name(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Clock ticks per second of `/proc/PID/stat` times.
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a constant of the C library.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = include_str!("../tests/fixtures/proc_status");
    const STAT: &str = include_str!("../tests/fixtures/proc_stat");

    #[test]
    fn status_fixture() {
        assert_eq!(parse_status(STATUS), Some((48_212, 51_304)));
        assert_eq!(
            parse_status("Name:\tnode\nVmRSS:\t 12 kB\n"),
            None,
            "no VmHWM"
        );
    }

    #[test]
    fn stat_fixture_with_a_command_name_holding_spaces_and_parentheses() {
        // utime 1234 + stime 567.
        assert_eq!(parse_stat(STAT), Some(1_801));
        assert_eq!(parse_stat("12 (x) S 1"), None, "too short");
    }

    #[test]
    fn this_process_can_be_sampled() {
        if cfg!(target_os = "linux") {
            let s = sample(std::process::id()).expect("own /proc entry");
            assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib, "{s:?}");
            assert!(ticks_per_second() > 0);
        }
    }
}
