//! Free loopback ports, each handed out at most once per test process.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// Ports already given to a node of this process. Tests run in parallel threads, and the kernel
/// may offer a port again once its probe listener is closed; a node restarted later must not
/// find its port taken by another test's node.
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// `count` distinct ports that were free a moment ago. All probe listeners stay open until
/// every port is chosen, so the kernel cannot offer the same port twice in one call.
pub fn free_ports(count: usize) -> Vec<u16> {
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let mut probes = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < count {
        let probe = TcpListener::bind("127.0.0.1:0").expect("bind a probe listener on loopback");
        let port = probe.local_addr().expect("probe listener address").port();
        probes.push(probe);
        if handed_out.insert(port) {
            ports.push(port);
        }
    }
    ports
}
