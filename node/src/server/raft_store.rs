//! Durable Raft state on the storage engine: the log, the hard state, the compaction point and
//! the node's identity (which cluster and which member this data belongs to).
//!
//! The compaction point is a snapshot's metadata without its data. The state machine lives in
//! the same engine and is durable on its own, so a copy of it is never stored: when a follower
//! needs a snapshot, or an operator a backup, the event loop encodes the state at that moment
//! (see `EventLoop::capture_snapshot`). Storing a copy at every compaction would write the
//! whole state again every `snapshot_every` entries and stall writes while doing so.

use std::sync::Arc;

use prost::Message as _;

use crate::proto::{Entry, HardState, SnapshotMetadata};
use crate::raft::{LogIndex, NodeId};
use crate::storage::{
    parse_u64_key, u64_key, Durability, Engine, Space, StorageError, StorageResult, WriteBatch,
};

const HARD_STATE: &[u8] = b"hard_state";
const SNAPSHOT_META: &[u8] = b"snapshot_meta";
/// Where earlier versions kept a copy of the state machine at the compaction point; removed
/// at the first compaction after an upgrade.
const LEGACY_SNAPSHOT_DATA: &[u8] = b"snapshot_data";
const IDENTITY: &[u8] = b"identity";
/// Present while a node that joined empty has not yet seen itself added as a learner.
const AWAITING_ADMISSION: &[u8] = b"awaiting_admission";

/// Which cluster and member a data directory belongs to, recorded when it is first used.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct Identity {
    #[prost(uint64, tag = "1")]
    pub cluster_id: u64,
    #[prost(uint64, tag = "2")]
    pub node_id: NodeId,
}

/// Everything the Raft core needs to start.
pub struct RaftState {
    pub hard_state: HardState,
    pub snapshot: SnapshotMetadata,
    pub entries: Vec<Entry>,
}

#[derive(Clone)]
pub struct RaftStore {
    engine: Arc<dyn Engine>,
}

fn corrupt(space: Space, what: &str, e: prost::DecodeError) -> StorageError {
    StorageError::Corrupt {
        space,
        detail: format!("{what}: {e}"),
    }
}

impl RaftStore {
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        Self { engine }
    }

    pub fn identity(&self) -> StorageResult<Option<Identity>> {
        self.engine
            .get(Space::RaftState, IDENTITY)?
            .map(|bytes| {
                Identity::decode(bytes.as_slice())
                    .map_err(|e| corrupt(Space::RaftState, "identity", e))
            })
            .transpose()
    }

    pub fn record_identity(&self, identity: Identity) -> StorageResult<()> {
        let mut batch = WriteBatch::new();
        batch.put(Space::RaftState, IDENTITY, identity.encode_to_vec());
        self.engine.write(batch, Durability::Sync)
    }

    /// Marks a node that joins with an empty log: it may not vote until admitted.
    pub fn record_awaiting_admission(&self) -> StorageResult<()> {
        let mut batch = WriteBatch::new();
        batch.put(Space::RaftState, AWAITING_ADMISSION, Vec::new());
        self.engine.write(batch, Durability::Sync)
    }

    pub fn awaiting_admission(&self) -> StorageResult<bool> {
        Ok(self
            .engine
            .get(Space::RaftState, AWAITING_ADMISSION)?
            .is_some())
    }

    pub fn record_admitted(&self) -> StorageResult<()> {
        let mut batch = WriteBatch::new();
        batch.delete(Space::RaftState, AWAITING_ADMISSION);
        self.engine.write(batch, Durability::Sync)
    }

    /// Records the identity together with the initial log and hard state, atomically: a
    /// crash during bootstrap leaves either a fully initialised directory or an empty one.
    pub fn initialise(
        &self,
        identity: Identity,
        hard_state: HardState,
        entries: &[Entry],
    ) -> StorageResult<()> {
        let mut batch = WriteBatch::new();
        batch.put(Space::RaftState, IDENTITY, identity.encode_to_vec());
        batch.put(Space::RaftState, HARD_STATE, hard_state.encode_to_vec());
        for entry in entries {
            batch.put(Space::RaftLog, u64_key(entry.index), entry.encode_to_vec());
        }
        self.engine.write(batch, Durability::Sync)
    }

    /// Adds to `batch` what founds a node from a snapshot (a restored backup) whose state the
    /// same batch restores into the state machine: identity, hard state and compaction point,
    /// and no log entries.
    pub fn stage_initialise_from_snapshot(
        &self,
        batch: &mut WriteBatch,
        identity: Identity,
        hard_state: HardState,
        meta: &SnapshotMetadata,
    ) {
        batch.put(Space::RaftState, IDENTITY, identity.encode_to_vec());
        batch.put(Space::RaftState, HARD_STATE, hard_state.encode_to_vec());
        self.stage_snapshot(batch, meta, true);
    }

    pub fn load(&self) -> StorageResult<RaftState> {
        let hard_state = match self.engine.get(Space::RaftState, HARD_STATE)? {
            Some(bytes) => HardState::decode(bytes.as_slice())
                .map_err(|e| corrupt(Space::RaftState, "hard state", e))?,
            None => HardState::default(),
        };
        let snapshot = self.snapshot_metadata()?;
        let mut entries = Vec::new();
        let mut from = u64_key(snapshot.index + 1).to_vec();
        loop {
            let page = self.engine.scan(Space::RaftLog, &from, None, 1024)?;
            let Some((last_key, _)) = page.last() else {
                break;
            };
            from = u64_key(parse_u64_key(Space::RaftLog, last_key)? + 1).to_vec();
            for (key, value) in page {
                let index = parse_u64_key(Space::RaftLog, &key)?;
                let entry = Entry::decode(value.as_slice())
                    .map_err(|e| corrupt(Space::RaftLog, "log entry", e))?;
                let expected = snapshot.index + 1 + entries.len() as u64;
                if index != expected || entry.index != index {
                    return Err(StorageError::Corrupt {
                        space: Space::RaftLog,
                        detail: format!("log gap: expected entry {expected}, found {index}"),
                    });
                }
                entries.push(entry);
            }
        }
        Ok(RaftState {
            hard_state,
            snapshot,
            entries,
        })
    }

    pub fn snapshot_metadata(&self) -> StorageResult<SnapshotMetadata> {
        match self.engine.get(Space::RaftState, SNAPSHOT_META)? {
            Some(bytes) => SnapshotMetadata::decode(bytes.as_slice())
                .map_err(|e| corrupt(Space::RaftState, "snapshot metadata", e)),
            None => Ok(SnapshotMetadata::default()),
        }
    }

    /// Adds to `batch` the writes that persist one `Ready`: new entries (replacing any stored
    /// at or after the first of them) and the hard state.
    pub fn stage_ready(
        &self,
        batch: &mut WriteBatch,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        last_stored: LogIndex,
    ) {
        if let Some(first) = entries.first() {
            if first.index <= last_stored {
                batch.delete_range(
                    Space::RaftLog,
                    u64_key(first.index).to_vec(),
                    u64_key(last_stored + 1).to_vec(),
                );
            }
            for entry in entries {
                batch.put(Space::RaftLog, u64_key(entry.index), entry.encode_to_vec());
            }
        }
        if let Some(hard_state) = hard_state {
            batch.put(Space::RaftState, HARD_STATE, hard_state.encode_to_vec());
        }
    }

    /// Adds to `batch` a new compaction point: the state machine holds (durably, by the time
    /// `batch` is) every entry up to `meta.index`. With `drop_log`, the whole log goes too (a
    /// snapshot from the leader replaced it).
    pub fn stage_snapshot(&self, batch: &mut WriteBatch, meta: &SnapshotMetadata, drop_log: bool) {
        batch.put(Space::RaftState, SNAPSHOT_META, meta.encode_to_vec());
        batch.delete(Space::RaftState, LEGACY_SNAPSHOT_DATA);
        if drop_log {
            batch.delete_range(
                Space::RaftLog,
                u64_key(0).to_vec(),
                u64_key(u64::MAX).to_vec(),
            );
        }
    }

    /// Adds to `batch` the removal of log entries up to and including `index`.
    pub fn stage_compaction(&self, batch: &mut WriteBatch, index: LogIndex) {
        batch.delete_range(
            Space::RaftLog,
            u64_key(0).to_vec(),
            u64_key(index + 1).to_vec(),
        );
    }

    pub fn write(&self, batch: WriteBatch, durability: Durability) -> StorageResult<()> {
        self.engine.write(batch, durability)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{MemoryEngine, Reader};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn a_ready_replaces_a_conflicting_suffix() {
        let store = RaftStore::new(Arc::new(MemoryEngine::new()));
        let identity = Identity {
            cluster_id: 7,
            node_id: 1,
        };
        store
            .initialise(
                identity,
                HardState {
                    term: 1,
                    vote: 0,
                    commit: 2,
                },
                &[entry(1, 1), entry(2, 1), entry(3, 1)],
            )
            .unwrap();
        let mut batch = WriteBatch::new();
        store.stage_ready(
            &mut batch,
            &[entry(3, 2)],
            Some(&HardState {
                term: 2,
                vote: 1,
                commit: 2,
            }),
            3,
        );
        store.write(batch, Durability::Sync).unwrap();
        let state = store.load().unwrap();
        assert_eq!(
            state.entries.iter().map(|e| e.term).collect::<Vec<_>>(),
            vec![1, 1, 2]
        );
        assert_eq!(state.hard_state.vote, 1);
        assert_eq!(store.identity().unwrap(), Some(identity));
    }

    #[test]
    fn a_compaction_removes_the_copy_of_the_state_older_versions_stored() {
        let engine = Arc::new(MemoryEngine::new());
        let mut legacy = WriteBatch::new();
        legacy.put(Space::RaftState, LEGACY_SNAPSHOT_DATA, b"old copy".to_vec());
        engine.write(legacy, Durability::Sync).unwrap();
        let store = RaftStore::new(engine.clone());
        let mut batch = WriteBatch::new();
        store.stage_snapshot(&mut batch, &SnapshotMetadata::default(), false);
        store.write(batch, Durability::Sync).unwrap();
        assert_eq!(
            engine.get(Space::RaftState, LEGACY_SNAPSHOT_DATA).unwrap(),
            None
        );
    }

    #[test]
    fn load_starts_after_the_snapshot() {
        let store = RaftStore::new(Arc::new(MemoryEngine::new()));
        let entries: Vec<Entry> = (1..=10).map(|i| entry(i, 1)).collect();
        store
            .initialise(
                Identity {
                    cluster_id: 1,
                    node_id: 1,
                },
                HardState::default(),
                &entries,
            )
            .unwrap();
        let meta = SnapshotMetadata {
            index: 6,
            term: 1,
            ..Default::default()
        };
        let mut batch = WriteBatch::new();
        store.stage_snapshot(&mut batch, &meta, false);
        store.stage_compaction(&mut batch, 4);
        store.write(batch, Durability::Sync).unwrap();
        let state = store.load().unwrap();
        assert_eq!(state.snapshot.index, 6);
        assert_eq!(state.entries.first().map(|e| e.index), Some(7));
        assert_eq!(store.snapshot_metadata().unwrap(), meta);
    }
}
