//! Watch history in [`Space::History`]: the [`Event`] of every state-changing revision, keyed by
//! `u64_key(revision)`, so a watcher that reconnects can replay what it missed.
//!
//! Only the last `history_retention` revisions are kept; everything at or below the compacted
//! revision is gone, and a watch starting there must be told rather than silently skip events.

use prost::Message;

use crate::proto::Event;
use crate::storage::{
    parse_u64_key, u64_key, Reader, Space, StorageError, StorageResult, WriteBatch,
};

/// Revisions start at 1, so they are never negative and `unsigned_abs` is the identity.
fn key(revision: i64) -> [u8; 8] {
    u64_key(revision.unsigned_abs())
}

/// The compacted revision once the store is at `revision`, keeping at most `retention`
/// revisions. It never moves back: a history dropped stays dropped.
pub(super) fn compaction_point(revision: i64, retention: u64, compacted_revision: i64) -> i64 {
    let retention = i64::try_from(retention).unwrap_or(i64::MAX);
    revision.saturating_sub(retention).max(compacted_revision)
}

/// Records `events` (revision, event) and drops the history in
/// `(old_compacted, new_compacted]`. Events at or below `new_compacted` are not written at all.
pub(super) fn write(
    batch: &mut WriteBatch,
    events: &[(i64, Event)],
    old_compacted: i64,
    new_compacted: i64,
) {
    if new_compacted > old_compacted {
        batch.delete_range(
            Space::History,
            key(old_compacted + 1),
            key(new_compacted + 1),
        );
    }
    for (revision, event) in events.iter().filter(|(r, _)| *r > new_compacted) {
        batch.put(Space::History, key(*revision), event.encode_to_vec());
    }
}

/// One page of history: the matching events among at most `max_rows` stored revisions from
/// `start_revision` on, and the revision the next page starts at (`None` after the last).
pub(super) fn read_page(
    reader: &dyn Reader,
    start_revision: i64,
    key_or_prefix: &[u8],
    prefix: bool,
    max_rows: usize,
) -> StorageResult<(Vec<Event>, Option<i64>)> {
    let rows = reader.scan(
        Space::History,
        &key(start_revision.max(1)),
        None,
        max_rows.max(1),
    )?;
    let full = rows.len() == max_rows.max(1);
    let mut events = Vec::new();
    let mut last_revision = start_revision;
    for (revision, stored) in rows {
        last_revision = parse_u64_key(Space::History, &revision)? as i64;
        let event = Event::decode(stored.as_slice()).map_err(|e| StorageError::Corrupt {
            space: Space::History,
            detail: format!("event at key {}: {e}", revision.escape_ascii()),
        })?;
        let Some(kv) = &event.kv else {
            return Err(StorageError::Corrupt {
                space: Space::History,
                detail: format!("event at key {} has no key-value", revision.escape_ascii()),
            });
        };
        let hit = if prefix {
            kv.key.starts_with(key_or_prefix)
        } else {
            kv.key == key_or_prefix
        };
        if hit {
            events.push(event);
        }
    }
    Ok((events, full.then_some(last_revision + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compaction_keeps_the_last_retention_revisions_and_never_moves_back() {
        assert_eq!(compaction_point(10, 4, 0), 6);
        assert_eq!(compaction_point(3, 4, 0), 0);
        assert_eq!(compaction_point(10, 0, 0), 10);
        assert_eq!(compaction_point(10, u64::MAX, 0), 0);
        // A snapshot restore compacts everything; a large retention does not undo it.
        assert_eq!(compaction_point(12, 100, 10), 10);
    }
}

#[cfg(test)]
mod store_tests {
    use crate::kv::fixtures::{put, Harness};
    use crate::kv::{Command, KvError};
    use crate::proto::event::EventType;
    use crate::storage::{Reader, Space};

    fn revisions(events: &[crate::proto::Event]) -> Vec<i64> {
        events
            .iter()
            .map(|e| e.kv.as_ref().map_or(-1, |kv| kv.mod_revision))
            .collect()
    }

    #[test]
    fn events_since_filters_by_key_or_prefix_from_a_revision() {
        let mut h = Harness::new();
        h.apply([
            put("app/a", "1"),
            put("app/b", "1"),
            put("other", "1"),
            Command::delete("app/a", false),
            put("app", "1"),
            put("app/b", "2"),
        ]);

        let under_app = h.store.events_since(1, b"app/", true).unwrap();
        assert_eq!(revisions(&under_app), vec![1, 2, 4, 6]);
        assert_eq!(under_app[2].event_type(), EventType::Delete);
        assert!(under_app[2].kv.as_ref().unwrap().value.is_empty());

        let exact = h.store.events_since(3, b"app/b", false).unwrap();
        assert_eq!(revisions(&exact), vec![6]);
        assert_eq!(exact[0].kv.as_ref().unwrap().value.as_ref(), b"2");

        assert_eq!(
            revisions(&h.store.events_since(0, b"", true).unwrap()).len(),
            6
        );
        assert!(h.store.events_since(7, b"", true).unwrap().is_empty());
    }

    #[test]
    fn history_keeps_only_the_retained_revisions() {
        let mut h = Harness::with_retention(3);
        h.apply((0..5).map(|_| put("k", "v")));
        assert_eq!(h.store.compacted_revision(), 2);
        assert_eq!(
            revisions(&h.store.events_since(3, b"k", false).unwrap()),
            vec![3, 4, 5]
        );
        for start in [0, 1, 2] {
            let err = h.store.events_since(start, b"k", false).unwrap_err();
            let KvError::Compacted {
                requested,
                oldest_retained,
            } = err
            else {
                panic!("expected Compacted, got {err}");
            };
            assert_eq!((requested, oldest_retained), (start, 3));
        }

        // Changes that do not bump the revision do not compact either.
        h.run(Command::delete("missing", false));
        assert_eq!(h.store.compacted_revision(), 2);

        h.run(put("k", "v"));
        assert_eq!(h.store.compacted_revision(), 3);
        assert_eq!(
            revisions(&h.store.events_since(4, b"", true).unwrap()),
            vec![4, 5, 6]
        );
        // The dropped events are gone from the engine too, not just hidden.
        let stored = h
            .engine
            .scan(Space::History, &[], None, usize::MAX)
            .unwrap();
        assert_eq!(stored.len(), 3);
    }

    #[test]
    fn a_batch_larger_than_the_retention_still_reports_every_event() {
        let mut h = Harness::with_retention(2);
        let batch = h.apply((0..5).map(|_| put("k", "v")));
        assert_eq!(batch.events.len(), 5);
        assert_eq!(h.store.compacted_revision(), 3);
        assert_eq!(
            revisions(&h.store.events_since(4, b"k", false).unwrap()),
            vec![4, 5]
        );
    }
}
