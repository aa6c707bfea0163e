//! The simulated network: messages delayed, lost, duplicated and reordered, and partitions
//! (symmetric, between groups of nodes, or one-way, cutting what reaches one node).

use std::collections::{BTreeMap, BTreeSet};

use crate::proto::Message;
use crate::raft::{NodeId, Rng};

/// What the network does to messages.
#[derive(Debug, Clone)]
pub struct Weather {
    pub loss: f64,
    pub duplicate: f64,
    /// Delays are drawn from 1..=max_delay_ms.
    pub max_delay_ms: u64,
}

impl Weather {
    pub fn calm() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            max_delay_ms: 3,
        }
    }
}

pub struct InFlight<T> {
    pub deliver_at: u64,
    pub seq: u64,
    pub item: T,
}

#[derive(Default)]
pub struct Network {
    messages: Vec<InFlight<Message>>,
    seq: u64,
    /// Node to group; nodes in different groups cannot talk. Absent means group 0.
    groups: BTreeMap<NodeId, u8>,
    /// Nodes that receive nothing (a one-way partition: what they send still arrives).
    deaf: BTreeSet<NodeId>,
    /// Links that drop everything: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
}

impl Network {
    pub fn can_talk(&self, from: NodeId, to: NodeId) -> bool {
        let group = |id| self.groups.get(&id).copied().unwrap_or(0);
        group(from) == group(to) && !self.deaf.contains(&to) && !self.cut.contains(&(from, to))
    }

    /// Drops everything `from` sends to `to` from now on.
    pub fn cut(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    /// Splits the nodes: `group` on one side, everyone else on the other.
    pub fn partition(&mut self, group: &[NodeId]) {
        self.groups = group.iter().map(|&id| (id, 1)).collect();
    }

    /// `id` hears nothing from now on, though what it sends arrives.
    pub fn deafen(&mut self, id: NodeId) {
        self.deaf.insert(id);
    }

    pub fn heal(&mut self) {
        self.groups.clear();
        self.deaf.clear();
        self.cut.clear();
    }

    /// Sends `message` at `now`, as the weather allows. Returns whether it (or a copy) left.
    pub fn send(&mut self, now: u64, message: Message, weather: &Weather, rng: &mut Rng) -> bool {
        if !self.can_talk(message.from, message.to) || rng.chance(weather.loss) {
            return false;
        }
        let copies = if rng.chance(weather.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            self.seq += 1;
            self.messages.push(InFlight {
                deliver_at: now + rng.range(1, weather.max_delay_ms.max(1) + 1),
                seq: self.seq,
                item: message.clone(),
            });
        }
        true
    }

    /// Messages due by `now`, in delivery order, that may still cross the network.
    pub fn due(&mut self, now: u64) -> Vec<Message> {
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.messages)
            .into_iter()
            .partition(|m| m.deliver_at <= now);
        self.messages = later;
        due.sort_by_key(|m| (m.deliver_at, m.seq));
        due.into_iter()
            .map(|m| m.item)
            .filter(|m| self.can_talk(m.from, m.to))
            .collect()
    }
}
