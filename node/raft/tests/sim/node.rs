//! A simulated node: a Raft core, a disk that keeps only what was persisted, and a toy state
//! machine (a set of write ids and a revision counter), driven by the `Ready` contract.

use std::collections::{BTreeMap, BTreeSet};

use dengine_raft::proto::{ConfChange, Entry, EntryType, HardState, Message, SnapshotMetadata};
use dengine_raft::{Config, LogIndex, Membership, NodeId, Raft, Term};
use prost::Message as _;

use super::checker::Checker;

/// Snapshot every this many applied entries, keeping a few entries behind it in the log.
const SNAPSHOT_EVERY: u64 = 25;
const KEEP_AFTER_SNAPSHOT: u64 = 5;

#[derive(Default, Clone)]
struct Disk {
    hard_state: HardState,
    snapshot_meta: SnapshotMetadata,
    snapshot_data: Vec<u8>,
    entries: Vec<Entry>,
}

#[derive(Default, Clone)]
struct StateMachine {
    applied: LogIndex,
    applied_term: Term,
    revision: u64,
    writes: BTreeSet<u64>,
    membership: Membership,
}

impl StateMachine {
    fn encode(&self) -> Vec<u8> {
        let mut out = self.revision.to_be_bytes().to_vec();
        for w in &self.writes {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    fn restore(meta: &SnapshotMetadata, data: &[u8]) -> Self {
        let mut chunks = data
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().expect("8 bytes")));
        let revision = chunks.next().unwrap_or(0);
        Self {
            applied: meta.index,
            applied_term: meta.term,
            revision,
            writes: chunks.collect(),
            membership: Membership::from_conf_state(
                &meta.conf_state.clone().unwrap_or_default(),
                meta.addresses.clone().into_iter().collect(),
            ),
        }
    }
}

pub struct SimNode {
    pub id: NodeId,
    seed: u64,
    pub raft: Option<Raft>,
    /// What reads of the disk see: every write, fsynced or not.
    disk: Disk,
    /// What survives a crash: the disk as of the last fsync (an fsync makes every earlier
    /// write durable, as with one write-ahead log).
    durable: Disk,
    sm: StateMachine,
    /// Writes proposed here: log index to (write id, term).
    proposed: BTreeMap<LogIndex, (u64, Term)>,
    /// Reads started here: request id to the number of writes acknowledged before it began.
    reads: BTreeMap<u64, usize>,
    /// Reads confirmed, waiting for the state machine to apply their index.
    confirmed_reads: Vec<(LogIndex, usize)>,
    restarts: u64,
    /// The fault plan: crash at the next fsync, before it completes.
    pub crash_at_next_fsync: bool,
    /// The highest index applied in any earlier life of this node.
    max_applied_ever: LogIndex,
}

fn config(id: NodeId) -> Config {
    let mut config = Config::new(id);
    config.max_inflight = 8;
    config.max_append_entries = 16;
    config
}

impl SimNode {
    pub fn founding(id: NodeId, members: &[(NodeId, String)], seed: u64) -> Self {
        let entries = Raft::bootstrap_entries(members);
        let disk = Disk {
            hard_state: HardState {
                term: 1,
                vote: 0,
                commit: entries.len() as u64,
            },
            entries,
            ..Default::default()
        };
        Self::boot(id, disk, seed)
    }

    pub fn joining(id: NodeId, seed: u64) -> Self {
        Self::boot(id, Disk::default(), seed)
    }

    fn boot(id: NodeId, disk: Disk, seed: u64) -> Self {
        let mut node = Self {
            id,
            seed,
            raft: None,
            durable: disk.clone(),
            disk,
            sm: StateMachine::default(),
            proposed: BTreeMap::new(),
            reads: BTreeMap::new(),
            confirmed_reads: Vec::new(),
            restarts: 0,
            crash_at_next_fsync: false,
            max_applied_ever: 0,
        };
        node.start();
        node
    }

    fn start(&mut self) {
        let meta = self.disk.snapshot_meta.clone();
        let entries: Vec<Entry> = self
            .disk
            .entries
            .iter()
            .filter(|e| e.index > meta.index)
            .cloned()
            .collect();
        self.sm = StateMachine::restore(&meta, &self.disk.snapshot_data);
        self.raft = Some(Raft::new(
            config(self.id),
            self.disk.hard_state,
            meta.clone(),
            entries,
            meta.index,
            self.seed.wrapping_add(self.restarts * 7919),
        ));
    }

    pub fn crash(&mut self) {
        self.crash_at_next_fsync = false;
        self.disk = self.durable.clone();
        if self.raft.take().is_some() {
            self.max_applied_ever = self.max_applied_ever.max(self.sm.applied);
            self.proposed.clear();
            self.reads.clear();
            self.confirmed_reads.clear();
        }
    }

    pub fn restart(&mut self, checker: &mut Checker) {
        self.restarts += 1;
        // Everything this node ever applied must still be on its disk, in the log or the
        // snapshot: entries are fsynced before they are applied, so once the leader tells it
        // the commit index again (its own may have been lost with an unsynced write) it
        // replays at least that far.
        let durable_last = self
            .disk
            .entries
            .last()
            .map_or(self.disk.snapshot_meta.index, |e| e.index)
            .max(self.disk.snapshot_meta.index);
        assert!(
            durable_last >= self.max_applied_ever,
            "node {} applied up to {} before crashing but its disk ends at {}",
            self.id,
            self.max_applied_ever,
            durable_last
        );
        self.start();
        checker.node_restarted(self.id, self.disk.snapshot_meta.index);
    }

    pub fn applied_index(&self) -> LogIndex {
        if self.raft.is_some() {
            self.sm.applied
        } else {
            0
        }
    }

    pub fn has_write(&self, write: u64) -> bool {
        self.sm.writes.contains(&write)
    }

    pub fn propose_write(&mut self, write: u64) {
        let Some(raft) = self.raft.as_mut() else {
            return;
        };
        if let Ok((index, term)) = raft.propose(write.to_be_bytes().to_vec().into()) {
            self.proposed.insert(index, (write, term));
        }
    }

    pub fn start_read(&mut self, request: u64, acked_before: usize) {
        let Some(raft) = self.raft.as_mut() else {
            return;
        };
        if raft.read_index(request).is_ok() {
            self.reads.insert(request, acked_before);
        }
    }

    /// The stored snapshot, if it is the one `message` announces.
    pub fn snapshot_data_for(&self, message: &Message) -> Option<Vec<u8>> {
        let meta = message.snapshot.as_ref()?.metadata.as_ref()?;
        (meta.index == self.disk.snapshot_meta.index && meta.term == self.disk.snapshot_meta.term)
            .then(|| self.disk.snapshot_data.clone())
    }

    /// Carries out every pending `Ready`, possibly crashing half-way. Returns messages to send.
    pub fn process_ready(&mut self, checker: &mut Checker) -> Vec<Message> {
        let mut out = Vec::new();
        loop {
            let Some(raft) = self.raft.as_mut() else {
                return out;
            };
            if !raft.has_ready() {
                return out;
            }
            let ready = raft.ready();
            if let Some(soft) = ready.soft_state {
                checker.observe_role(self.id, soft.role, soft.term, raft);
            }
            let must_sync = ready.must_sync();
            out.extend(ready.messages);
            if must_sync && self.crash_at_next_fsync {
                // Crash before the fsync: this Ready's entries and votes are lost, and
                // nothing that promised them was sent.
                self.crash();
                return out;
            }
            if let Some(snapshot) = ready.snapshot {
                let meta = snapshot.metadata.clone().unwrap_or_default();
                self.sm = StateMachine::restore(&meta, &snapshot.data);
                self.disk.snapshot_meta = meta.clone();
                self.disk.snapshot_data = snapshot.data.to_vec();
                self.disk.entries.clear();
                checker.node_restarted(self.id, meta.index);
            }
            if let Some(first) = ready.entries.first() {
                let first = first.index;
                self.disk.entries.retain(|e| e.index < first);
                checker.observe_persisted(self.id, &ready.entries);
                self.disk.entries.extend(ready.entries);
            }
            if let Some(hard_state) = ready.hard_state {
                self.disk.hard_state = hard_state;
            }
            if must_sync {
                self.fsync();
            }
            out.extend(ready.messages_after_persist);
            for entry in ready.committed_entries {
                checker.observe_applied(self.id, &entry);
                self.apply(entry, checker);
            }
            for read in ready.read_states {
                if let Some(acked_before) = self.reads.remove(&read.request) {
                    self.confirmed_reads.push((read.index, acked_before));
                }
            }
            for request in ready.failed_reads {
                self.reads.remove(&request);
            }
            self.serve_reads(checker);
            let raft = self.raft.as_mut().expect("still up");
            raft.advance();
            self.maybe_snapshot();
        }
    }

    fn apply(&mut self, entry: Entry, checker: &mut Checker) {
        assert_eq!(
            entry.index,
            self.sm.applied + 1,
            "node {} applied out of order",
            self.id
        );
        self.sm.applied = entry.index;
        self.sm.applied_term = entry.term;
        match entry.entry_type() {
            EntryType::Command => {
                let write =
                    u64::from_be_bytes(entry.data.as_ref().try_into().expect("8-byte write id"));
                self.sm.revision += 1;
                self.sm.writes.insert(write);
                if let Some((proposed, term)) = self.proposed.remove(&entry.index) {
                    // Acknowledge only if the entry at that index is the one proposed here.
                    if term == entry.term && proposed == write {
                        checker.acknowledge(write, entry.index);
                    }
                }
            }
            EntryType::ConfChange => {
                if let Ok(change) = ConfChange::decode(entry.data.as_ref()) {
                    let _ = self.sm.membership.apply(&change);
                }
            }
            EntryType::Empty => {}
        }
        self.proposed.retain(|&index, _| index > entry.index);
    }

    fn serve_reads(&mut self, checker: &Checker) {
        let applied = self.sm.applied;
        let writes = &self.sm.writes;
        self.confirmed_reads.retain(|&(index, acked_before)| {
            if index > applied {
                return true;
            }
            checker.check_read(writes, acked_before);
            false
        });
    }

    fn fsync(&mut self) {
        self.durable = self.disk.clone();
    }

    fn maybe_snapshot(&mut self) {
        if self.sm.applied < self.disk.snapshot_meta.index + SNAPSHOT_EVERY {
            return;
        }
        let meta = SnapshotMetadata {
            index: self.sm.applied,
            term: self.sm.applied_term,
            conf_state: Some(self.sm.membership.conf_state()),
            addresses: self.sm.membership.addresses().clone().into_iter().collect(),
        };
        self.disk.snapshot_meta = meta.clone();
        self.disk.snapshot_data = self.sm.encode();
        let cut = meta.index.saturating_sub(KEEP_AFTER_SNAPSHOT);
        self.disk.entries.retain(|e| e.index > cut);
        self.fsync();
        if let Some(raft) = self.raft.as_mut() {
            raft.compact(meta, KEEP_AFTER_SNAPSHOT);
        }
    }

    pub fn describe(&self) -> String {
        match &self.raft {
            Some(r) => format!(
                "n{}:{:?} t{} commit {} applied {} last {}",
                self.id,
                r.role(),
                r.term(),
                r.log().committed(),
                self.sm.applied,
                r.log().last_index()
            ),
            None => format!("n{}:down", self.id),
        }
    }
}
