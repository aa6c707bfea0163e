//! Durable storage behind one small trait.
//!
//! Everything a node keeps (the Raft log, the hard state, the KV state machine and its watch
//! history) lives in one ordered key-value engine split into [`Space`]s. One engine means one
//! write-ahead log: a synced write makes every earlier write durable too, so the state machine
//! can be written without its own fsync and still never get ahead of the log after a crash.
//!
//! [`RocksEngine`] is the production engine. [`MemoryEngine`] is the simulator's: it keeps
//! unsynced writes apart and drops them on a simulated crash, exactly what a power cut or a
//! `kill -9` before the fsync would do.

#[cfg(test)]
mod contract;
mod memory;
mod rocks;

use std::sync::Arc;

pub use memory::MemoryEngine;
pub use rocks::RocksEngine;

/// A keyspace of the engine (a column family in RocksDB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// Raft log entries, keyed by big-endian log index.
    RaftLog,
    /// Raft hard state, snapshot metadata and the node's identity.
    RaftState,
    /// The KV state machine: user key to encoded key-value.
    Kv,
    /// Every retained version: big-endian revision to the event (put or delete) of that
    /// revision. Watches replay it; reads at a past revision find versions in it.
    History,
    /// State machine metadata: applied index, revision, compaction point, expiry index.
    Meta,
    /// The version index: each key's revisions in History (see `kv::versions`).
    Versions,
}

impl Space {
    /// Every space, in a fixed order.
    pub const ALL: [Space; 6] = [
        Space::RaftLog,
        Space::RaftState,
        Space::Kv,
        Space::History,
        Space::Meta,
        Space::Versions,
    ];

    /// The column family name.
    pub fn name(self) -> &'static str {
        match self {
            Space::RaftLog => "raft_log",
            Space::RaftState => "raft_state",
            Space::Kv => "kv",
            Space::History => "history",
            Space::Meta => "meta",
            Space::Versions => "versions",
        }
    }
}

/// Whether a write must reach stable storage before [`Engine::write`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync before returning: survives power loss.
    Sync,
    /// Written to the engine's log without fsync: survives a process crash, not power loss,
    /// and is made durable by the next `Sync` write.
    Buffered,
}

/// One change inside a [`WriteBatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put {
        space: Space,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Delete {
        space: Space,
        key: Vec<u8>,
    },
    /// Deletes keys in `[from, to)`.
    DeleteRange {
        space: Space,
        from: Vec<u8>,
        to: Vec<u8>,
    },
}

/// Changes applied atomically: after a crash either all of them are there or none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<WriteOp>,
}

impl WriteBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn put(&mut self, space: Space, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Put {
            space,
            key: key.into(),
            value: value.into(),
        });
    }

    pub fn delete(&mut self, space: Space, key: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::Delete {
            space,
            key: key.into(),
        });
    }

    pub fn delete_range(&mut self, space: Space, from: impl Into<Vec<u8>>, to: impl Into<Vec<u8>>) {
        self.ops.push(WriteOp::DeleteRange {
            space,
            from: from.into(),
            to: to.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn ops(&self) -> &[WriteOp] {
        &self.ops
    }

    /// Moves every op of `other` into this batch.
    pub fn append(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
    }
}

/// A storage failure. Disk full and I/O errors land here; the node stops serving writes
/// rather than acknowledge something it could not store.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage engine error: {0}")]
    Engine(String),
    #[error("corrupt data in {space:?}: {detail}")]
    Corrupt { space: Space, detail: String },
    #[error("the engine has crashed (simulated) and must be reopened")]
    Crashed,
}

pub type StorageResult<T> = Result<T, StorageError>;

/// Ordered reads: of an engine as it is now, or of a [`Engine::view`] taken earlier.
pub trait Reader: Send + Sync {
    fn get(&self, space: Space, key: &[u8]) -> StorageResult<Option<Vec<u8>>>;

    /// Up to `limit` pairs with `from <= key < to` (no upper bound when `to` is `None`), in key
    /// order.
    fn scan(
        &self,
        space: Space,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> StorageResult<Vec<(Vec<u8>, Vec<u8>)>>;

    /// The last pair with `key < before` (any key when `before` is `None`).
    fn last_before(
        &self,
        space: Space,
        before: Option<&[u8]>,
    ) -> StorageResult<Option<(Vec<u8>, Vec<u8>)>>;
}

/// An ordered key-value engine with atomic batches.
pub trait Engine: Reader + 'static {
    fn write(&self, batch: WriteBatch, durability: Durability) -> StorageResult<()>;

    /// The engine as it is now, for reads that take a while (encoding a snapshot, replaying
    /// a watch's history, a long scan): later writes do not show through it, so readers need
    /// not hold anyone up while they read. Cheap to take; it keeps the engine open while held.
    fn view(self: Arc<Self>) -> StorageResult<Arc<dyn Reader>>;

    /// Rewrites the stored data without what deletes and overwrites left behind (etcd's
    /// defragmentation): RocksDB compacts every column family in full.
    fn compact_storage(&self) -> StorageResult<()>;

    /// The bytes the engine holds, on disk and in memory tables (etcd's `dbSize`).
    fn size_bytes(&self) -> StorageResult<u64>;
}

/// Big-endian encoding, so byte order is numeric order.
pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Reads a key written by [`u64_key`].
pub fn parse_u64_key(space: Space, key: &[u8]) -> StorageResult<u64> {
    let bytes: [u8; 8] = key.try_into().map_err(|_| StorageError::Corrupt {
        space,
        detail: format!("expected an 8-byte key, found {} bytes", key.len()),
    })?;
    Ok(u64::from_be_bytes(bytes))
}

/// The smallest key greater than every key that starts with `prefix`, or `None` when no such
/// key exists (the prefix is empty or all 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_that_can_grow() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
