//! Whether founding a cluster on an empty data directory is still safe.
//!
//! A founding member writes the founding configuration and may vote at once: right on the
//! cluster's first start. Started again on an empty data directory after the cluster has run
//! (its disk was lost, or it is started late), it would vote without the votes and the log it
//! may have acknowledged before, and a committed entry could be lost. It cannot tell the two
//! cases apart, so before founding it asks the other founding members, as etcd does before it
//! bootstraps a member. If any of them answers that the cluster has committed more than its
//! founding entries, the node starts as a member waiting to be admitted (as `--join` does): it
//! receives the log but does not vote until the cluster removes it and adds it back.
//!
//! Best effort: members that cannot be reached say nothing, and a one-member cluster has no one
//! to ask (the operator never starts a founder after the founding record is written).

use std::time::Duration;

use super::config::NodeConfig;
use super::tls::{peer_endpoint, Tls};
use crate::proto::admin_client::AdminClient;
use crate::proto::StatusRequest;
use crate::raft::NodeId;

/// How long each founding member has to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// What another founding member says of the cluster it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerView {
    pub id: NodeId,
    pub address: String,
    pub cluster_id: u64,
    pub term: u64,
    pub commit: u64,
}

/// The evidence that the cluster `cluster_id`, founded with `founding_entries` entries, has run
/// beyond its founding, or `None`.
pub fn evidence_of_a_running_cluster(
    views: &[PeerView],
    cluster_id: u64,
    founding_entries: u64,
) -> Option<String> {
    views
        .iter()
        .find(|view| view.cluster_id == cluster_id && view.commit > founding_entries)
        .map(|view| {
            format!(
                "node {} at {} reports cluster {:x} at term {} with commit index {} (the founding \
                 entries end at {founding_entries})",
                view.id, view.address, view.cluster_id, view.term, view.commit
            )
        })
}

/// Asks every other founding member of `config` for its view, in parallel; those that do not
/// answer in time are left out.
pub async fn ask_founding_members(config: &NodeConfig, tls: Option<&Tls>) -> Vec<PeerView> {
    let Ok(members) = config.founding_members() else {
        return Vec::new();
    };
    let asks =
        members
            .into_iter()
            .filter(|(id, _)| *id != config.id)
            .map(|(id, address)| async move {
                let endpoint = peer_endpoint(&address, tls)
                    .ok()?
                    .connect_timeout(ASK_TIMEOUT);
                let ask = async {
                    let channel = endpoint.connect().await.ok()?;
                    let status = AdminClient::new(channel)
                        .status(StatusRequest {})
                        .await
                        .ok()?
                        .into_inner();
                    Some(PeerView {
                        id,
                        address: address.clone(),
                        cluster_id: status.cluster_id,
                        term: status.term,
                        commit: status.commit_index,
                    })
                };
                tokio::time::timeout(ASK_TIMEOUT, ask).await.ok().flatten()
            });
    futures::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(cluster_id: u64, term: u64, commit: u64) -> PeerView {
        PeerView {
            id: 2,
            address: "b:2380".into(),
            cluster_id,
            term,
            commit,
        }
    }

    #[test]
    fn only_a_commit_beyond_the_founding_entries_of_the_same_cluster_counts() {
        assert_eq!(evidence_of_a_running_cluster(&[], 7, 6), None);
        // Still founding: elections may have happened, nothing is committed.
        assert_eq!(evidence_of_a_running_cluster(&[view(7, 3, 6)], 7, 6), None);
        // Another cluster's member says nothing about ours.
        assert_eq!(evidence_of_a_running_cluster(&[view(8, 3, 90)], 7, 6), None);
        let evidence = evidence_of_a_running_cluster(&[view(7, 1, 6), view(7, 2, 7)], 7, 6);
        assert!(evidence.unwrap().contains("commit index 7"));
    }
}
