//! d-engine embedded in this process (`dengine::embedded`), driven through its client handle:
//! no protobuf encoding and no network between the benchmark and the node.

use std::path::PathBuf;
use std::time::Duration;

use dengine::embedded::{Client, Compare, Embedded, EmbeddedNode, NodeConfig, ReadPolicy};
use dengine::proto::admin_client::AdminClient;
use dengine::proto::TransferLeadershipRequest;

use super::{connect, OpError, Operation, Outcome};
use crate::cli::{ReadFrom, RunArgs};
use crate::mix::Op;

pub struct EmbeddedTarget {
    node: EmbeddedNode,
    client: Client,
    /// The temporary data directory, removed when the target is closed.
    _dir: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    cluster: bool,
}

impl EmbeddedTarget {
    /// Starts the node: a single node, or with `--embedded-initial-cluster` a founding member
    /// of a cluster whose other members are `node` processes (their client endpoints in
    /// `--endpoints`, used to move leadership to or away from this node per `--read-from`).
    pub async fn start(args: &RunArgs) -> anyhow::Result<Self> {
        let (dir, data_dir) = match &args.embedded_data_dir {
            Some(path) => (None, path.clone()),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("dengine-bench-embedded-")
                    .tempdir()?;
                let path = dir.path().to_path_buf();
                (Some(dir), path)
            }
        };
        let cluster = args.embedded_initial_cluster.is_some();
        let embedded = match &args.embedded_initial_cluster {
            None => Embedded::single_node(&data_dir),
            Some(members) => {
                let mut config = NodeConfig {
                    id: args.embedded_id,
                    data_dir: Some(data_dir.clone()),
                    initial_cluster: Some(members.clone()),
                    ..NodeConfig::default()
                };
                if let Some(peer) = &args.embedded_peer_listen {
                    config.peer_listen = peer
                        .parse()
                        .map_err(|e| anyhow::anyhow!("--embedded-peer-listen {peer}: {e}"))?;
                }
                if let Some(token) = &args.embedded_cluster_token {
                    config.cluster_token = token.clone();
                }
                Embedded::from_config(config)
            }
        };
        let node = embedded
            .start()
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the embedded node: {e}"))?;
        node.wait_ready(Duration::from_secs(60))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let client = node.client();
        let target = Self {
            node,
            client,
            _dir: dir,
            data_dir,
            cluster,
        };
        if cluster {
            target.place_leadership(args).await?;
        }
        Ok(target)
    }

    /// Moves leadership to this node (`--read-from leader`) or away from it (`follower`).
    async fn place_leadership(&self, args: &RunArgs) -> anyhow::Result<()> {
        let me = self.node.id();
        let want_leader = match args.read_from {
            ReadFrom::Leader => true,
            ReadFrom::Follower => false,
            ReadFrom::Any => return Ok(()),
        };
        for _ in 0..5 {
            let role = self.node.role();
            if role.is_leader == want_leader && role.leader_id.is_some() {
                return Ok(());
            }
            let (members, leader) = super::dengine::members(&args.endpoints).await?;
            let target = if want_leader {
                me
            } else {
                members
                    .iter()
                    .map(|(_, id)| *id)
                    .find(|id| *id != me)
                    .ok_or_else(|| anyhow::anyhow!("--endpoints lists no other member"))?
            };
            // The leader's endpoint; when this node leads, any other member forwards.
            let endpoint = members
                .iter()
                .find(|(_, id)| *id == leader)
                .or_else(|| members.first())
                .map(|(e, _)| e.clone())
                .ok_or_else(|| anyhow::anyhow!("--endpoints is empty"))?;
            let mut admin = AdminClient::new(connect(&endpoint, Duration::from_secs(10)).await?);
            if let Err(e) = admin
                .transfer_leadership(TransferLeadershipRequest { target_id: target })
                .await
            {
                eprintln!("moving leadership to {target} through {endpoint}: {e}");
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while tokio::time::Instant::now() < deadline {
                let role = self.node.role();
                if role.is_leader == want_leader && role.leader_id.is_some() {
                    return Ok(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        anyhow::bail!(
            "could not make the embedded node {me} {}",
            if want_leader {
                "the leader"
            } else {
                "a follower"
            }
        )
    }

    pub fn describe(&self) -> String {
        let role = self.node.role();
        format!(
            "in-process node {} ({}{}, {})",
            self.node.id(),
            if self.cluster {
                "cluster member, "
            } else {
                "single node, "
            },
            if role.is_leader { "leader" } else { "follower" },
            self.data_dir.display()
        )
    }

    pub async fn execute(&self, operation: Operation) -> Result<Outcome, OpError> {
        let (op, key, value, expected) = operation.parts();
        let c = &self.client;
        let read = |policy| {
            let key = key.clone();
            async move { c.get_with(&key, policy).await.map(|_| Outcome::default()) }
        };
        let result = match op {
            Op::Write => c.put(&key, &value).await.map(|r| Outcome {
                mod_revision: Some(r.header.revision),
                cas_succeeded: None,
            }),
            Op::LinearizableRead => read(ReadPolicy::Linearizable).await,
            Op::LeaseRead => read(ReadPolicy::Lease).await,
            Op::EventualRead => read(ReadPolicy::Eventual).await,
            Op::Cas => c
                .compare_and_swap(&key, Compare::ModRevision(expected), &value)
                .await
                .map(|r| Outcome {
                    mod_revision: Some(if r.succeeded {
                        r.header.revision
                    } else {
                        r.current.map_or(0, |kv| kv.mod_revision)
                    }),
                    cas_succeeded: Some(r.succeeded),
                }),
        };
        result.map_err(|e| OpError::other(&format!("{:?}", e.code()), e.to_string()))
    }

    pub async fn close(self) -> anyhow::Result<()> {
        self.node
            .shutdown()
            .await
            .map_err(|e| anyhow::anyhow!("stopping the embedded node: {e}"))
    }
}
