//! [`KvStore`]: the state machine's reads and its apply loop.

use std::sync::Arc;

use crate::proto::{Event, KeyValue};
use crate::storage::{Durability, Engine, Space, StorageResult, WriteBatch};

use super::apply::Staged;
use super::expiry::ExpiryIndex;
use super::lease::{self, Leases};
use super::meta::Meta;
use super::snapshot::clear;
use super::view::KvView;
use super::{history, record, ApplyBatch, Command, KvError};

/// The KV state machine over one engine.
///
/// Owned by a single applier: reads take `&self`, changes take `&mut self`, so a read never
/// sees half of an apply.
pub struct KvStore {
    pub(super) engine: Arc<dyn Engine>,
    pub(super) history_retention: u64,
    pub(super) meta: Meta,
    pub(super) expiry: ExpiryIndex,
    pub(super) leases: Leases,
}

/// Marks in [`Space::Meta`] that the version index covers History.
pub(super) const VERSIONS_INDEXED: &[u8] = b"versions_indexed";

/// Indexes, once, the versions of a store written before there was an index. Its compaction
/// dropped whole revisions, the newest version of a key among them, so the past it kept
/// cannot be read whole: it is compacted up to now (a watch from before must start over, as
/// after any compaction), and each key's current version becomes its only one.
fn index_versions(engine: &dyn Engine) -> StorageResult<()> {
    if engine.get(Space::Meta, VERSIONS_INDEXED)?.is_some() {
        return Ok(());
    }
    let mut batch = WriteBatch::new();
    clear(engine, &mut batch, Space::History)?;
    clear(engine, &mut batch, Space::Versions)?;
    let mut meta = Meta::load(engine)?;
    meta.compacted_revision = meta.revision;
    meta.write_to(&mut batch);
    let mut current = Vec::new();
    record::for_each(engine, |kv| current.push(history::put_event(kv)))?;
    history::restore(&mut batch, current);
    batch.put(Space::Meta, VERSIONS_INDEXED, vec![1]);
    engine.write(batch, Durability::Sync)
}

impl KvStore {
    /// Opens the state machine stored in `engine` (empty if it never held one), keeping the
    /// watch history of the last `history_retention` revisions.
    pub fn open(engine: Arc<dyn Engine>, history_retention: u64) -> StorageResult<Self> {
        index_versions(engine.as_ref())?;
        let meta = Meta::load(engine.as_ref())?;
        // The in-memory indexes, from one pass over every key.
        let mut expiry = ExpiryIndex::default();
        let mut leases = Leases::from_records(lease::load(engine.as_ref())?);
        record::for_each(engine.as_ref(), |kv| {
            expiry.track(&kv);
            leases.attach(&kv);
        })?;
        Ok(Self {
            engine,
            history_retention,
            meta,
            expiry,
            leases,
        })
    }

    /// Index of the last Raft log entry applied; 0 for an empty store.
    pub fn applied_index(&self) -> u64 {
        self.meta.applied_index
    }

    /// Revision of the last state change; 0 for an empty store.
    pub fn revision(&self) -> i64 {
        self.meta.revision
    }

    /// Highest revision whose watch history is gone; 0 when nothing was dropped.
    pub fn compacted_revision(&self) -> i64 {
        self.meta.compacted_revision
    }

    /// Applies committed entries `(log index, command)`, in ascending contiguous index order.
    /// `None` is an entry without a state machine command (a leader's no-op, a membership
    /// change): it only advances the applied index.
    ///
    /// Entries at or below the applied index are skipped, so replaying the log after a restart
    /// is harmless. Everything, the applied index included, goes into one batch written without
    /// fsync: the Raft log shares the engine's write-ahead log and its fsync makes this durable,
    /// and a crash before it loses both together, to be replayed.
    pub fn apply(&mut self, entries: &[(u64, Option<Command>)]) -> StorageResult<ApplyBatch> {
        let mut staged = Staged::new(
            self.engine.as_ref(),
            &self.leases,
            self.meta.revision,
            self.meta.compacted_revision,
        );
        let mut applied_index = self.meta.applied_index;
        let mut outcomes = Vec::new();
        for (index, command) in entries {
            if *index <= applied_index {
                continue;
            }
            applied_index = *index;
            // A command without an operation changes nothing; the log decoder rejects those,
            // so only a value built in code can get here.
            if let Some(op) = command.as_ref().and_then(|c| c.op.as_ref()) {
                outcomes.push((*index, staged.apply(op)?));
            }
        }
        if applied_index == self.meta.applied_index {
            return Ok(ApplyBatch::default());
        }

        let meta = Meta {
            applied_index,
            revision: staged.revision,
            compacted_revision: history::compaction_point(
                staged.revision,
                self.history_retention,
                staged.compacted_revision,
            ),
        };
        let mut batch = WriteBatch::new();
        for (key, touched) in &staged.touched {
            match &touched.after {
                Some(kv) => batch.put(Space::Kv, key.to_vec(), record::encode(kv)),
                None => batch.delete(Space::Kv, key.to_vec()),
            }
        }
        history::write(
            self.engine.as_ref(),
            &mut batch,
            &staged.events,
            self.meta.compacted_revision,
            meta.compacted_revision,
        )?;
        for (id, change) in &staged.lease_changes {
            match change {
                Some(record) => lease::write(&mut batch, record),
                None => lease::erase(&mut batch, *id),
            }
        }
        meta.write_to(&mut batch);
        self.engine.write(batch, Durability::Buffered)?;

        // Written: only now may the in-memory state move. Leases granted come first so that
        // keys can attach to them, leases revoked last, once their keys let go.
        self.meta = meta;
        let Staged {
            touched,
            events,
            lease_changes,
            ..
        } = staged;
        for record in lease_changes.values().flatten() {
            self.leases.upsert(record.clone());
        }
        for touched in touched.values() {
            if let Some(before) = &touched.before {
                self.expiry.untrack(before);
                self.leases.detach(before);
            }
            if let Some(after) = &touched.after {
                self.expiry.track(after);
                self.leases.attach(after);
            }
        }
        for (id, change) in &lease_changes {
            if change.is_none() {
                self.leases.remove(*id);
            }
        }
        Ok(ApplyBatch {
            outcomes,
            events: events.into_iter().map(|(_, event)| event).collect(),
        })
    }

    /// The state machine as it is, for a read made under its lock.
    pub fn current(&self) -> KvView {
        KvView::new(self.engine.clone(), self.meta)
    }

    /// The state machine as it is now, for a read made after letting go of its lock: later
    /// applies do not show through it.
    pub fn view(&self) -> StorageResult<KvView> {
        Ok(KvView::new(self.engine.clone().view()?, self.meta))
    }

    pub fn get(&self, key: &[u8]) -> StorageResult<Option<KeyValue>> {
        self.current().get(key)
    }

    /// See [`KvView::scan`].
    pub fn scan(
        &self,
        prefix: &[u8],
        continuation: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, Vec<u8>), KvError> {
        self.current().scan(prefix, continuation, limit)
    }

    /// See [`KvView::events_since`].
    pub fn events_since(
        &self,
        start_revision: i64,
        key: &[u8],
        prefix: bool,
    ) -> Result<Vec<Event>, KvError> {
        self.current().events_since(start_revision, key, prefix)
    }

    /// The engine, for work that must not hold the state machine's lock (a full compaction).
    pub fn engine(&self) -> Arc<dyn Engine> {
        self.engine.clone()
    }

    /// The bytes the engine holds.
    pub fn size_bytes(&self) -> StorageResult<u64> {
        self.engine.size_bytes()
    }

    /// Every lease, with the keys attached to it.
    pub fn leases(&self) -> &Leases {
        &self.leases
    }

    /// Up to `max` keys whose TTL ran out at `now_unix_ms`, earliest deadline first, with the
    /// mod revision to put in their `Expire` command.
    pub fn expired(&self, now_unix_ms: i64, max: usize) -> Vec<(Vec<u8>, i64)> {
        self.expiry.expired(now_unix_ms, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::fixtures::{keys, put, Harness};

    #[test]
    fn scan_pages_through_a_prefix_with_limit_and_continuation() {
        let mut h = Harness::new();
        h.apply(
            ["a/1", "a/2", "a/3", "a/4", "a/5", "b/1", "a"]
                .into_iter()
                .map(|k| put(k, "v")),
        );

        let mut pages = Vec::new();
        let mut continuation = Vec::new();
        loop {
            let (kvs, next) = h.store.scan(b"a/", &continuation, 2).unwrap();
            pages.push(keys(&kvs));
            if next.is_empty() {
                break;
            }
            continuation = next;
        }
        assert_eq!(
            pages,
            vec![vec!["a/1", "a/2"], vec!["a/3", "a/4"], vec!["a/5"]]
        );

        // An exact last page has no continuation: no empty page to fetch.
        let (kvs, next) = h.store.scan(b"a/", b"a/2\0", 3).unwrap();
        assert_eq!(keys(&kvs), vec!["a/3", "a/4", "a/5"]);
        assert!(next.is_empty());

        let (all, next) = h.store.scan(b"", b"", 100).unwrap();
        assert_eq!(
            keys(&all),
            vec!["a", "a/1", "a/2", "a/3", "a/4", "a/5", "b/1"]
        );
        assert!(next.is_empty());
        assert_eq!(all[0].value.as_ref(), b"v");
    }

    #[test]
    fn a_key_added_between_pages_is_seen_if_it_sorts_after_the_boundary() {
        let mut h = Harness::new();
        h.apply([put("p/a", "v"), put("p/c", "v")]);
        let (first, next) = h.store.scan(b"p/", b"", 1).unwrap();
        assert_eq!(keys(&first), vec!["p/a"]);
        h.run(put("p/b", "v"));
        let (second, _) = h.store.scan(b"p/", &next, 10).unwrap();
        assert_eq!(keys(&second), vec!["p/b", "p/c"]);
    }

    #[test]
    fn a_continuation_from_another_prefix_is_rejected() {
        let mut h = Harness::new();
        h.apply([put("a/1", "v"), put("a/2", "v")]);
        let (_, next) = h.store.scan(b"a/", b"", 1).unwrap();
        assert!(matches!(
            h.store.scan(b"b/", &next, 1),
            Err(KvError::InvalidContinuation)
        ));
    }

    #[test]
    fn reapplying_applied_entries_is_a_no_op() {
        let mut h = Harness::new();
        let entries = vec![
            (1, Some(put("k", "1"))),
            (2, None),
            (3, Some(put("k", "2"))),
        ];
        let first = h.store.apply(&entries).unwrap();
        assert_eq!(first.outcomes.len(), 2);
        assert_eq!(h.store.applied_index(), 3);
        assert_eq!(h.store.revision(), 2);

        let again = h.store.apply(&entries).unwrap();
        assert_eq!(again, ApplyBatch::default());
        // Overlapping replay: only the new entry is applied.
        let overlap = h
            .store
            .apply(&[(3, Some(put("k", "2"))), (4, Some(put("k", "3")))])
            .unwrap();
        assert_eq!(overlap.outcomes.len(), 1);
        assert_eq!(overlap.outcomes[0].0, 4);
        assert_eq!(h.get("k").unwrap().version, 3);
        assert_eq!(h.store.revision(), 3);
    }

    #[test]
    fn entries_without_a_command_only_advance_the_applied_index() {
        let mut h = Harness::new();
        let batch = h.store.apply(&[(1, None), (2, None)]).unwrap();
        assert!(batch.outcomes.is_empty() && batch.events.is_empty());
        assert_eq!((h.store.applied_index(), h.store.revision()), (2, 0));
        h.reopen();
        assert_eq!(h.store.applied_index(), 2);
    }

    #[test]
    fn state_survives_reopen_including_the_expiry_index() {
        let mut h = Harness::with_retention(10);
        h.apply([
            Command::put("ttl", "v", 5_000, false),
            put("plain", "v"),
            Command::put("gone", "v", 1_000, false),
            Command::delete("gone", false),
        ]);
        let before = (
            h.store.applied_index(),
            h.store.revision(),
            h.store.expired(i64::MAX, 10),
        );
        h.reopen();
        assert_eq!(
            (
                h.store.applied_index(),
                h.store.revision(),
                h.store.expired(i64::MAX, 10)
            ),
            before
        );
        assert_eq!(before.2, vec![(b"ttl".to_vec(), 1)]);
        assert_eq!(h.get("plain").unwrap().mod_revision, 2);
        assert_eq!(h.store.events_since(1, b"", true).unwrap().len(), 4);
    }

    #[test]
    fn a_crash_before_the_log_fsync_loses_the_apply_and_replay_redoes_it() {
        let mut h = Harness::new();
        h.run(put("k", "1"));
        // A synced write (the Raft log's, in production) makes the apply durable.
        h.engine.write(WriteBatch::new(), Durability::Sync).unwrap();
        h.run(put("k", "2"));

        h.engine.crash();
        h.engine.restart();
        h.reopen();
        assert_eq!((h.store.applied_index(), h.store.revision()), (1, 1));
        assert_eq!(h.get("k").unwrap().value.as_ref(), b"1");

        h.store.apply(&[(2, Some(put("k", "2")))]).unwrap();
        let k = h.get("k").unwrap();
        assert_eq!(
            (k.value.as_ref(), k.version, k.mod_revision),
            (&b"2"[..], 2, 2)
        );
    }

    #[test]
    fn a_failed_write_leaves_the_store_unchanged() {
        let mut h = Harness::new();
        h.run(Command::put("k", "1", 1_000, false));
        h.engine.crash();
        // Fails at the write (nothing to read)...
        assert!(h.store.apply(&[(2, None)]).is_err());
        assert_eq!(h.store.applied_index(), 1);
        // ...and at a read.
        let failed = h.store.apply(&[(2, Some(Command::delete("k", false)))]);
        assert!(failed.is_err());
        assert_eq!((h.store.applied_index(), h.store.revision()), (1, 1));
        assert_eq!(h.store.expired(1_000, 10), vec![(b"k".to_vec(), 1)]);
    }
}
