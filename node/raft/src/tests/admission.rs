//! A member that lost its disk and comes back under its old id holds none of the log or the
//! votes it once acknowledged. It must not vote until the cluster has removed it and added it
//! back as a learner, and it must hold that configuration before it counts as admitted.

use super::net::Net;
use crate::proto::{ConfChangeType, Message, MessageType};
use crate::Role;

fn forced_vote_request(from: u64, to: u64, term: u64, index: u64, log_term: u64) -> Message {
    Message {
        msg_type: MessageType::Vote as i32,
        from,
        to,
        term,
        index,
        log_term,
        context: bytes::Bytes::from_static(crate::TRANSFER_CONTEXT),
        ..Default::default()
    }
}

#[test]
fn an_emptied_member_is_not_admitted_on_a_prefix_of_the_log() {
    // Found in review: admission was granted as soon as the latest configuration received so
    // far listed the node as a learner. An append that ends between an earlier "add 3 as a
    // learner" and "promote 3" made it a voter that held part of the log.
    use ConfChangeType::{AddLearner, PromoteLearner, RemoveNode};
    let mut net = Net::founding(&[1, 2, 3]);
    net.elect(1); // no-op at 7
                  // Node 3 was replaced once already: removed, added back as a learner, promoted.
    net.propose_change(1, RemoveNode, 3); // 8
    net.empty_and_rejoin(3);
    let first_added_at = net.propose_change(1, AddLearner, 3); // 9
    for i in 0..11 {
        net.propose(1, &format!("write {i}")); // 10..=20
    }
    net.tick_all();
    let promoted_at = net.propose_change(1, PromoteLearner, 3); // 21
    assert!(!net.node(3).awaiting_admission());
    for i in 11..25 {
        net.propose(1, &format!("write {i}")); // 22..=35
    }
    // It loses its disk again; the cluster removes it and adds it back as a learner.
    net.propose_change(1, RemoveNode, 3); // 36
    net.empty_and_rejoin(3);
    net.hold(|m| m.to == 3);
    let added_at = net.propose_change(1, AddLearner, 3); // 37
    net.tick(1); // a heartbeat starts the probing
                 // Appends carry 16 entries: the first ends between the earlier "add 3" and "promote 3",
                 // the second after that promotion and before the current "add 3".
    assert!(first_added_at <= 16 && (17..=32).contains(&promoted_at) && added_at > 32);
    // Node 3 receives the leader's appends until it holds the first 32 entries.
    while net.node(3).log().last_index() < 32 {
        assert!(!net.held.is_empty(), "the leader stopped sending to node 3");
        let message = net.held.remove(0);
        net.deliver_now(message);
    }
    assert!(net.node(3).log().last_index() < added_at);
    assert!(
        net.node(3).awaiting_admission(),
        "admitted on a prefix of the log"
    );
    // It neither campaigns nor votes while it waits.
    net.stop_holding();
    net.isolate(3);
    for _ in 0..3 * net.node(3).config.election_ticks {
        net.tick(3);
        assert_eq!(net.node(3).role(), Role::Follower);
    }
    let (last, last_term) = (
        net.node(2).log().last_index(),
        net.node(2).log().last_term(),
    );
    let term = net.node(3).term() + 1;
    net.deliver_now(forced_vote_request(2, 3, term, last, last_term));
    assert_eq!(net.node(3).hard_state().vote, 0, "it granted a vote");
    // Given the whole log, it is admitted as the learner it is, and may vote once promoted.
    net.heal();
    net.held.clear();
    net.elect(1); // above node 3's term, which the vote request raised
    for _ in 0..3 {
        net.tick_all();
    }
    assert_eq!(
        net.node(3).log().last_index(),
        net.node(1).log().last_index()
    );
    assert!(!net.node(3).awaiting_admission());
    assert!(net.node(3).membership().is_learner(3));
    net.propose_change(1, PromoteLearner, 3);
    assert!(net.node(3).membership().is_voter(3));
}

#[test]
fn an_emptied_member_still_listed_as_a_voter_catches_up_but_does_not_vote() {
    // Found in review: the leader never probed below the follower's old match index, so a
    // member that came back empty under its id never received the log.
    let mut net = Net::founding(&[1, 2, 3]);
    net.elect(1);
    for i in 0..20 {
        net.propose(1, &format!("write {i}"));
    }
    // No write follows: heartbeats alone must tell the leader that node 3 lost its log.
    net.empty_and_rejoin(3);
    for _ in 0..5 {
        net.tick_all();
    }
    assert_eq!(
        net.node(3).log().last_index(),
        net.node(1).log().last_index(),
        "the emptied member never caught up"
    );
    assert!(net.node(3).membership().is_voter(3));
    assert!(
        net.node(3).awaiting_admission(),
        "still under its old voter id"
    );
}
