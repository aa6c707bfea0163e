//! Lease reads: a leader serves reads from its own state while a quorum answered its
//! heartbeats within `lease_ticks`, because each of those voters promised not to help elect
//! anyone else for an election timeout after hearing from it. Every way of breaking that promise
//! lets two leaders serve at once, and the old one answer with a value the new one overwrote.

use super::net::Net;
use crate::proto::MessageType;
use crate::{NodeId, Role};

const LEASE_TICKS: u64 = 8;

/// Fails if `old` believes it holds a lease while another node leads a later term.
fn assert_no_lease_beside_a_newer_leader(net: &Net, old: NodeId) {
    let holds_lease = net.node(old).has_lease(LEASE_TICKS);
    for (id, term) in net.leaders() {
        assert!(
            id == old || !holds_lease || term <= net.node(old).term(),
            "node {old} holds a lease (term {}) while node {id} leads term {term}",
            net.node(old).term()
        );
    }
}

#[test]
fn a_voter_restarted_within_the_leaders_lease_does_not_help_elect_another_leader() {
    // Found in review: a restarted voter starts with no leader, so it granted (pre-)votes at
    // once although it had acknowledged the leader's heartbeat a moment before.
    let mut net = Net::founding(&[1, 2, 3]);
    net.elect(1);
    // Node 3 stops hearing from node 1 and keeps timing out; node 2 hears node 1 every
    // heartbeat and refuses it.
    net.cut(1, 3);
    net.cut(3, 1);
    for _ in 0..40 {
        net.tick_all();
    }
    assert_eq!(
        net.leaders().iter().map(|l| l.0).collect::<Vec<_>>(),
        vec![1]
    );
    assert!(net.node(1).has_lease(LEASE_TICKS));
    // Node 2 restarts just before node 3's next campaign, and node 1's next heartbeat to it is
    // lost.
    while net.node(3).election_elapsed + 1 < net.node(3).randomized_election_timeout {
        net.tick_all();
    }
    net.restart(2);
    net.cut(1, 2);
    for _ in 0..40 {
        net.tick_all();
        assert_no_lease_beside_a_newer_leader(&net, 1);
    }
    // Once node 1's lease has run out, nodes 2 and 3 elect a leader between them.
    assert!(net.leaders().iter().any(|&(id, _)| id != 1));
}

#[test]
fn a_leader_that_sent_timeout_now_holds_no_lease_for_the_rest_of_its_term() {
    // Found in review: a transfer that timed out cleared its target and the lease came back,
    // but the TimeoutNow already sent can still arrive and elect the target with votes that
    // ignore leases.
    let mut net = Net::founding(&[1, 2, 3]);
    net.elect(1);
    net.tick_all();
    assert!(net.node(1).has_lease(LEASE_TICKS));
    net.hold(|m| m.msg_type() == MessageType::TimeoutNow);
    net.node_mut(1).transfer_leadership(2).unwrap();
    net.stabilize();
    assert_eq!(
        net.held.len(),
        1,
        "node 2 was caught up: TimeoutNow goes at once"
    );
    // The transfer times out; node 1 leads on, hearing from a quorum every heartbeat.
    for _ in 0..net.node(1).config.election_ticks {
        net.tick_all();
    }
    assert_eq!(net.node(1).transfer_target, None);
    assert_eq!(net.node(1).role(), Role::Leader);
    // The TimeoutNow arrives late; node 1 has not heard of the outcome yet.
    net.stop_holding();
    net.cut(2, 1);
    net.cut(3, 1);
    let timeout_now = net.held.pop().expect("held");
    net.deliver_now(timeout_now);
    assert_eq!(net.node(2).role(), Role::Leader);
    assert_no_lease_beside_a_newer_leader(&net, 1);
}

#[test]
fn a_lease_needs_a_quorum_answer_to_a_heartbeat_sent_in_the_leaders_own_term() {
    let mut net = Net::founding(&[1, 2, 3]);
    net.elect(1);
    assert!(
        !net.node(1).has_lease(LEASE_TICKS),
        "no heartbeat answered yet"
    );
    net.tick_all();
    assert!(net.node(1).has_lease(LEASE_TICKS));
    // Cut off, the lease runs out after `lease_ticks`, well before anyone can campaign.
    net.isolate(1);
    for _ in 0..LEASE_TICKS - 1 {
        net.tick_all();
    }
    assert!(net.node(1).has_lease(LEASE_TICKS));
    net.tick_all();
    assert!(!net.node(1).has_lease(LEASE_TICKS));
}
