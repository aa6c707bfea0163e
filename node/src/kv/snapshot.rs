//! Snapshots of the state machine, sent by a leader to a follower too far behind for the log.

use prost::Message;

use crate::storage::{Durability, Engine, Space, StorageResult, WriteBatch};

use super::expiry::ExpiryIndex;
use super::meta::Meta;
use super::view::KvSnapshot;
use super::{record, KvError, KvStore};

impl KvStore {
    /// Every key-value and the revision, encoded (see [`KvView::snapshot_data`](super::KvView::snapshot_data)).
    pub fn snapshot_data(&self) -> StorageResult<Vec<u8>> {
        self.current().snapshot_data()
    }

    /// Replaces the whole state with a snapshot taken at `applied_index`, in one synced write
    /// (a backup restored into a new data directory).
    pub fn restore(&mut self, data: &[u8], applied_index: u64) -> Result<(), KvError> {
        let mut batch = WriteBatch::new();
        let staged = self.stage_restore(&mut batch, data, applied_index)?;
        self.engine.write(batch, Durability::Sync)?;
        self.finish_restore(staged);
        Ok(())
    }

    /// Adds to `batch` the writes that replace the whole state with a snapshot taken at
    /// `applied_index`, so that the caller can make them durable together with its own (Raft's
    /// compaction point and the log the snapshot replaces: a crash must leave both or
    /// neither). Once `batch` is written, [`KvStore::finish_restore`] brings the store's memory
    /// in line; nothing changes before.
    pub fn stage_restore(
        &self,
        batch: &mut WriteBatch,
        data: &[u8],
        applied_index: u64,
    ) -> Result<StagedRestore, KvError> {
        let snapshot =
            KvSnapshot::decode(data).map_err(|e| KvError::InvalidSnapshot(e.to_string()))?;
        validate(&snapshot)?;
        for space in [Space::Kv, Space::History, Space::Meta] {
            clear(self.engine.as_ref(), batch, space)?;
        }
        let mut expiry = ExpiryIndex::default();
        for kv in &snapshot.kvs {
            batch.put(Space::Kv, kv.key.to_vec(), record::encode(kv));
            expiry.track(kv);
        }
        let meta = Meta {
            applied_index,
            revision: snapshot.revision,
            compacted_revision: snapshot.revision,
        };
        meta.write_to(batch);
        Ok(StagedRestore { meta, expiry })
    }

    /// Takes on the state a restore staged by [`KvStore::stage_restore`] wrote.
    pub fn finish_restore(&mut self, staged: StagedRestore) {
        self.meta = staged.meta;
        self.expiry = staged.expiry;
    }
}

/// A restore written into a batch, not yet taken on by the store (see
/// [`KvStore::stage_restore`]).
#[derive(Debug)]
pub struct StagedRestore {
    meta: Meta,
    expiry: ExpiryIndex,
}

/// Rejects a snapshot whose keys could not have come from [`KvStore::snapshot_data`]: a key
/// with a revision above the snapshot's would make later writes reuse revisions.
fn validate(snapshot: &KvSnapshot) -> Result<(), KvError> {
    let invalid = |detail: String| Err(KvError::InvalidSnapshot(detail));
    if snapshot.revision < 0 {
        return invalid(format!("negative revision {}", snapshot.revision));
    }
    let mut previous: Option<&[u8]> = None;
    for kv in &snapshot.kvs {
        if previous.is_some_and(|p| p >= kv.key.as_ref()) {
            return invalid(format!(
                "key {} is out of order or repeated",
                kv.key.escape_ascii()
            ));
        }
        previous = Some(kv.key.as_ref());
        let revisions_ok = 1 <= kv.create_revision
            && kv.create_revision <= kv.mod_revision
            && kv.mod_revision <= snapshot.revision
            && kv.version >= 1;
        if !revisions_ok {
            return invalid(format!(
                "key {} has create revision {}, mod revision {}, version {} at snapshot \
                 revision {}",
                kv.key.escape_ascii(),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
                snapshot.revision
            ));
        }
    }
    Ok(())
}

/// Adds to `batch` the deletion of every key of `space`.
///
/// `WriteBatch` ranges need an end key, and no key is greater than every byte string, so the
/// range covers keys below `[0xff]` and the rare keys from `[0xff]` on are deleted one by one.
fn clear(engine: &dyn Engine, batch: &mut WriteBatch, space: Space) -> StorageResult<()> {
    batch.delete_range(space, Vec::new(), vec![0xff]);
    for (key, _) in engine.scan(space, &[0xff], None, usize::MAX)? {
        batch.delete(space, key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::fixtures::{keys, put, Harness};
    use crate::kv::Command;
    use crate::proto::KeyValue;
    use crate::storage::Reader;

    #[test]
    fn a_snapshot_restores_into_a_fresh_engine() {
        let mut leader = Harness::new();
        leader.apply([
            put("a", "1"),
            Command::put("b", "1", 9_000, false),
            put("a", "2"),
            put("c", "1"),
            Command::delete("c", false),
        ]);
        leader.store.apply(&[(6, None)]).unwrap();
        let data = leader.store.snapshot_data().unwrap();

        let mut follower = Harness::new();
        follower
            .store
            .restore(&data, leader.store.applied_index())
            .unwrap();
        let check = |store: &KvStore| {
            assert_eq!(store.applied_index(), 6);
            assert_eq!(store.revision(), 5);
            assert_eq!(store.compacted_revision(), 5);
            assert_eq!(store.get(b"a").unwrap(), leader.store.get(b"a").unwrap());
            assert_eq!(store.expired(9_000, 10), vec![(b"b".to_vec(), 2)]);
            let (all, _) = store.scan(b"", b"", 10).unwrap();
            assert_eq!(keys(&all), vec!["a", "b"]);
            assert!(matches!(
                store.events_since(5, b"", true),
                Err(KvError::Compacted {
                    oldest_retained: 6,
                    ..
                })
            ));
        };
        check(&follower.store);
        follower.reopen();
        check(&follower.store);

        // The follower carries on exactly where the leader is.
        follower.store.apply(&[(7, Some(put("a", "3")))]).unwrap();
        let a = follower.get("a").unwrap();
        assert_eq!((a.create_revision, a.mod_revision, a.version), (1, 6, 3));
        assert_eq!(
            follower.store.events_since(6, b"a", false).unwrap().len(),
            1
        );
    }

    #[test]
    fn restore_replaces_everything_that_was_there() {
        let mut source = Harness::new();
        source.run(put("new", "v"));
        let data = source.store.snapshot_data().unwrap();

        let mut h = Harness::new();
        h.apply([Command::put("old", "v", 1_000, false), put("x", "v")]);
        // Keys from [0xff] on are beyond the range delete and need their own.
        let mut high_key = WriteBatch::new();
        high_key.put(
            Space::Kv,
            vec![0xff, 0xff],
            record::encode(&h.get("x").unwrap()),
        );
        h.engine.write(high_key, Durability::Sync).unwrap();

        h.store.restore(&data, 10).unwrap();
        let (all, _) = h.store.scan(b"", b"", 10).unwrap();
        assert_eq!(keys(&all), vec!["new"]);
        assert!(h.store.expired(i64::MAX, 10).is_empty());
        assert!(h
            .engine
            .scan(Space::History, &[], None, usize::MAX)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn corrupt_or_inconsistent_snapshots_are_rejected_without_changes() {
        let mut h = Harness::new();
        h.run(put("k", "v"));
        assert!(matches!(
            h.store.restore(&[0x12, 50, 1], 9),
            Err(KvError::InvalidSnapshot(_))
        ));
        let ahead = KvSnapshot {
            revision: 1,
            kvs: vec![KeyValue {
                key: "k".into(),
                create_revision: 1,
                mod_revision: 2,
                version: 1,
                ..KeyValue::default()
            }],
        };
        assert!(matches!(
            h.store.restore(&ahead.encode_to_vec(), 9),
            Err(KvError::InvalidSnapshot(_))
        ));
        assert_eq!(h.store.applied_index(), 1);
        assert_eq!(h.get("k").unwrap().value.as_ref(), b"v");
    }
}
