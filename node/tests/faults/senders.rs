//! Which node opened a connection to a proxy: the process that owns the other end of it, found
//! through /proc (Linux). Every node dials the same advertised address of a peer, so nothing
//! in the connection itself says who sent it; with this a proxy can cut one node off from
//! another and not from the rest (a pairwise or symmetric partition).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The process ids of every node started, with their node ids. A process that is gone owns no
/// socket, so its entry is never matched again.
#[derive(Clone, Default)]
pub struct Senders(Arc<Mutex<BTreeMap<u32, u64>>>);

impl Senders {
    pub fn started(&self, pid: u32, node: u64) {
        self.lock().insert(pid, node);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, u64>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The node that opened the connection from `peer` to `local` (as the accepting side sees
    /// it), if one of the known processes owns it.
    pub fn identify(&self, peer: SocketAddr, local: SocketAddr) -> Option<u64> {
        let inode = socket_inode(peer, local)?;
        let pids: Vec<(u32, u64)> = self.lock().iter().map(|(&p, &n)| (p, n)).collect();
        pids.into_iter()
            .find(|&(pid, _)| owns_socket(pid, inode))
            .map(|(_, node)| node)
    }
}

/// The inode of the TCP socket whose local end is `local` and remote end `remote`.
fn socket_inode(local: SocketAddr, remote: SocketAddr) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let hex = |addr: SocketAddr| format!("{:04X}", addr.port());
    let (local_port, remote_port) = (hex(local), hex(remote));
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let ours = fields.get(1)?.ends_with(&format!(":{local_port}"))
            && fields.get(2)?.ends_with(&format!(":{remote_port}"));
        ours.then(|| fields.get(9)?.parse().ok()).flatten()
    })
}

fn owns_socket(pid: u32, inode: u64) -> bool {
    let wanted = format!("socket:[{inode}]");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| target.to_string_lossy() == wanted)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_process_that_opened_a_connection_is_found() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let senders = Senders::default();
        assert_eq!(senders.identify(peer, accepted.local_addr().unwrap()), None);
        senders.started(std::process::id(), 7);
        assert_eq!(
            senders.identify(peer, accepted.local_addr().unwrap()),
            Some(7)
        );
    }
}
