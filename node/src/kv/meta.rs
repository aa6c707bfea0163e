//! State machine metadata in [`Space::Meta`].
//!
//! Written in the same batch as the key changes it describes, so after a crash the applied
//! index can never claim an entry whose effects were lost (or the other way round).

use crate::storage::{Engine, Space, StorageError, StorageResult, WriteBatch};

/// Index of the last Raft log entry applied. Value: u64, 8 bytes big-endian.
const APPLIED_INDEX: &[u8] = b"applied";
/// Revision of the last state-changing command. Value: i64, 8 bytes big-endian.
const REVISION: &[u8] = b"revision";
/// Highest revision whose watch history was dropped. Value: i64, 8 bytes big-endian.
const COMPACTED_REVISION: &[u8] = b"compacted";

/// The state machine's position; all zero for a new store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Meta {
    pub applied_index: u64,
    pub revision: i64,
    pub compacted_revision: i64,
}

impl Meta {
    pub fn load(engine: &dyn Engine) -> StorageResult<Self> {
        let meta = Self {
            applied_index: u64::from_be_bytes(read(engine, APPLIED_INDEX)?),
            revision: i64::from_be_bytes(read(engine, REVISION)?),
            compacted_revision: i64::from_be_bytes(read(engine, COMPACTED_REVISION)?),
        };
        if meta.revision < 0
            || meta.compacted_revision < 0
            || meta.compacted_revision > meta.revision
        {
            return Err(corrupt(format!(
                "revision {} and compacted revision {} are inconsistent",
                meta.revision, meta.compacted_revision
            )));
        }
        Ok(meta)
    }

    pub fn write_to(&self, batch: &mut WriteBatch) {
        batch.put(Space::Meta, APPLIED_INDEX, self.applied_index.to_be_bytes());
        batch.put(Space::Meta, REVISION, self.revision.to_be_bytes());
        batch.put(
            Space::Meta,
            COMPACTED_REVISION,
            self.compacted_revision.to_be_bytes(),
        );
    }
}

/// A missing key reads as zero: the store has never written it.
fn read(engine: &dyn Engine, key: &[u8]) -> StorageResult<[u8; 8]> {
    match engine.get(Space::Meta, key)? {
        None => Ok([0; 8]),
        Some(value) => value.as_slice().try_into().map_err(|_| {
            corrupt(format!(
                "{} should hold 8 bytes, found {}",
                key.escape_ascii(),
                value.len()
            ))
        }),
    }
}

fn corrupt(detail: String) -> StorageError {
    StorageError::Corrupt {
        space: Space::Meta,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Durability, MemoryEngine};

    #[test]
    fn a_new_store_is_at_zero_and_meta_round_trips() {
        let engine = MemoryEngine::new();
        assert_eq!(Meta::load(&engine).unwrap(), Meta::default());
        let meta = Meta {
            applied_index: 42,
            revision: 17,
            compacted_revision: 5,
        };
        let mut batch = WriteBatch::new();
        meta.write_to(&mut batch);
        engine.write(batch, Durability::Sync).unwrap();
        assert_eq!(Meta::load(&engine).unwrap(), meta);
    }

    #[test]
    fn a_truncated_value_is_corruption() {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        batch.put(Space::Meta, REVISION, vec![1, 2, 3]);
        engine.write(batch, Durability::Sync).unwrap();
        assert!(matches!(
            Meta::load(&engine),
            Err(StorageError::Corrupt {
                space: Space::Meta,
                ..
            })
        ));
    }
}
