//! Scripted interaction tests in the style of etcd-io/raft's `testdata/*.txt`: a file in
//! `node/raft/testdata/` is a sequence of directives run on one network of cores (`net.rs`),
//! each followed by what it must print. A failure reads as a script, not as a seed; a
//! simulator seed that fails is turned into such a script by replaying its steps here.
//!
//! `REWRITE=1 cargo test -p dengine-raft scripts` rewrites the expected output after a change
//! that is meant to alter it (then read the diff).
//!
//! Directives (`N`, `M` are node ids):
//! - `founding voters=(1,2,3)`: a new cluster, nobody leading yet.
//! - `campaign node=N` / `pre-campaign node=N`: N starts an election now (forced, as a
//!   leadership transfer does / through pre-vote, as a timeout does), then `stabilize`.
//! - `tick node=N times=K` (or every node without `node`): K ticks, then `stabilize`.
//! - `propose node=N data=X`: a command on N, then `stabilize`.
//! - `add-learner node=N id=M`, `promote node=N id=M`, `remove node=N id=M`: a membership
//!   change proposed on N, then `stabilize`.
//! - `transfer node=N to=M`: N hands leadership to M, then `stabilize`.
//! - `cut from=N to=M`, `isolate node=N`, `heal`: links dropped and restored.
//! - `restart node=N`: N restarts from what it persisted.
//! - `lose-disk node=N`: N comes back empty under its id, waiting to be admitted.
//! - `stabilize`: every queued message delivered, until the network is quiet.
//! - `status`: each node's role, term, leader, commit, applied, last index, lease.
//! - `log node=N`: N's log, one entry a line.
//!
//! Every directive that delivers messages prints them, one a line, in delivery order.

use bytes::Bytes;
use datadriven::TestCase;

use super::net::Net;
use crate::proto::{ConfChange, ConfChangeType, EntryType};
use crate::{NodeId, Role};

/// The lease the `status` directive reports, in ticks (the node's default).
const LEASE_TICKS: u64 = 8;

#[test]
fn interaction_scripts() {
    let mut files = 0;
    datadriven::walk("testdata", |file| {
        files += 1;
        let mut net: Option<Net> = None;
        file.run(|case| match run(&mut net, case) {
            Ok(output) => output,
            Err(error) => format!("error: {error}\n"),
        });
    });
    // A missing or emptied directory must not pass as "every script held".
    assert!(
        files >= 4,
        "only {files} scripts found in node/raft/testdata"
    );
}

fn run(net: &mut Option<Net>, case: &mut TestCase) -> Result<String, String> {
    if case.directive == "founding" {
        let voters: Vec<NodeId> = case.take_args("voters").map_err(|e| e.to_string())?;
        let mut founded = Net::founding(&voters);
        founded.trace = Some(Vec::new());
        *net = Some(founded);
        return Ok("ok\n".into());
    }
    let net = net
        .as_mut()
        .ok_or("no network yet: start with `founding`")?;
    let mut printed = String::new();
    match case.directive.as_str() {
        "campaign" | "pre-campaign" => {
            let id = node_arg(net, case, "node")?;
            match case.directive.as_str() {
                "campaign" => net.node_mut(id).campaign(true),
                _ => net.node_mut(id).campaign_now(),
            }
            net.stabilize();
        }
        "tick" => {
            let times: u64 = case
                .try_take_arg("times")
                .map_err(|e| e.to_string())?
                .unwrap_or(1);
            let id: Option<NodeId> = case.try_take_arg("node").map_err(|e| e.to_string())?;
            for _ in 0..times {
                match id {
                    Some(id) => {
                        check(net, id)?;
                        net.tick(id)
                    }
                    None => net.tick_all(),
                }
            }
        }
        "propose" => {
            let id = node_arg(net, case, "node")?;
            let data: String = case.take_arg("data").map_err(|e| e.to_string())?;
            match net.node_mut(id).propose(Bytes::from(data)) {
                Ok((index, term)) => printed.push_str(&format!("proposed at {term}/{index}\n")),
                Err(error) => printed.push_str(&format!("refused: {error}\n")),
            }
            net.stabilize();
        }
        "add-learner" | "promote" | "remove" => {
            let id = node_arg(net, case, "node")?;
            let member: NodeId = case.take_arg("id").map_err(|e| e.to_string())?;
            let change_type = match case.directive.as_str() {
                "add-learner" => ConfChangeType::AddLearner,
                "promote" => ConfChangeType::PromoteLearner,
                _ => ConfChangeType::RemoveNode,
            };
            let change = ConfChange {
                change_type: change_type as i32,
                node_id: member,
                address: format!("n{member}"),
            };
            match net.node_mut(id).propose_conf_change(change) {
                Ok((index, term)) => printed.push_str(&format!("proposed at {term}/{index}\n")),
                Err(error) => printed.push_str(&format!("refused: {error}\n")),
            }
            net.stabilize();
        }
        "transfer" => {
            let id = node_arg(net, case, "node")?;
            let to: NodeId = case.take_arg("to").map_err(|e| e.to_string())?;
            if let Err(error) = net.node_mut(id).transfer_leadership(to) {
                printed.push_str(&format!("refused: {error}\n"));
            }
            net.stabilize();
        }
        "cut" => {
            let from: NodeId = case.take_arg("from").map_err(|e| e.to_string())?;
            let to: NodeId = case.take_arg("to").map_err(|e| e.to_string())?;
            net.cut(from, to);
        }
        "isolate" => {
            let id = node_arg(net, case, "node")?;
            net.isolate(id);
        }
        "heal" => net.heal(),
        "restart" => {
            let id = node_arg(net, case, "node")?;
            net.restart(id);
        }
        "lose-disk" => {
            let id = node_arg(net, case, "node")?;
            net.empty_and_rejoin(id);
        }
        "stabilize" => net.stabilize(),
        "status" => {
            for (id, raft) in &net.nodes {
                let role = match raft.role() {
                    Role::Leader => "leader",
                    Role::Candidate => "candidate",
                    Role::PreCandidate => "pre-candidate",
                    Role::Follower => "follower",
                };
                let log = raft.log();
                let lease = match raft.role() {
                    Role::Leader if raft.has_lease(LEASE_TICKS) => " lease",
                    _ => "",
                };
                printed.push_str(&format!(
                    "{id}: {role} term={} leader={} commit={} applied={} last={}{lease}\n",
                    raft.term(),
                    raft.leader().unwrap_or(0),
                    log.committed(),
                    log.applied(),
                    log.last_index(),
                ));
            }
        }
        "log" => {
            let id = node_arg(net, case, "node")?;
            let log = net.node(id).log();
            for index in log.snapshot_index() + 1..=log.last_index() {
                let Some(entry) = log.entry(index) else {
                    continue;
                };
                let what = match entry.entry_type() {
                    EntryType::Empty => "empty".to_string(),
                    EntryType::ConfChange => {
                        let change: ConfChange = prost::Message::decode(entry.data.as_ref())
                            .map_err(|e| e.to_string())?;
                        format!("{:?} {}", change.change_type(), change.node_id)
                    }
                    _ => String::from_utf8_lossy(&entry.data).into_owned(),
                };
                printed.push_str(&format!("{}/{} {what}\n", entry.term, entry.index));
            }
        }
        other => return Err(format!("unknown directive {other}")),
    }
    case.expect_empty().map_err(|e| e.to_string())?;
    let mut output = String::new();
    for line in net.trace.as_mut().map(std::mem::take).unwrap_or_default() {
        output.push_str(&line);
        output.push('\n');
    }
    output.push_str(&printed);
    if output.is_empty() {
        output.push_str("ok\n");
    }
    Ok(output)
}

/// The node named by argument `name`, which must be on the network.
fn node_arg(net: &Net, case: &mut TestCase, name: &str) -> Result<NodeId, String> {
    let id: NodeId = case.take_arg(name).map_err(|e| e.to_string())?;
    check(net, id)?;
    Ok(id)
}

fn check(net: &Net, id: NodeId) -> Result<(), String> {
    match net.nodes.contains_key(&id) {
        true => Ok(()),
        false => Err(format!("no node {id}")),
    }
}
