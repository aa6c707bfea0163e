//! Writing what one `Ready` asks to persist: a snapshot from the leader, new log entries and
//! the hard state.

use std::sync::RwLock;

use super::failpoints::failpoint;
use super::raft_store::RaftStore;
use crate::kv::KvStore;
use crate::proto::{Entry, HardState, Snapshot};
use crate::raft::LogIndex;
use crate::storage::{Durability, StorageError, WriteBatch};

/// What [`persist_ready`] did.
#[derive(Debug)]
pub struct Persisted {
    /// The last log index on disk now.
    pub last_stored: LogIndex,
    /// How long the write itself took (the fsync, when synced).
    pub write_time: std::time::Duration,
}

/// Persists a `Ready`'s `snapshot` (installing it into the state machine), `entries` (replacing
/// any stored at or after the first one) and `hard_state`, with `durability`. `last_stored` is
/// the last log index on disk before.
pub fn persist_ready(
    store: &RaftStore,
    kv: &RwLock<KvStore>,
    snapshot: Option<&Snapshot>,
    entries: &[Entry],
    hard_state: Option<&HardState>,
    mut last_stored: LogIndex,
    durability: Durability,
) -> Result<Persisted, StorageError> {
    let mut batch = WriteBatch::new();
    // A snapshot replaces the state machine and the log together, in the one write below: a
    // crash leaves both as they were or both replaced. The state machine's lock is held until
    // its memory matches what was written, so no reader sees half of it.
    let mut installing = None;
    if let Some(snapshot) = snapshot {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        failpoint!("snapshot_install");
        let kv = kv
            .write()
            .map_err(|_| StorageError::Engine("state machine lock poisoned".into()))?;
        let staged = kv
            .stage_restore(&mut batch, &snapshot.data, meta.index)
            .map_err(|e| StorageError::Engine(format!("installing snapshot: {e}")))?;
        store.stage_snapshot(&mut batch, &meta, true);
        last_stored = meta.index;
        installing = Some((kv, staged));
    }
    store.stage_ready(&mut batch, entries, hard_state, last_stored);
    if let Some(last) = entries.last() {
        last_stored = last.index;
    }
    failpoint!("log_append");
    let started = std::time::Instant::now();
    store.write(batch, durability)?;
    let write_time = started.elapsed();
    if let Some((mut kv, staged)) = installing {
        kv.finish_restore(staged);
    }
    Ok(Persisted {
        last_stored,
        write_time,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::kv::Command;
    use crate::proto::{ConfState, SnapshotMetadata};
    use crate::server::raft_store::Identity;
    use crate::storage::{Engine, MemoryEngine};

    fn entry(index: u64) -> Entry {
        Entry {
            index,
            term: 1,
            ..Default::default()
        }
    }

    /// A leader's state machine at index 20: twenty keys.
    fn leader_snapshot() -> Snapshot {
        let engine: Arc<dyn Engine> = Arc::new(MemoryEngine::new());
        let mut leader = KvStore::open(engine, 100).unwrap();
        let entries: Vec<_> = (1..=20)
            .map(|i| (i, Some(Command::put(format!("k{i}"), "v", 0, false))))
            .collect();
        leader.apply(&entries).unwrap();
        Snapshot {
            metadata: Some(SnapshotMetadata {
                index: 20,
                term: 2,
                conf_state: Some(ConfState {
                    voters: vec![1, 2, 3],
                    learners: vec![],
                }),
                addresses: Default::default(),
            }),
            data: leader.snapshot_data().unwrap().into(),
        }
    }

    #[test]
    fn a_crash_anywhere_in_a_snapshot_install_keeps_the_state_machine_and_the_log_in_step() {
        // Found in review: the state machine was restored in one synced write and the Raft
        // compaction point moved in another; a crash between them left the state machine at
        // the snapshot and Raft before it.
        let snapshot = leader_snapshot();
        for crash_after in 0..4 {
            let engine = Arc::new(MemoryEngine::new());
            let store = RaftStore::new(engine.clone());
            let identity = Identity {
                cluster_id: 1,
                node_id: 3,
            };
            let hard_state = HardState {
                term: 1,
                vote: 0,
                commit: 3,
            };
            let log: Vec<Entry> = (1..=5).map(entry).collect();
            store.initialise(identity, hard_state, &log).unwrap();
            let kv = RwLock::new(KvStore::open(engine.clone(), 100).unwrap());
            kv.write()
                .unwrap()
                .apply(&[(1, None), (2, None), (3, None)])
                .unwrap();
            // Durable, as the log's next fsync would make it.
            engine.write(WriteBatch::new(), Durability::Sync).unwrap();

            engine.crash_after_writes(crash_after);
            let installed_hard_state = HardState {
                term: 2,
                vote: 0,
                commit: 20,
            };
            let result = persist_ready(
                &store,
                &kv,
                Some(&snapshot),
                &[],
                Some(&installed_hard_state),
                5,
                Durability::Sync,
            );
            engine.crash();
            engine.restart();

            let kv = KvStore::open(engine.clone(), 100).unwrap();
            let raft = RaftStore::new(engine.clone()).load().unwrap();
            assert_eq!(
                kv.applied_index() == 20,
                raft.snapshot.index == 20,
                "crash after {crash_after} writes: the state machine is at {}, Raft's \
                 compaction point at {}",
                kv.applied_index(),
                raft.snapshot.index
            );
            if result.is_ok() {
                assert_eq!(raft.snapshot.index, 20);
                assert!(
                    raft.entries.is_empty(),
                    "the log the snapshot covers is gone"
                );
                assert_eq!(raft.hard_state, installed_hard_state);
                assert_eq!(kv.revision(), 20);
            } else {
                assert_eq!((kv.applied_index(), raft.snapshot.index), (3, 0));
                assert_eq!(raft.entries.len(), 5);
            }
        }
    }
}
