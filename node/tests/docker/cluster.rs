//! Node containers on a private Docker network: started, killed, restarted and replaced by a
//! new image on the same volume, with gRPC clients from the host to each.
//!
//! Every node has a fixed address on the run's own internal network (`--internal`: no traffic
//! leaves the machine), so its clients survive restarts and replacements; the host reaches
//! that network through its bridge. Peers dial each other by container name, resolved by the
//! engine's DNS on the network.

use std::time::Duration;

use dengine::proto::admin_client::AdminClient;
use dengine::proto::kv_client::KvClient;
use dengine::proto::{StatusRequest, StatusResponse};
use tonic::transport::{Channel, Endpoint};

use super::engine::{docker, Run};
use super::wait_until;
use crate::common::ClusterClients;

/// Where the image keeps the admin token the test bakes into it.
pub const ADMIN_TOKEN_FILE: &str = "/etc/dengine/admin-token";
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;
/// How long `docker stop` waits after SIGTERM before it kills the node.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// One node: its container, volume and address, and clients of its client port.
pub struct NodeContainer {
    pub id: u64,
    pub name: String,
    pub volume: String,
    pub ip: String,
    /// Started in join mode (the nodes added after the first); kept across restarts and
    /// upgrades, as a StatefulSet keeps a pod's arguments.
    pub join: bool,
    /// The image id the current container was created from.
    pub image: String,
    pub running: bool,
    /// Listed in the cluster's configuration (as a learner or voter): the founding node, and a
    /// joining node once it was added. Only members are asked who leads.
    pub member: bool,
    kv: KvClient<Channel>,
    admin: AdminClient<Channel>,
}

impl NodeContainer {
    pub fn kv(&self) -> KvClient<Channel> {
        self.kv.clone()
    }

    pub fn admin(&self) -> AdminClient<Channel> {
        self.admin.clone()
    }

    pub async fn status(&self) -> Result<StatusResponse, String> {
        self.admin()
            .status(StatusRequest {})
            .await
            .map(|r| r.into_inner())
            .map_err(|e| format!("node {} ({}): {}", self.id, self.ip, e.message()))
    }
}

/// Lazy channels: a call to a stopped container fails (after at most the connect timeout), and
/// the channel reconnects once a container answers at the address again.
fn channel(ip: &str) -> Channel {
    Endpoint::from_shared(format!("http://{ip}:{CLIENT_PORT}"))
        .expect("a valid URI")
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .connect_lazy()
}

pub struct DockerCluster<'r> {
    run: &'r Run,
    pub network: String,
    /// The first three octets of the network's /24, e.g. `10.213.7`.
    prefix: String,
    pub nodes: Vec<NodeContainer>,
    /// Extra node flags for every container (Raft timing).
    node_args: Vec<String>,
}

impl<'r> DockerCluster<'r> {
    /// Creates the run's internal network on a /24 picked at random (retrying if it overlaps
    /// one the engine already has), with addresses for nodes `1..=size`. Starts nothing.
    pub async fn create(run: &'r Run, size: u64, node_args: &[&str]) -> Self {
        let network = run.name("net");
        let mut seed = u64::from(std::process::id()) ^ run.id.len() as u64;
        for byte in run.id.bytes() {
            seed = seed.wrapping_mul(31).wrapping_add(u64::from(byte));
        }
        let mut attempts = Vec::new();
        let mut prefix = None;
        for attempt in 0..20u64 {
            let mixed = seed.wrapping_add(attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let candidate = format!("10.{}.{}", 200 + (mixed >> 8) % 50, mixed % 256);
            let subnet = format!("{candidate}.0/24");
            match docker(&[
                "network",
                "create",
                "--driver",
                "bridge",
                "--internal",
                "--subnet",
                &subnet,
                "--label",
                &run.label(),
                &network,
            ])
            .await
            {
                Ok(_) => {
                    prefix = Some(candidate);
                    break;
                }
                Err(e) => attempts.push(e),
            }
        }
        let prefix = prefix.unwrap_or_else(|| {
            panic!(
                "cannot create an internal network:\n{}",
                attempts.join("\n")
            )
        });
        let nodes = (1..=size)
            .map(|id| {
                let ip = format!("{prefix}.{}", 10 + id);
                let channel = channel(&ip);
                NodeContainer {
                    id,
                    name: run.name(&format!("node-{id}")),
                    volume: run.name(&format!("data-{id}")),
                    ip,
                    join: id != 1,
                    image: String::new(),
                    running: false,
                    member: id == 1,
                    kv: KvClient::new(channel.clone()),
                    admin: AdminClient::new(channel),
                }
            })
            .collect();
        Self {
            run,
            network,
            prefix,
            nodes,
            node_args: node_args.iter().map(|s| s.to_string()).collect(),
        }
    }

    pub fn node(&self, id: u64) -> &NodeContainer {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: u64) -> &mut NodeContainer {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    /// Clients of every node (running or not), for a writer that follows the leader.
    pub fn clients(&self) -> ClusterClients {
        ClusterClients::new(
            self.nodes
                .iter()
                .map(|n| (n.id, n.kv(), n.admin()))
                .collect(),
        )
    }

    /// The peer address a node advertises: its container name, resolved on the network.
    pub fn peer_address(&self, id: u64) -> String {
        format!("{}:{PEER_PORT}", self.node(id).name)
    }

    /// Creates and starts node `id`'s container from `image` on its volume (created the first
    /// time), then waits until it answers Admin.Status from the host.
    pub async fn run_node(&mut self, id: u64, image: &str) {
        let label = self.run.label();
        let node = self.node(id);
        let volume_exists = docker(&["volume", "inspect", &node.volume]).await.is_ok();
        if !volume_exists {
            docker(&["volume", "create", "--label", &label, &node.volume])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let mount = format!("{}:/var/lib/dengine", node.volume);
        let id_text = id.to_string();
        let advertise = self.peer_address(id);
        let mut args: Vec<&str> = vec![
            "run",
            "--detach",
            "--name",
            &node.name,
            "--hostname",
            &node.name,
            "--label",
            &label,
            "--network",
            &self.network,
            "--ip",
            &node.ip,
            // The image needs no writable root: only the data volume is written.
            "--read-only",
            "--volume",
            &mount,
            // Plain logs for the failure report.
            "--env",
            "NO_COLOR=1",
            image,
            "--id",
            &id_text,
            "--client-listen",
            "0.0.0.0:2379",
            "--peer-listen",
            "0.0.0.0:2380",
            "--advertise-peer",
            &advertise,
            "--admin-token-file",
            ADMIN_TOKEN_FILE,
        ];
        if node.join {
            args.push("--join");
        }
        args.extend(self.node_args.iter().map(String::as_str));
        docker(&args)
            .await
            .unwrap_or_else(|e| panic!("start node {id}: {e}"));
        let node = self.node_mut(id);
        node.image = image.to_string();
        node.running = true;
        self.wait_serving(id).await;
    }

    /// Waits until node `id` answers Admin.Status from the host.
    pub async fn wait_serving(&self, id: u64) -> StatusResponse {
        let node = self.node(id);
        wait_until(
            format!(
                "node {id} to answer at {}:{CLIENT_PORT} (the host must reach the internal network {} through its bridge)",
                node.ip, self.network
            ),
            || async {
                let state = docker(&["inspect", "--format", "{{.State.Status}}", &node.name])
                    .await?;
                if state != "running" {
                    return Err(format!("container {} is {state}", node.name));
                }
                node.status().await
            },
        )
        .await
    }

    /// `docker kill` (SIGKILL): the node gets no chance to flush or say goodbye.
    pub async fn kill(&mut self, id: u64) {
        let name = self.node(id).name.clone();
        docker(&["kill", &name])
            .await
            .unwrap_or_else(|e| panic!("kill node {id}: {e}"));
        self.node_mut(id).running = false;
    }

    /// `docker start` of the stopped container: same image, same volume, same address.
    pub async fn start(&mut self, id: u64) {
        let name = self.node(id).name.clone();
        docker(&["start", &name])
            .await
            .unwrap_or_else(|e| panic!("start node {id}: {e}"));
        self.node_mut(id).running = true;
        self.wait_serving(id).await;
    }

    /// Stops node `id` (SIGTERM, then SIGKILL after [`STOP_GRACE`]), removes its container,
    /// and runs a new one from `image` on the same volume, name and address. Returns how the
    /// old container ended: `Ok` if it exited by itself with status 0, `Err` describing it
    /// otherwise (killed after the grace period, or failed).
    pub async fn replace(&mut self, id: u64, image: &str) -> Result<(), String> {
        let name = self.node(id).name.clone();
        let grace = STOP_GRACE.as_secs().to_string();
        let stopping = std::time::Instant::now();
        docker(&["stop", "--time", &grace, &name])
            .await
            .unwrap_or_else(|e| panic!("stop node {id}: {e}"));
        let took = stopping.elapsed();
        self.node_mut(id).running = false;
        let exit = self.inspect(id, "{{.State.ExitCode}}").await;
        let stopped = match exit.as_str() {
            "0" => Ok(()),
            "137" => Err(format!(
                "node {id} did not exit within {STOP_GRACE:?} of SIGTERM and was killed (took {took:.1?})"
            )),
            other => Err(format!("node {id} exited with status {other} after SIGTERM")),
        };
        self.run.save_logs(&name).await;
        docker(&["rm", &name])
            .await
            .unwrap_or_else(|e| panic!("remove node {id}'s container: {e}"));
        self.run_node(id, image).await;
        stopped
    }

    /// Runs the `dengine` CLI inside node `via`'s container, against that node's client port,
    /// with the admin token. Ok(stdout) or Err(everything it said).
    pub async fn cli(&self, via: u64, args: &[&str]) -> Result<String, String> {
        let name = &self.node(via).name;
        let mut command = vec![
            "exec",
            name.as_str(),
            "/usr/local/bin/dengine",
            "--admin-token-file",
            ADMIN_TOKEN_FILE,
        ];
        command.extend_from_slice(args);
        docker(&command).await
    }

    /// Records that node `id` was added to the cluster's configuration.
    pub fn set_member(&mut self, id: u64) {
        self.node_mut(id).member = true;
    }

    /// Waits until every running member names the same leader and that node says it leads;
    /// returns its id.
    pub async fn wait_for_leader(&self) -> u64 {
        wait_until("every running member to agree on a leader", || async {
            let mut views = Vec::new();
            for node in self.nodes.iter().filter(|n| n.running && n.member) {
                views.push(node.status().await?);
            }
            crate::common::agreed_leader(&views)
        })
        .await
    }

    /// Waits until the leader reports `revision` (the highest acknowledged so far) applied,
    /// then until every running node has applied the leader's commit index at that moment.
    pub async fn wait_caught_up(&self, revision: i64) -> u64 {
        let leader = self.node(self.wait_for_leader().await);
        let commit = wait_until(
            format!("leader {} to report revision {revision}", leader.id),
            || async {
                let status = leader.status().await?;
                match status.revision >= revision {
                    true => Ok(status.commit_index),
                    false => Err(format!("revision {}", status.revision)),
                }
            },
        )
        .await;
        for node in self.nodes.iter().filter(|n| n.running) {
            wait_until(
                format!("node {} to apply index {commit}", node.id),
                || async {
                    let status = node.status().await?;
                    match status.applied_index >= commit {
                        true => Ok(()),
                        false => Err(format!("applied index {}", status.applied_index)),
                    }
                },
            )
            .await;
        }
        commit
    }

    /// `docker inspect` of node `id`'s container with a Go template.
    pub async fn inspect(&self, id: u64, format: &str) -> String {
        let name = &self.node(id).name;
        docker(&["inspect", "--format", format, name])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The network's address prefix, for messages.
    pub fn subnet(&self) -> String {
        format!("{}.0/24", self.prefix)
    }
}
