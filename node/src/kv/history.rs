//! History in [`Space::History`]: the [`Event`]s of every state-changing revision (several
//! when one transaction changes several keys, as in etcd), keyed by `u64_key(revision)`, so a
//! watcher that reconnects can replay what it missed, and a read at a past revision finds what
//! each key held then (through the version index, `versions`).
//!
//! Compaction drops the revisions at or below the compaction point, as etcd's does, except the
//! newest version of each key there (when it is not a delete): the state at the compaction
//! point stays readable. A watch must start above it, and is told when it asks for less.

use std::collections::{BTreeMap, BTreeSet};

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

/// The events of one revision, as stored.
#[derive(Clone, PartialEq, prost::Message)]
struct Row {
    #[prost(message, repeated, tag = "1")]
    events: Vec<Event>,
}

/// The compacted revision once the store is at `revision`, keeping at most `retention`
/// revisions. It never moves back: a history dropped stays dropped.
pub(super) fn compaction_point(revision: i64, retention: u64, compacted_revision: i64) -> i64 {
    let retention = i64::try_from(retention).unwrap_or(i64::MAX);
    revision.saturating_sub(retention).max(compacted_revision)
}

/// A stored row's revision and events, each with its key-value.
fn decode(stored_key: &[u8], stored: &[u8]) -> StorageResult<(i64, Vec<Event>)> {
    let corrupt = |detail: String| StorageError::Corrupt {
        space: Space::History,
        detail: format!("row at key {}: {detail}", stored_key.escape_ascii()),
    };
    let revision = parse_u64_key(Space::History, stored_key)? as i64;
    let row = Row::decode(stored).map_err(|e| corrupt(e.to_string()))?;
    if row.events.iter().any(|event| event.kv.is_none()) {
        return Err(corrupt("an event without a key-value".into()));
    }
    Ok((revision, row.events))
}

fn encode(events: Vec<Event>) -> Vec<u8> {
    Row { events }.encode_to_vec()
}

/// The key an event is about (decoded and staged events all carry a key-value).
fn user_key(event: &Event) -> &[u8] {
    event.kv.as_ref().map_or(&[], |kv| kv.key.as_ref())
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
    // whether it is a delete). Stored rows come first, then this batch's, in revision order.
    let mut newest: BTreeMap<Vec<u8>, (i64, bool)> = BTreeMap::new();
    // The stored rows of the window, kept: the compaction rewrites some of them below.
    let mut window_rows: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
    if new_compacted > old_compacted {
        let window = reader.scan(
            Space::History,
            &key(old_compacted + 1),
            Some(&key(new_compacted + 1)),
            usize::MAX,
        )?;
        for (stored_key, stored) in window {
            let (revision, row) = decode(&stored_key, &stored)?;
            for event in &row {
                newest.insert(user_key(event).to_vec(), (revision, is_delete(event)));
            }
            window_rows.insert(revision, row);
        }
    }
    for (revision, event) in events.iter().filter(|(r, _)| *r <= new_compacted) {
        newest.insert(user_key(event).to_vec(), (*revision, is_delete(event)));
    }

    // This batch's rows, without what the compaction drops at once.
    let mut rows: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
    for (revision, event) in events {
        let compacted_away = *revision <= new_compacted
            && newest
                .get(user_key(event))
                .is_some_and(|&(kept, deleted)| kept != *revision || deleted);
        if !compacted_away {
            versions::add(batch, user_key(event), *revision);
            rows.entry(*revision).or_default().push(event.clone());
        }
    }
    for (revision, row) in rows {
        batch.put(Space::History, key(revision), encode(row));
    }

    // Stored versions the window's newest supersede, and deletes that are now the oldest thing
    // left of their key: out of the index, and out of their rows.
    let written: BTreeSet<i64> = events.iter().map(|(revision, _)| *revision).collect();
    let mut stale: BTreeMap<i64, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for (user_key, (kept, deleted)) in newest {
        let mut dropped = versions::below(reader, &user_key, kept)?;
        if deleted && !written.contains(&kept) {
            dropped.push(kept);
        }
        for revision in dropped {
            versions::remove(batch, &user_key, revision);
            stale.entry(revision).or_default().insert(user_key.clone());
        }
    }
    for (revision, keys) in stale {
        let stored_key = key(revision);
        let mut row = match window_rows.remove(&revision) {
            Some(row) => row,
            // A key's newest version below the window, kept by an earlier compaction.
            None => {
                let stored = reader
                    .get(Space::History, &stored_key)?
                    .ok_or_else(|| missing(revision))?;
                decode(&stored_key, &stored)?.1
            }
        };
        row.retain(|event| !keys.contains(user_key(event)));
        match row.is_empty() {
            true => batch.delete(Space::History, stored_key),
            false => batch.put(Space::History, stored_key, encode(row)),
        }
    }
    Ok(())
}

fn missing(revision: i64) -> StorageError {
    StorageError::Corrupt {
        space: Space::History,
        detail: format!("the version index names revision {revision}, which is not stored"),
    }
}

/// The key-value `key` was left with at `revision`; `None` when it was deleted then.
pub(super) fn version(
    reader: &dyn Reader,
    revision: i64,
    key_at: &[u8],
) -> StorageResult<Option<KeyValue>> {
    let stored_key = key(revision);
    let stored = reader
        .get(Space::History, &stored_key)?
        .ok_or_else(|| missing(revision))?;
    let (_, row) = decode(&stored_key, &stored)?;
    let event = row
        .into_iter()
        .find(|event| user_key(event) == key_at)
        .ok_or_else(|| missing(revision))?;
    Ok((!is_delete(&event)).then_some(event.kv).flatten())
}

/// Every stored event, in revision order (for a snapshot).
pub(super) fn all(reader: &dyn Reader) -> StorageResult<Vec<Event>> {
    let mut events = Vec::new();
    for (stored_key, stored) in reader.scan(Space::History, &[], None, usize::MAX)? {
        events.extend(decode(&stored_key, &stored)?.1);
    }
    Ok(events)
}

/// The event of a put that left `kv`.
pub(super) fn put_event(kv: KeyValue) -> Event {
    Event {
        event_type: EventType::Put.into(),
        kv: Some(kv),
    }
}

/// Adds to `batch` restored events (each at its key-value's mod revision) and their versions.
pub(super) fn restore(batch: &mut WriteBatch, events: impl IntoIterator<Item = Event>) {
    let mut rows: BTreeMap<i64, Vec<Event>> = BTreeMap::new();
    for event in events {
        if let Some(kv) = &event.kv {
            versions::add(batch, &kv.key, kv.mod_revision);
            rows.entry(kv.mod_revision).or_default().push(event);
        }
    }
    for (revision, row) in rows {
        batch.put(Space::History, key(revision), encode(row));
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
    for (stored_key, stored) in rows {
        let (revision, row) = decode(&stored_key, &stored)?;
        last_revision = revision;
        events.extend(row.into_iter().filter(|event| {
            let key = user_key(event);
            match prefix {
                true => key.starts_with(key_or_prefix),
                false => key == key_or_prefix,
            }
        }));
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
