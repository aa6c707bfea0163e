//! A fault-injecting TCP proxy in front of one node's peer port.
//!
//! Every member's address in `--initial-cluster` is its proxy, so all Raft traffic *to* a node
//! (appends, votes, heartbeats and their answers, forwarded writes, read-index requests, from
//! every peer) passes through that node's proxy. Isolating node i therefore cuts what reaches
//! i; what i sends still reaches the others through their own proxies. That is an asymmetric
//! partition: i's heartbeats and votes arrive but no answer comes back. A symmetric one would
//! need the proxies to tell connections apart by sender, which the peer protocol does not
//! allow (every node dials the same advertised address).

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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

pub struct Proxy {
    mode: watch::Sender<Mode>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `port` and forwards to `target` on loopback.
    pub async fn start(port: u16, target: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap_or_else(|e| panic!("bind the proxy port {port}: {e}"));
        let (mode, _) = watch::channel(Mode::Forward);
        let modes = mode.clone();
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((socket, _)) => {
                        let _ = socket.set_nodelay(true);
                        tokio::spawn(serve(socket, target, modes.subscribe()));
                    }
                    // Out of file descriptors, say: the proxy must not die of it.
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
        });
        Self { mode, accept }
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Open connections end too: they wait on the mode channel, which closes now.
    }
}

async fn serve(client: TcpStream, target: u16, mut mode: watch::Receiver<Mode>) {
    let current = *mode.borrow_and_update();
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
async fn forward(mut client: TcpStream, mut server: TcpStream, mut mode: watch::Receiver<Mode>) {
    let changed = tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => None,
        result = mode.wait_for(|m| *m != Mode::Forward) => Some(result.map(|m| *m)),
    };
    match changed {
        None | Some(Err(_)) | Some(Ok(Mode::Forward)) => {}
        Some(Ok(Mode::Refuse)) => {
            reset(client);
            reset(server);
        }
        Some(Ok(Mode::Blackhole)) => swallow(client, Some(server), mode).await,
    }
}

/// Reads and discards from both sockets until the mode changes, then resets them: after a
/// heal, the peer reconnects instead of waiting on a stream that lost data.
async fn swallow(
    mut client: TcpStream,
    mut server: Option<TcpStream>,
    mut mode: watch::Receiver<Mode>,
) {
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
            result = mode.wait_for(|m| *m != Mode::Blackhole) => {
                let _ = result;
                break;
            }
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
