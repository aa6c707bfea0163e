//! What a node promises to others rests on what it has persisted.

use super::net::Net;
use crate::proto::{ConfChangeType, MessageType};

#[test]
fn the_messages_of_a_new_term_wait_until_its_term_and_vote_are_durable() {
    // Found in review: a lone voter wins an election inside one tick and its first append left
    // before the new term was on disk. After a crash it could win the same term again and
    // write other entries at the same index and term, while a learner kept the first ones.
    let mut net = Net::founding(&[1]);
    net.elect(1);
    net.empty_and_rejoin(2);
    net.propose_change(1, ConfChangeType::AddLearner, 2);
    net.tick_all();
    assert_eq!(
        net.node(2).log().last_index(),
        net.node(1).log().last_index()
    );
    net.restart(1);
    net.node_mut(1).campaign_now();
    net.node_mut(1)
        .propose(bytes::Bytes::from_static(b"first write"))
        .unwrap();
    let ready = net.node_mut(1).ready();
    assert!(ready.term_or_vote_changed);
    assert!(!ready.entries.is_empty());
    let early: Vec<_> = ready.messages.iter().map(|m| m.msg_type()).collect();
    assert!(
        early.is_empty(),
        "{early:?} would leave before the new term is on disk"
    );
    assert!(ready
        .messages_after_persist
        .iter()
        .any(|m| m.msg_type() == MessageType::Append && m.to == 2));
}
