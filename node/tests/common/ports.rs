//! Free loopback ports, each handed out at most once per test process.
//!
//! A node's ports must stay its own across restarts, while other tests (in this process and,
//! under a parallel runner, in others) start nodes and open connections. Two things make
//! `bind(":0")` alone a poor source: the kernel hands a port it just released to the next
//! `bind(":0")` of any process, and outgoing connections draw their local port from the same
//! ephemeral range. So candidates are drawn at random from below the ephemeral range, each is
//! checked by binding it, and each is claimed in a directory shared by every test process on
//! the machine (several engineers' test runs, or a parallel test runner), so that no other
//! test process takes it while its node is down for a restart.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Ports already given to a node of this process, and the random generator's state.
static STATE: Mutex<(BTreeSet<u16>, u64)> = Mutex::new((BTreeSet::new(), 0));

/// The lowest port of the kernel's ephemeral range (Linux default 32768).
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// xorshift64*: enough to spread parallel test processes over the port range.
fn next_random(state: &mut u64) -> u64 {
    if *state == 0 {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        *state = (nanos ^ (u64::from(std::process::id()) << 32)) | 1;
    }
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// `count` distinct ports that were free a moment ago. All probe listeners stay open until
/// every port is chosen.
pub fn free_ports(count: usize) -> Vec<u16> {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let (handed_out, random) = &mut *state;
    let low = 10_000u16;
    let high = ephemeral_low().max(low + 1_000);
    let mut probes = Vec::new();
    let mut ports = Vec::new();
    let mut attempts = 0;
    while ports.len() < count {
        attempts += 1;
        let port = if attempts <= 1_000 {
            low + (next_random(random) % u64::from(high - low)) as u16
        } else {
            0 // The range is crowded: let the kernel choose.
        };
        let Ok(probe) = TcpListener::bind(("127.0.0.1", port)) else {
            continue;
        };
        let port = probe.local_addr().expect("probe listener address").port();
        probes.push(probe);
        if !handed_out.contains(&port) && claim(port) {
            handed_out.insert(port);
            ports.push(port);
        }
    }
    ports
}

/// Claims `port` for this process in the shared claim directory: a file named after the port,
/// holding the claimant's pid, created atomically (written aside, then hard-linked into
/// place). A claim whose process is gone is stale and taken over. Without a usable directory
/// every port counts as unclaimed, and only this process's own bookkeeping applies.
fn claim(port: u16) -> bool {
    let dir = std::env::temp_dir().join("dengine-test-ports");
    if std::fs::create_dir_all(&dir).is_err() {
        return true;
    }
    let pid = std::process::id();
    let aside = dir.join(format!(".claim-{pid}-{port}"));
    let written = std::fs::File::create(&aside).and_then(|mut f| write!(f, "{pid}"));
    if written.is_err() {
        return true;
    }
    let path = dir.join(port.to_string());
    let mut claimed = std::fs::hard_link(&aside, &path).is_ok();
    if !claimed && claim_is_stale(&path) {
        let _ = std::fs::remove_file(&path);
        claimed = std::fs::hard_link(&aside, &path).is_ok();
    }
    let _ = std::fs::remove_file(&aside);
    claimed
}

/// A claim is stale when the process that made it no longer runs.
fn claim_is_stale(path: &Path) -> bool {
    let holder = std::fs::read_to_string(path)
        .ok()
        .and_then(|text| text.trim().parse::<u32>().ok());
    match holder {
        Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        // Unreadable: leave it be; there are plenty of other ports.
        None => false,
    }
}

/// Gives up this process's claims on `ports` once their node is gone for good, so the claim
/// directory does not fill up. They stay out of this process's own use all the same.
pub fn release(ports: &[u16]) {
    let dir = std::env::temp_dir().join("dengine-test-ports");
    let pid = std::process::id().to_string();
    for port in ports {
        let path = dir.join(port.to_string());
        if std::fs::read_to_string(&path).is_ok_and(|holder| holder.trim() == pid) {
            let _ = std::fs::remove_file(&path);
        }
    }
}
