//! A set of nodes founded together, in one temporary directory that goes away with it.

use std::path::Path;

use tempfile::TempDir;

use super::client::ClusterClients;
use super::node::{Node, NodeSpec};
use super::ports::free_ports;
use super::wait::wait_for;
use dengine::proto::{RaftRole, StatusResponse};

/// Nodes 1..=size. Dropping it kills every node; if the test is failing, it first prints the
/// end of every node's log.
pub struct Cluster {
    pub nodes: Vec<Node>,
    dir: TempDir,
}

/// Lines of each node's log printed when a test fails.
const LOG_LINES_ON_FAILURE: usize = 300;

impl Cluster {
    /// The specs of a new cluster, nothing started. One node alone is founded without
    /// `--initial-cluster` (the default a user gets); several share one member list.
    pub fn new(size: u64, extra_args: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("dengine-test-")
            .tempdir()
            .expect("create a temporary directory");
        let ports = free_ports(2 * size as usize);
        let peer_port = |id: u64| ports[2 * (id as usize - 1) + 1];
        let initial_cluster = (size > 1).then(|| {
            (1..=size)
                .map(|id| format!("{id}=127.0.0.1:{}", peer_port(id)))
                .collect::<Vec<_>>()
                .join(",")
        });
        let nodes = (1..=size)
            .map(|id| {
                Node::new(NodeSpec {
                    id,
                    client_port: ports[2 * (id as usize - 1)],
                    peer_port: peer_port(id),
                    data_dir: dir.path().join(format!("node-{id}")),
                    log_path: dir.path().join(format!("node-{id}.log")),
                    initial_cluster: initial_cluster.clone(),
                    cluster_token: None,
                    config_file: None,
                    extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
                })
            })
            .collect();
        Self { nodes, dir }
    }

    /// Starts a cluster of `size` nodes and waits until they agree on a leader.
    pub async fn start(size: u64, extra_args: &[&str]) -> Self {
        let mut cluster = Self::new(size, extra_args);
        cluster.start_stopped().await;
        cluster.wait_for_leader().await;
        cluster
    }

    /// Starts every node that is not running, all at once, as founding members start (a
    /// founder that starts after the others have committed waits to be admitted).
    pub async fn start_stopped(&mut self) {
        let starts = self
            .nodes
            .iter_mut()
            .filter(|n| !n.is_running())
            .map(|node| node.start());
        futures::future::join_all(starts).await;
    }

    /// A node in join mode (waiting to be added by a leader), in the cluster's directory, not
    /// started.
    pub fn joining_node(&self, id: u64, extra: &[&str]) -> Node {
        let ports = free_ports(2);
        let mut extra_args: Vec<String> = vec!["--join".into()];
        extra_args.extend(extra.iter().map(|s| s.to_string()));
        Node::new(NodeSpec {
            id,
            client_port: ports[0],
            peer_port: ports[1],
            data_dir: self.dir().join(format!("node-{id}")),
            log_path: self.dir().join(format!("node-{id}.log")),
            initial_cluster: None,
            cluster_token: None,
            config_file: None,
            extra_args,
        })
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id() == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.id() == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    pub fn clients(&self) -> ClusterClients {
        ClusterClients::new(
            self.nodes
                .iter()
                .map(|n| (n.id(), n.kv(), n.admin()))
                .collect(),
        )
    }

    /// Waits until every running node names the same leader and that node says it leads.
    /// Returns the leader's id.
    pub async fn wait_for_leader(&self) -> u64 {
        wait_for("every running node to agree on a leader", || async {
            let mut views = Vec::new();
            for node in self.nodes.iter().filter(|n| n.is_running()) {
                let status = node
                    .status()
                    .await
                    .map_err(|e| format!("node {}: {e}", node.id()))?;
                views.push(status);
            }
            agreed_leader(&views)
        })
        .await
    }

    pub async fn leader(&self) -> &Node {
        let id = self.wait_for_leader().await;
        self.node(id)
    }

    /// Waits until every running node has applied everything the leader has committed, so an
    /// eventual read on any of them sees every acknowledged write. `revision` is the highest
    /// revision acknowledged to a client: Admin.Status is refreshed once per tick, so the
    /// leader's commit index is taken only once its status shows that revision applied.
    /// Returns that commit index.
    pub async fn wait_caught_up(&self, revision: i64) -> u64 {
        let leader = self.leader().await;
        let commit = wait_for(
            format!("leader {} to report revision {revision}", leader.id()),
            || async move {
                let status = leader.status().await.map_err(|e| e.to_string())?;
                match status.revision >= revision {
                    true => Ok(status.commit_index),
                    false => Err(format!("revision {}", status.revision)),
                }
            },
        )
        .await;
        for node in self.nodes.iter().filter(|n| n.is_running()) {
            wait_for(
                format!("node {} to apply index {commit}", node.id()),
                || async move {
                    let status = node.status().await.map_err(|e| e.to_string())?;
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
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for node in &self.nodes {
            eprintln!(
                "\n---------- node {} log ({}), last {LOG_LINES_ON_FAILURE} lines ----------\n{}",
                node.id(),
                node.spec.log_path.display(),
                node.log_tail(LOG_LINES_ON_FAILURE)
            );
        }
    }
}

/// The leader that every status in `views` names and that answers as the leader itself, or a
/// description of the disagreement.
pub fn agreed_leader(views: &[StatusResponse]) -> Result<u64, String> {
    let leader = views.first().map_or(0, |s| s.leader_id);
    let agreed = leader != 0 && views.iter().all(|s| s.leader_id == leader);
    let leads = views
        .iter()
        .any(|s| s.member_id == leader && s.role == RaftRole::Leader as i32);
    if agreed && leads {
        return Ok(leader);
    }
    Err(views
        .iter()
        .map(|s| {
            format!(
                "node {} leader {} term {} role {:?}",
                s.member_id,
                s.leader_id,
                s.term,
                RaftRole::try_from(s.role)
            )
        })
        .collect::<Vec<_>>()
        .join("; "))
}
