//! A fault-injecting TCP proxy in front of one node's peer port.
//!
//! Every member's address in `--initial-cluster` is its proxy, so all Raft traffic *to* a node
//! (appends, votes, heartbeats and their answers, forwarded writes, read-index requests, from
//! every peer) passes through that node's proxy. A rule for everyone cuts what reaches the
//! node (an asymmetric partition: its heartbeats and votes arrive, no answer comes back). A
//! rule for one sender cuts only what that node sends it: the proxy learns who opened each
//! connection from the process that owns its other end (`senders.rs`), so a pair of rules
//! makes a pairwise partition, and rules against every other node a symmetric one.

use std::time::Duration;

use std::collections::BTreeMap;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::senders::Senders;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Pass everything through.
    Forward,
    /// Reset every connection, open or new: the sender learns at once that the peer is gone.
    Refuse,
    /// Accept and swallow everything, answer nothing: the sender sees a peer that hangs (a
    /// network dropping packets), until its own timeouts fire.
    Blackhole,
}

/// What the proxy does with connections: a mode for everyone, and modes for single senders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    everyone: Mode,
    senders: BTreeMap<u64, Mode>,
}

impl Rules {
    /// The mode for a connection from `sender` (unknown: the rule for everyone).
    fn mode_for(&self, sender: Option<u64>) -> Mode {
        match self.everyone {
            Mode::Forward => sender
                .and_then(|s| self.senders.get(&s).copied())
                .unwrap_or(Mode::Forward),
            mode => mode,
        }
    }
}

pub struct Proxy {
    rules: watch::Sender<Rules>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `port` and forwards to `target` on loopback; `senders` says which node
    /// opened each connection.
    pub async fn start(port: u16, target: u16, senders: Senders) -> Self {
        let listener = bind(port).await;
        let (rules, _) = watch::channel(Rules {
            everyone: Mode::Forward,
            senders: BTreeMap::new(),
        });
        let subscribe = rules.clone();
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((socket, peer)) => {
                        let _ = socket.set_nodelay(true);
                        let sender = socket
                            .local_addr()
                            .ok()
                            .and_then(|local| senders.identify(peer, local));
                        tokio::spawn(serve(socket, target, sender, subscribe.subscribe()));
                    }
                    // Out of file descriptors, say: the proxy must not die of it.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
        Self { rules, accept }
    }

    /// What happens to everything sent to this node; `Forward` also lifts the rules for
    /// single senders.
    pub fn set(&self, mode: Mode) {
        self.rules.send_modify(|rules| {
            rules.everyone = mode;
            if mode == Mode::Forward {
                rules.senders.clear();
            }
        });
    }

    /// What happens to what node `sender` sends to this node.
    pub fn set_for(&self, sender: u64, mode: Mode) {
        self.rules.send_modify(|rules| {
            match mode {
                Mode::Forward => rules.senders.remove(&sender),
                mode => rules.senders.insert(sender, mode),
            };
        });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Open connections end too: they wait on the mode channel, which closes now.
    }
}

/// Binds `port`, trying again for a few seconds while something else holds it for a moment
/// (as `Member::start` does for a node's ports).
async fn bind(port: u16) -> TcpListener {
    let mut attempt = 1;
    loop {
        match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => return listener,
            Err(_) if attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("bind the proxy port {port}: {e}"),
        }
    }
}

/// The mode for this connection, as the rules change.
struct ModeOf {
    sender: Option<u64>,
    rules: watch::Receiver<Rules>,
}

impl ModeOf {
    fn now(&mut self) -> Mode {
        self.rules.borrow_and_update().mode_for(self.sender)
    }

    /// Waits until the mode is no longer `mode`; `None` once the proxy is gone.
    async fn leaves(&mut self, mode: Mode) -> Option<Mode> {
        let sender = self.sender;
        let rules = self
            .rules
            .wait_for(|rules| rules.mode_for(sender) != mode)
            .await
            .ok()?;
        Some(rules.mode_for(sender))
    }
}

async fn serve(client: TcpStream, target: u16, sender: Option<u64>, rules: watch::Receiver<Rules>) {
    let mut mode = ModeOf { sender, rules };
    let current = mode.now();
    match current {
        Mode::Refuse => reset(client),
        Mode::Blackhole => swallow(client, None, mode).await,
        Mode::Forward => {
            let Ok(Ok(server)) = tokio::time::timeout(
                Duration::from_secs(1),
                TcpStream::connect(("127.0.0.1", target)),
            )
            .await
            else {
                // The node is down: so is the connection to it.
                return reset(client);
            };
            let _ = server.set_nodelay(true);
            forward(client, server, mode).await;
        }
    }
}

/// Copies both ways until either side closes or the mode changes.
async fn forward(mut client: TcpStream, mut server: TcpStream, mut mode: ModeOf) {
    let changed = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => None,
        changed = mode.leaves(Mode::Forward) => changed,
    };
    match changed {
        None | Some(Mode::Forward) => {}
        Some(Mode::Refuse) => {
            reset(client);
            reset(server);
        }
        Some(Mode::Blackhole) => swallow(client, Some(server), mode).await,
    }
}

/// Reads and discards from both sockets until the mode changes, then resets them: after a
/// heal, the peer reconnects instead of waiting on a stream that lost data.
async fn swallow(mut client: TcpStream, mut server: Option<TcpStream>, mut mode: ModeOf) {
    let mut from_client = [0u8; 16 * 1024];
    let mut from_server = [0u8; 16 * 1024];
    let mut client_open = true;
    let mut server_open = server.is_some();
    loop {
        tokio::select! {
            read = client.read(&mut from_client), if client_open => {
                client_open = matches!(read, Ok(n) if n > 0);
            }
            read = async {
                match server.as_mut() {
                    Some(server) => server.read(&mut from_server).await,
                    None => std::future::pending().await,
                }
            }, if server_open => {
                server_open = matches!(read, Ok(n) if n > 0);
            }
            _ = mode.leaves(Mode::Blackhole) => break,
        }
    }
    reset(client);
    if let Some(server) = server {
        reset(server);
    }
}

/// Closes with a reset (linger 0) rather than an orderly shutdown.
fn reset(socket: TcpStream) {
    let _ = socket.set_zero_linger();
    drop(socket);
}
