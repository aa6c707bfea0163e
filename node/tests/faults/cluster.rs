//! Three (or more) proxied members founded together, in one temporary directory; members
//! that join later (in `--join` mode, under ids never used before) and members removed from
//! the cluster, whose logs are kept for the report.

use std::time::Duration;

use dengine::proto::RaftRole;
use tempfile::TempDir;

use super::common::{free_ports, wait_for, NodeSpec};
use super::member::{Condition, Member};
use super::proxy::{Mode, Proxy};
use super::senders::Senders;

/// Lines of each node's log printed when the test fails.
const LOG_LINES_ON_FAILURE: usize = 200;

pub struct FaultCluster {
    pub members: Vec<Member>,
    /// `proxies[i]` stands in front of `members[i]`.
    pub proxies: Vec<Proxy>,
    /// Members removed from the cluster, stopped, with their proxies.
    pub retired: Vec<(Member, Proxy)>,
    /// The id the next joining member gets: ids are never reused.
    next_id: u64,
    config_file: std::path::PathBuf,
    extra_args: Vec<String>,
    /// Which process runs which node, for the proxies.
    senders: Senders,
    /// Data and logs; removed when the cluster is dropped.
    dir: TempDir,
}

impl FaultCluster {
    /// Starts `size` members whose peers reach each other through proxies, with `extra_args`
    /// and a config file holding `config_toml` (settings that have no flag), and waits until
    /// they agree on a leader.
    pub async fn start(size: u64, extra_args: &[&str], config_toml: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("dengine-faults-")
            .tempdir()
            .expect("create a temporary directory");
        let config_file = dir.path().join("node.toml");
        std::fs::write(&config_file, config_toml).expect("write the node config file");
        // Per member: client port, the port it listens on for peers, its proxy's port.
        let ports = free_ports(3 * size as usize);
        let port = |id: u64, which: usize| ports[3 * (id as usize - 1) + which];
        let initial_cluster = (1..=size)
            .map(|id| format!("{id}=127.0.0.1:{}", port(id, 2)))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        let mut proxies = Vec::new();
        let senders = Senders::default();
        for id in 1..=size {
            let spec = NodeSpec {
                id,
                client_port: port(id, 0),
                peer_port: port(id, 2),
                data_dir: dir.path().join(format!("node-{id}")),
                log_path: dir.path().join(format!("node-{id}.log")),
                initial_cluster: Some(initial_cluster.clone()),
                cluster_token: Some("faults".into()),
                config_file: Some(config_file.clone()),
                extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            };
            proxies.push(Proxy::start(port(id, 2), port(id, 1), senders.clone()).await);
            members.push(Member::new(spec, port(id, 1), senders.clone()));
        }
        let mut cluster = Self {
            members,
            proxies,
            retired: Vec::new(),
            next_id: size + 1,
            config_file,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            senders,
            dir,
        };
        // All at once, as founding members start (a founder that starts after the others have
        // committed waits to be admitted).
        futures::future::join_all(cluster.members.iter_mut().map(|member| member.start())).await;
        cluster.wait_for_leader().await;
        cluster
    }

    /// Starts a new node in `--join` mode, under an id never used before, behind a proxy of
    /// its own, and appends it to `members`. Returns its index. It is not a member of the
    /// cluster until the leader adds it.
    pub async fn start_joiner(&mut self) -> usize {
        let id = self.next_id;
        self.next_id += 1;
        let ports = free_ports(3);
        let mut extra_args = self.extra_args.clone();
        extra_args.push("--join".into());
        let spec = NodeSpec {
            id,
            client_port: ports[0],
            peer_port: ports[2],
            data_dir: self.dir.path().join(format!("node-{id}")),
            log_path: self.dir.path().join(format!("node-{id}.log")),
            initial_cluster: None,
            cluster_token: None,
            config_file: Some(self.config_file.clone()),
            extra_args,
        };
        self.proxies
            .push(Proxy::start(ports[2], ports[1], self.senders.clone()).await);
        self.members
            .push(Member::new(spec, ports[1], self.senders.clone()));
        let index = self.members.len() - 1;
        self.members[index].start().await;
        index
    }

    /// Stops the member at `index` (`kill -9`, if it runs) and moves it, with its proxy, to
    /// `retired`: it is no longer part of the cluster.
    pub fn retire(&mut self, index: usize) {
        let mut member = self.members.remove(index);
        let proxy = self.proxies.remove(index);
        if member.condition() != Condition::Killed {
            if member.condition() == Condition::Paused {
                member.resume();
            }
            member.kill();
        }
        member.note(&format!(
            "===== faults: node {} left the cluster and was stopped",
            member.id()
        ));
        self.retired.push((member, proxy));
    }

    /// Cuts members `a` and `b` (indexes) off from each other, both ways, as `mode` says;
    /// `Mode::Forward` joins them again.
    pub fn cut_pair(&self, a: usize, b: usize, mode: Mode) {
        let (id_a, id_b) = (self.members[a].id(), self.members[b].id());
        self.proxies[a].set_for(id_b, mode);
        self.proxies[b].set_for(id_a, mode);
    }

    /// Cuts member `index` off from every other member, both ways.
    pub fn isolate_both_ways(&self, index: usize, mode: Mode) {
        for other in 0..self.members.len() {
            if other != index {
                self.cut_pair(index, other, mode);
            }
        }
    }

    pub fn index_of(&self, id: u64) -> Option<usize> {
        self.members.iter().position(|m| m.id() == id)
    }

    /// The member that says it leads, at the highest term, among those that answer.
    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (index, member) in self.members.iter().enumerate() {
            if member.condition() != Condition::Running {
                continue;
            }
            let answer = tokio::time::timeout(Duration::from_millis(500), member.status()).await;
            if let Ok(Ok(status)) = answer {
                if status.role == RaftRole::Leader as i32
                    && best.is_none_or(|(term, _)| status.term > term)
                {
                    best = Some((status.term, index));
                }
            }
        }
        best.map(|(_, index)| index)
    }

    /// Waits until every running member names the same leader, and that member says it leads.
    /// Returns the leader's index.
    pub async fn wait_for_leader(&self) -> usize {
        wait_for("every running member to agree on a leader", || async {
            let mut views = Vec::new();
            for member in &self.members {
                if member.condition() != Condition::Running {
                    continue;
                }
                let status = member
                    .status()
                    .await
                    .map_err(|e| format!("node {}: {e}", member.id()))?;
                views.push(status);
            }
            let leader = views.first().map_or(0, |s| s.leader_id);
            let agreed = leader != 0 && views.iter().all(|s| s.leader_id == leader);
            let leads = views
                .iter()
                .any(|s| s.member_id == leader && s.role == RaftRole::Leader as i32);
            match agreed && leads {
                true => Ok(self
                    .members
                    .iter()
                    .position(|m| m.id() == leader)
                    .expect("the leader is a member")),
                false => Err(views
                    .iter()
                    .map(|s| {
                        format!(
                            "node {} leader {} term {}",
                            s.member_id, s.leader_id, s.term
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")),
            }
        })
        .await
    }

    /// Waits until every member has applied everything the leader committed, and all report
    /// the same revision. Returns that revision.
    pub async fn wait_converged(&self) -> i64 {
        let leader = self.wait_for_leader().await;
        let commit = wait_for("the leader to answer its status", || async {
            self.members[leader]
                .status()
                .await
                .map(|s| s.commit_index)
                .map_err(|e| e.to_string())
        })
        .await;
        wait_for(
            format!("every member to apply the leader's commit index {commit} and agree on the revision"),
            || async {
                let mut revisions = Vec::new();
                for member in &self.members {
                    let status = member.status().await.map_err(|e| e.to_string())?;
                    if status.applied_index < commit {
                        return Err(format!(
                            "node {} applied {} of {commit}",
                            member.id(),
                            status.applied_index
                        ));
                    }
                    revisions.push(status.revision);
                }
                match revisions.windows(2).all(|w| w[0] == w[1]) {
                    true => Ok(revisions[0]),
                    false => Err(format!("revisions {revisions:?}")),
                }
            },
        )
        .await
    }
}

impl Drop for FaultCluster {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let retired = self.retired.iter().map(|(m, _)| m);
        for member in self.members.iter().chain(retired) {
            eprintln!(
                "\n---------- node {} log ({}), last {LOG_LINES_ON_FAILURE} lines ----------\n{}",
                member.id(),
                member.spec.log_path.display(),
                member.log_tail(LOG_LINES_ON_FAILURE)
            );
        }
    }
}
