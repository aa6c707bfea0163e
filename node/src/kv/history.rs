//! History in [`Space::History`]: the [`Event`] of every state-changing revision, keyed by
//! `u64_key(revision)`, so a watcher that reconnects can replay what it missed, and a read at a
//! past revision finds what each key held then (through the version index, `versions`).
//!
//! Compaction drops the revisions at or below the compaction point, as etcd's does, except the
//! newest version of each key there (when it is not a delete): the state at the compaction
//! point stays readable. A watch must start above it, and is told when it asks for less.

use std::collections::BTreeMap;

use prost::Message;

use crate::proto::event::EventType;
use crate::proto::{Event, KeyValue};
use crate::storage::{
    parse_u64_key, u64_key, Reader, Space, StorageError, StorageResult, WriteBatch,
};

use super::versions;

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

fn decode(stored_key: &[u8], stored: &[u8]) -> StorageResult<(Vec<u8>, Event)> {
    let corrupt = |detail: String| StorageError::Corrupt {
        space: Space::History,
        detail: format!("event at key {}: {detail}", stored_key.escape_ascii()),
    };
    let event = Event::decode(stored).map_err(|e| corrupt(e.to_string()))?;
    let user_key = match &event.kv {
        Some(kv) => kv.key.to_vec(),
        None => return Err(corrupt("no key-value".into())),
    };
    Ok((user_key, event))
}

fn is_delete(event: &Event) -> bool {
    event.event_type() == EventType::Delete
}

/// Records `events` (revision, event) and their versions, and compacts `(old_compacted,
/// new_compacted]`: of the versions at or below the new compaction point, only each key's
/// newest stays, and not even that when it is a delete. `reader` is the engine before `batch`.
pub(super) fn write(
    reader: &dyn Reader,
    batch: &mut WriteBatch,
    events: &[(i64, Event)],
    old_compacted: i64,
    new_compacted: i64,
) -> StorageResult<()> {
    // The newest version in the compacted window of each key that has one there: (revision,
    // whether it is a delete). Stored events come first, then this batch's, in revision order.
    let mut newest: BTreeMap<Vec<u8>, (i64, bool)> = BTreeMap::new();
    if new_compacted > old_compacted {
        let window = reader.scan(
            Space::History,
            &key(old_compacted + 1),
            Some(&key(new_compacted + 1)),
            usize::MAX,
        )?;
        for (stored_key, stored) in window {
            let (user_key, event) = decode(&stored_key, &stored)?;
            newest.insert(user_key, (revision_of(&event), is_delete(&event)));
        }
    }
    for (revision, event) in events.iter().filter(|(r, _)| *r <= new_compacted) {
        if let Some(kv) = &event.kv {
            newest.insert(kv.key.to_vec(), (*revision, is_delete(event)));
        }
    }
    for (revision, event) in events {
        let Some(kv) = &event.kv else { continue };
        let compacted_away = *revision <= new_compacted
            && newest
                .get(kv.key.as_ref())
                .is_some_and(|&(kept, deleted)| kept != *revision || deleted);
        if !compacted_away {
            batch.put(Space::History, key(*revision), event.encode_to_vec());
            versions::add(batch, &kv.key, *revision);
        }
    }
    // Stored versions the window's newest supersede, and stored deletes that are now the
    // oldest thing left of their key.
    for (user_key, (kept, deleted)) in newest {
        let mut dropped = versions::below(reader, &user_key, kept)?;
        if deleted {
            dropped.push(kept);
        }
        for revision in dropped {
            batch.delete(Space::History, key(revision));
            versions::remove(batch, &user_key, revision);
        }
    }
    Ok(())
}

/// The revision an event happened at: a put's and a delete's key-value carry it.
fn revision_of(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

/// The key-value a put at `revision` wrote; `None` for a delete.
pub(super) fn version(reader: &dyn Reader, revision: i64) -> StorageResult<Option<KeyValue>> {
    let stored_key = key(revision);
    let Some(stored) = reader.get(Space::History, &stored_key)? else {
        return Err(StorageError::Corrupt {
            space: Space::History,
            detail: format!("the version index names revision {revision}, which is not stored"),
        });
    };
    let (_, event) = decode(&stored_key, &stored)?;
    Ok((!is_delete(&event)).then_some(event.kv).flatten())
}

/// Every stored event, in revision order (for a snapshot).
pub(super) fn all(reader: &dyn Reader) -> StorageResult<Vec<Event>> {
    reader
        .scan(Space::History, &[], None, usize::MAX)?
        .iter()
        .map(|(stored_key, stored)| decode(stored_key, stored).map(|(_, event)| event))
        .collect()
}

/// The event of a put that left `kv`.
pub(super) fn put_event(kv: KeyValue) -> Event {
    Event {
        event_type: EventType::Put.into(),
        kv: Some(kv),
    }
}

/// Adds to `batch` a restored event and its version.
pub(super) fn restore(batch: &mut WriteBatch, event: &Event) {
    if let Some(kv) = &event.kv {
        batch.put(Space::History, key(kv.mod_revision), event.encode_to_vec());
        versions::add(batch, &kv.key, kv.mod_revision);
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
        let (user_key, event) = decode(&revision, &stored)?;
        let hit = if prefix {
            user_key.starts_with(key_or_prefix)
        } else {
            user_key == key_or_prefix
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
        // The dropped events are gone from the engine too, not just hidden; the newest version
        // at the compaction point (k at 3) stays for reads there.
        let stored = h
            .engine
            .scan(Space::History, &[], None, usize::MAX)
            .unwrap();
        assert_eq!(stored.len(), 4);
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
