//! Snapshots of the state machine, sent by a leader to a follower too far behind for the log.

use prost::Message;

use crate::storage::{Durability, Engine, Space, StorageResult, WriteBatch};

use super::expiry::ExpiryIndex;
use super::lease::{self, Leases};
use super::meta::Meta;
use super::store::VERSIONS_INDEXED;
use super::view::KvSnapshot;
use super::{history, record, KvError, KvStore};

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
        for space in [Space::Kv, Space::History, Space::Versions, Space::Meta] {
            clear(self.engine.as_ref(), batch, space)?;
        }
        let mut expiry = ExpiryIndex::default();
        for record in &snapshot.leases {
            lease::write(batch, record);
        }
        let mut leases = Leases::from_records(snapshot.leases.iter().cloned());
        for kv in &snapshot.kvs {
            batch.put(Space::Kv, kv.key.to_vec(), record::encode(kv));
            expiry.track(kv);
            leases.attach(kv);
        }
        // A snapshot without versions (taken before they were kept, or of a store that holds
        // none) can be read only at its own revision: each key's current version is its only.
        let compacted_revision = if snapshot.history.is_empty() {
            history::restore(batch, snapshot.kvs.into_iter().map(history::put_event));
            snapshot.revision
        } else {
            history::restore(batch, snapshot.history);
            snapshot.compacted_revision
        };
        batch.put(Space::Meta, VERSIONS_INDEXED, vec![1]);
        let meta = Meta {
            applied_index,
            revision: snapshot.revision,
            compacted_revision,
        };
        meta.write_to(batch);
        Ok(StagedRestore {
            meta,
            expiry,
            leases,
        })
    }

    /// Takes on the state a restore staged by [`KvStore::stage_restore`] wrote.
    pub fn finish_restore(&mut self, staged: StagedRestore) {
        self.meta = staged.meta;
        self.expiry = staged.expiry;
        self.leases = staged.leases;
    }
}

/// A restore written into a batch, not yet taken on by the store (see
/// [`KvStore::stage_restore`]).
#[derive(Debug)]
pub struct StagedRestore {
    meta: Meta,
    expiry: ExpiryIndex,
    leases: Leases,
}

/// Rejects a snapshot whose keys could not have come from [`KvStore::snapshot_data`]: a key
/// with a revision above the snapshot's would make later writes reuse revisions.
fn validate(snapshot: &KvSnapshot) -> Result<(), KvError> {
    let invalid = |detail: String| Err(KvError::InvalidSnapshot(detail));
    if snapshot.revision < 0 {
        return invalid(format!("negative revision {}", snapshot.revision));
    }
    let lease_ids: std::collections::BTreeSet<i64> = snapshot.leases.iter().map(|l| l.id).collect();
    let mut previous: Option<&[u8]> = None;
    for kv in &snapshot.kvs {
        if previous.is_some_and(|p| p >= kv.key.as_ref()) {
            return invalid(format!(
                "key {} is out of order or repeated",
                kv.key.escape_ascii()
            ));
        }
        previous = Some(kv.key.as_ref());
        if kv.lease != 0 && !lease_ids.contains(&kv.lease) {
            return invalid(format!(
                "key {} is attached to lease {}, which the snapshot does not hold",
                kv.key.escape_ascii(),
                kv.lease
            ));
        }
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
    if !(0..=snapshot.revision).contains(&snapshot.compacted_revision) {
        return invalid(format!(
            "compacted revision {} is outside 0..={}",
            snapshot.compacted_revision, snapshot.revision
        ));
    }
    let mut previous_revision = 0;
    for event in &snapshot.history {
        let Some(kv) = &event.kv else {
            return invalid("a version without a key-value".into());
        };
        if kv.mod_revision <= previous_revision || kv.mod_revision > snapshot.revision {
            return invalid(format!(
                "version of {} at revision {} is out of order or past the snapshot's revision {}",
                kv.key.escape_ascii(),
                kv.mod_revision,
                snapshot.revision
            ));
        }
        previous_revision = kv.mod_revision;
    }
    Ok(())
}

/// Adds to `batch` the deletion of every key of `space`.
///
/// `WriteBatch` ranges need an end key, and no key is greater than every byte string, so the
/// range covers keys below `[0xff]` and the rare keys from `[0xff]` on are deleted one by one.
pub(super) fn clear(
    engine: &dyn Engine,
    batch: &mut WriteBatch,
    space: Space,
) -> StorageResult<()> {
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
            assert_eq!(store.compacted_revision(), 0);
            assert_eq!(store.get(b"a").unwrap(), leader.store.get(b"a").unwrap());
            assert_eq!(store.expired(9_000, 10), vec![(b"b".to_vec(), 2)]);
            let (all, _) = store.scan(b"", b"", 10).unwrap();
            assert_eq!(keys(&all), vec!["a", "b"]);
            // The versions came along: the past reads and replays as on the leader.
            assert_eq!(
                store.events_since(1, b"", true).unwrap(),
                leader.store.events_since(1, b"", true).unwrap()
            );
            assert_eq!(store.current().get_at(b"a", 1).unwrap().unwrap().value, "1");
            assert_eq!(store.current().get_at(b"c", 4).unwrap().unwrap().value, "1");
            assert_eq!(store.current().get_at(b"c", 5).unwrap(), None);
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
        // The history is the source's: its one version, indexed.
        for space in [Space::History, Space::Versions] {
            assert_eq!(
                h.engine.scan(space, &[], None, usize::MAX).unwrap().len(),
                1
            );
        }
        assert_eq!(h.store.current().get_at(b"old", 1).unwrap(), None);
        assert_eq!(
            h.store.current().get_at(b"new", 1).unwrap().unwrap().value,
            "v"
        );
    }

    #[test]
    fn a_snapshot_without_versions_is_readable_only_at_its_revision() {
        let snapshot = KvSnapshot {
            revision: 7,
            kvs: vec![KeyValue {
                key: "k".into(),
                value: "v".into(),
                create_revision: 3,
                mod_revision: 5,
                version: 2,
                ..KeyValue::default()
            }],
            ..KvSnapshot::default()
        };
        let mut h = Harness::new();
        h.store.restore(&snapshot.encode_to_vec(), 4).unwrap();
        assert_eq!(h.store.compacted_revision(), 7);
        assert_eq!(h.get("k").unwrap().mod_revision, 5);
        assert!(matches!(
            h.store.current().get_at(b"k", 6),
            Err(KvError::Compacted { .. })
        ));
        h.run(put("k", "w"));
        assert_eq!(
            h.store.current().get_at(b"k", 7).unwrap().unwrap().value,
            "v"
        );
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
            ..KvSnapshot::default()
        };
        assert!(matches!(
            h.store.restore(&ahead.encode_to_vec(), 9),
            Err(KvError::InvalidSnapshot(_))
        ));
        assert_eq!(h.store.applied_index(), 1);
        assert_eq!(h.get("k").unwrap().value.as_ref(), b"v");
    }
}
