//! Snapshots on the replica's side: the log compacted under the state machine (nothing
//! copied: both live in one engine), the state captured for a follower or a backup as a
//! point-in-time view labelled with what it holds, and what follows the install of a
//! snapshot from the leader. The install itself is one atomic write (`persist.rs`).

use super::super::failpoints::failpoint;
use super::super::requests::CapturedSnapshot;
use super::{EventBatch, Replica};
use crate::proto::SnapshotMetadata;
use crate::raft::Membership;
use crate::storage::{Durability, StorageError, WriteBatch};

impl Replica {
    /// What follows a snapshot from the leader once it is installed: watchers, the applied
    /// configuration, and the replies that can no longer be matched to an outcome.
    pub(super) fn after_snapshot_installed(&mut self, meta: &SnapshotMetadata) {
        let revision = self.kv.read().map(|kv| kv.revision()).unwrap_or(0);
        // Watchers behind this point cannot be served the events in between: tell them.
        let _ = self.events.send(EventBatch::Reset { revision });
        self.applied_membership = Membership::of_snapshot(meta);
        self.applied_term = meta.term;
        self.pending.superseded_by_snapshot(meta.index);
    }

    /// Moves the compaction point to the applied index when `snapshot_every` entries were
    /// applied since the last one or, when `now`, whenever anything was, and drops the log
    /// before it but for the last `snapshot_keep_entries` (slightly slow followers still catch
    /// up from the log).
    ///
    /// Nothing is copied: the state machine is in the same engine, and this batch's fsync makes
    /// its buffered writes durable too (one write-ahead log, replayed in order), so it covers
    /// the new point before the log it replaces is gone.
    pub(super) fn compact_log(&mut self, now: bool) -> Result<(), StorageError> {
        let applied = self.raft.log().applied();
        let due = match now {
            true => applied > self.snapshot_index,
            false => applied >= self.snapshot_index + self.settings.snapshot_every,
        };
        if !due {
            return Ok(());
        }
        let meta = self.applied_snapshot_metadata();
        let cut = applied.saturating_sub(self.settings.snapshot_keep_entries);
        let mut batch = WriteBatch::new();
        self.store.stage_snapshot(&mut batch, &meta, false);
        self.store.stage_compaction(&mut batch, cut);
        failpoint!("snapshot_take");
        self.store.write(batch, Durability::Sync)?;
        tracing::info!(index = applied, "log compacted");
        self.metrics.log_compactions.inc();
        self.snapshot_index = applied;
        self.raft.compact(meta, self.settings.snapshot_keep_entries);
        Ok(())
    }

    /// The state machine as it is now, captured; with `compact`, the log it covers is dropped
    /// first.
    pub(super) fn snapshot_now(&mut self, compact: bool) -> Result<CapturedSnapshot, StorageError> {
        if compact {
            self.compact_log(true)?;
        }
        self.capture_snapshot()
    }

    /// The state machine as it is now, with what a follower installing it must know. Only a
    /// point-in-time view is taken here; the encoding happens off this loop.
    pub(super) fn capture_snapshot(&self) -> Result<CapturedSnapshot, StorageError> {
        let state = self
            .kv
            .read()
            .map_err(|_| StorageError::Engine("state machine lock poisoned".into()))?
            .view()?;
        // The label must say what the data holds: the index the state machine itself
        // recorded, read with the view. The term and configuration this loop tracks are those
        // at Raft's applied index, so the two must agree.
        let meta = self.applied_snapshot_metadata();
        if meta.index != state.applied_index() {
            return Err(StorageError::Engine(format!(
                "the state machine holds index {} but Raft applied {}; refusing to send a \
                 snapshot labelled with the wrong index",
                state.applied_index(),
                meta.index
            )));
        }
        Ok(CapturedSnapshot {
            meta,
            state,
            size_gauge: self.metrics.snapshot_bytes.clone(),
            encoding_gauge: self.metrics.snapshots_encoding.clone(),
        })
    }

    /// Describes the state at the applied index: its term and the membership in force there.
    fn applied_snapshot_metadata(&self) -> SnapshotMetadata {
        SnapshotMetadata {
            index: self.raft.log().applied(),
            term: self.applied_term,
            conf_state: Some(self.applied_membership.conf_state()),
            addresses: self
                .applied_membership
                .addresses()
                .clone()
                .into_iter()
                .collect(),
        }
    }
}
