//! What each command does to the key space.
//!
//! Changes are staged in memory and written by the caller as one batch, so a failed write
//! leaves both the engine and the in-memory state exactly as they were.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::proto::event::EventType;
use crate::proto::{Event, KeyValue};
use crate::storage::{Engine, Space, StorageResult};

use super::command::{CompareAndSwap, Delete, Expire, Op, Put};
use super::compare::holds;
use super::lease::{LeaseRecord, Leases};
use super::outcome::CommandOutcome;
use super::record;

/// A key changed by the batch being staged.
pub(super) struct Touched {
    /// As stored before the batch: its TTL is the one to drop from the expiry index.
    pub before: Option<KeyValue>,
    pub after: Option<KeyValue>,
}

/// What ends a key on its own: a TTL deadline (the native API's; 0 for none) or a lease
/// (etcd's; 0 for none). A key has one or the other, and a write replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attachment {
    Ttl(i64),
    Lease(i64),
}

/// The state changes of one apply call, not yet written.
pub(super) struct Staged<'a> {
    pub(super) engine: &'a dyn Engine,
    pub revision: i64,
    /// The compaction point, as compaction commands in this batch have moved it.
    pub compacted_revision: i64,
    pub touched: BTreeMap<Bytes, Touched>,
    /// (revision, event), in revision order.
    pub events: Vec<(i64, Event)>,
    /// The leases as they were before the batch.
    pub(super) leases: &'a Leases,
    /// Leases the batch granted, checkpointed (`Some`) or revoked (`None`).
    pub lease_changes: BTreeMap<i64, Option<LeaseRecord>>,
}

impl<'a> Staged<'a> {
    pub fn new(
        engine: &'a dyn Engine,
        leases: &'a Leases,
        revision: i64,
        compacted_revision: i64,
    ) -> Self {
        Self {
            engine,
            revision,
            compacted_revision,
            touched: BTreeMap::new(),
            events: Vec::new(),
            leases,
            lease_changes: BTreeMap::new(),
        }
    }

    /// The lease `id` as the batch has left it so far.
    pub(super) fn lease(&self, id: i64) -> Option<LeaseRecord> {
        match self.lease_changes.get(&id) {
            Some(changed) => changed.clone(),
            None => self.leases.get(id).map(|lease| lease.record.clone()),
        }
    }

    /// The keys attached to lease `id` as the batch has left them, in key order.
    pub(super) fn keys_of_lease(&self, id: i64) -> StorageResult<Vec<KeyValue>> {
        let mut keys: BTreeMap<Bytes, KeyValue> = BTreeMap::new();
        let before = self.leases.get(id).into_iter().flat_map(|l| l.keys.iter());
        for key in before {
            if let Some(kv) = self.current(key)?.filter(|kv| kv.lease == id) {
                keys.insert(key.clone(), kv);
            }
        }
        for (key, touched) in &self.touched {
            if let Some(kv) = touched.after.as_ref().filter(|kv| kv.lease == id) {
                keys.insert(key.clone(), kv.clone());
            }
        }
        Ok(keys.into_values().collect())
    }

    pub fn apply(&mut self, op: &Op) -> StorageResult<CommandOutcome> {
        match op {
            Op::Put(put) => self.put(put),
            Op::Delete(delete) => self.delete(delete),
            Op::CompareAndSwap(cas) => self.compare_and_swap(cas),
            Op::Expire(expire) => self.expire(expire),
            Op::Etcd(etcd) => {
                let result = self.etcd(etcd)?;
                Ok(CommandOutcome::Etcd {
                    revision: self.revision,
                    result,
                })
            }
        }
    }

    fn put(&mut self, put: &Put) -> StorageResult<CommandOutcome> {
        let current = self.current(&put.key)?;
        let prev_kv = current.clone().filter(|_| put.prev_kv);
        self.write(&put.key, current, put.value.clone(), put.expires_at_unix_ms);
        Ok(CommandOutcome::Put {
            revision: self.revision,
            prev_kv,
        })
    }

    fn delete(&mut self, delete: &Delete) -> StorageResult<CommandOutcome> {
        let current = self.current(&delete.key)?;
        let deleted = current.is_some();
        let prev_kv = current.clone().filter(|_| delete.prev_kv);
        if let Some(current) = current {
            self.remove(current);
        }
        Ok(CommandOutcome::Delete {
            revision: self.revision,
            deleted,
            prev_kv,
        })
    }

    fn compare_and_swap(&mut self, cas: &CompareAndSwap) -> StorageResult<CommandOutcome> {
        let current = self.current(&cas.key)?;
        let succeeded = cas
            .compare
            .as_ref()
            .is_some_and(|compare| holds(compare, current.as_ref()));
        if succeeded {
            self.write(
                &cas.key,
                current.clone(),
                cas.new_value.clone(),
                cas.expires_at_unix_ms,
            );
        }
        Ok(CommandOutcome::CompareAndSwap {
            succeeded,
            revision: self.revision,
            current,
        })
    }

    fn expire(&mut self, expire: &Expire) -> StorageResult<CommandOutcome> {
        let current = self.current(&expire.key)?;
        let due = current.filter(|kv| kv.mod_revision == expire.mod_revision);
        let deleted = due.is_some();
        if let Some(kv) = due {
            self.remove(kv);
        }
        Ok(CommandOutcome::Expire { deleted })
    }

    /// The key as the batch has left it so far.
    pub(super) fn current(&self, key: &[u8]) -> StorageResult<Option<KeyValue>> {
        match self.touched.get(key) {
            Some(touched) => Ok(touched.after.clone()),
            None => record::get(self.engine, key),
        }
    }

    /// The keys in `[start, end)` (`end` `None`: no upper bound) as the batch has left them so
    /// far, in key order.
    pub(super) fn range(&self, start: &[u8], end: Option<&[u8]>) -> StorageResult<Vec<KeyValue>> {
        let mut found: BTreeMap<Bytes, KeyValue> = BTreeMap::new();
        for (key, stored) in self.engine.scan(Space::Kv, start, end, usize::MAX)? {
            let kv = record::decode(key, &stored)?;
            found.insert(kv.key.clone(), kv);
        }
        let in_range =
            |key: &Bytes| key.as_ref() >= start && end.is_none_or(|end| key.as_ref() < end);
        for (key, touched) in self.touched.iter().filter(|(key, _)| in_range(key)) {
            match &touched.after {
                Some(kv) => found.insert(key.clone(), kv.clone()),
                None => found.remove(key),
            };
        }
        Ok(found.into_values().collect())
    }

    fn next_revision(&mut self) -> i64 {
        self.revision = self.revision.saturating_add(1);
        self.revision
    }

    /// A native write: it carries a TTL or none, and no lease.
    fn write(&mut self, key: &Bytes, current: Option<KeyValue>, value: Bytes, expires_at: i64) {
        let revision = self.next_revision();
        self.write_at(revision, key, current, value, Attachment::Ttl(expires_at));
    }

    /// Writes `key` at `revision`, which a transaction's changes share.
    pub(super) fn write_at(
        &mut self,
        revision: i64,
        key: &Bytes,
        current: Option<KeyValue>,
        value: Bytes,
        attachment: Attachment,
    ) {
        let (expires_at, lease) = match attachment {
            Attachment::Ttl(expires_at) => (expires_at, 0),
            Attachment::Lease(lease) => (0, lease),
        };
        let kv = KeyValue {
            key: key.clone(),
            value,
            // etcd semantics: a key recreated after a delete starts over.
            create_revision: current.as_ref().map_or(revision, |c| c.create_revision),
            mod_revision: revision,
            version: current.as_ref().map_or(1, |c| c.version.saturating_add(1)),
            expires_at_unix_ms: expires_at.max(0),
            lease,
        };
        self.events.push((
            revision,
            Event {
                event_type: EventType::Put.into(),
                kv: Some(kv.clone()),
            },
        ));
        self.record(current, key, Some(kv));
    }

    fn remove(&mut self, current: KeyValue) {
        let revision = self.next_revision();
        self.remove_at(revision, current);
    }

    /// Deletes the key `current` is at `revision`, which a transaction's changes share.
    pub(super) fn remove_at(&mut self, revision: i64, current: KeyValue) {
        let key = current.key.clone();
        self.events.push((
            revision,
            Event {
                event_type: EventType::Delete.into(),
                kv: Some(KeyValue {
                    key: key.clone(),
                    mod_revision: revision,
                    ..KeyValue::default()
                }),
            },
        ));
        self.record(Some(current), &key, None);
    }

    /// `current` is the key's state before this command; it becomes `before` only the first
    /// time the batch touches the key.
    fn record(&mut self, current: Option<KeyValue>, key: &Bytes, after: Option<KeyValue>) {
        self.touched
            .entry(key.clone())
            .or_insert(Touched {
                before: current,
                after: None,
            })
            .after = after;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::fixtures::{compare, put, Harness};
    use crate::kv::Command;
    use crate::proto::compare::Target;

    #[test]
    fn writes_follow_etcd_revision_and_version_semantics() {
        let mut h = Harness::new();
        assert_eq!(h.store.revision(), 0);

        h.run(put("a", "1"));
        h.run(put("b", "1"));
        h.run(put("a", "2"));
        let a = h.get("a").unwrap();
        assert_eq!(
            (
                a.value.as_ref(),
                a.create_revision,
                a.mod_revision,
                a.version
            ),
            (&b"2"[..], 1, 3, 2)
        );
        assert_eq!(h.store.revision(), 3);

        // Deleting takes a revision; recreating starts the key over.
        let outcome = h.run(Command::delete("a", true));
        assert_eq!(
            outcome,
            CommandOutcome::Delete {
                revision: 4,
                deleted: true,
                prev_kv: Some(a),
            }
        );
        assert_eq!(h.get("a"), None);
        h.run(put("a", "3"));
        let a = h.get("a").unwrap();
        assert_eq!((a.create_revision, a.mod_revision, a.version), (5, 5, 1));
    }

    #[test]
    fn put_reports_the_previous_value_only_when_asked() {
        let mut h = Harness::new();
        assert_eq!(
            h.run(Command::put("k", "1", 0, true)),
            CommandOutcome::Put {
                revision: 1,
                prev_kv: None,
            }
        );
        let before = h.get("k");
        assert_eq!(
            h.run(Command::put("k", "2", 0, true)),
            CommandOutcome::Put {
                revision: 2,
                prev_kv: before,
            }
        );
        assert_eq!(
            h.run(Command::put("k", "3", 0, false)),
            CommandOutcome::Put {
                revision: 3,
                prev_kv: None,
            }
        );
    }

    #[test]
    fn deleting_a_missing_key_changes_nothing() {
        let mut h = Harness::new();
        h.run(put("a", "1"));
        let batch = h.apply([Command::delete("missing", true)]);
        assert_eq!(
            batch.outcomes,
            vec![(
                2,
                CommandOutcome::Delete {
                    revision: 1,
                    deleted: false,
                    prev_kv: None,
                }
            )]
        );
        assert!(batch.events.is_empty());
        assert_eq!(h.store.revision(), 1);
        // The entry is still applied.
        assert_eq!(h.store.applied_index(), 2);
    }

    #[test]
    fn expire_deletes_only_the_version_it_was_decided_for() {
        let mut h = Harness::new();
        h.run(Command::put("k", "1", 1_000, false));
        assert_eq!(h.store.expired(1_000, 10), vec![(b"k".to_vec(), 1)]);

        // Rewritten (without TTL) after the leader decided to expire revision 1.
        h.run(put("k", "2"));
        assert_eq!(
            h.run(Command::expire("k", 1)),
            CommandOutcome::Expire { deleted: false }
        );
        assert_eq!(h.get("k").unwrap().value.as_ref(), b"2");
        assert_eq!(h.store.revision(), 2);
        assert!(h.store.expired(i64::MAX, 10).is_empty());

        assert_eq!(
            h.run(Command::expire("k", 2)),
            CommandOutcome::Expire { deleted: true }
        );
        assert_eq!(h.get("k"), None);
        assert_eq!(h.store.revision(), 3);
        assert_eq!(
            h.run(Command::expire("k", 2)),
            CommandOutcome::Expire { deleted: false }
        );
    }

    #[test]
    fn the_expiry_index_follows_every_write() {
        let mut h = Harness::new();
        h.run(Command::put("a", "1", 100, false));
        h.run(Command::put("b", "1", 200, false));
        assert_eq!(h.store.expired(150, 10), vec![(b"a".to_vec(), 1)]);
        // A new TTL replaces the old deadline; a delete removes it.
        h.run(Command::put("a", "2", 300, false));
        h.run(Command::delete("b", false));
        assert!(h.store.expired(250, 10).is_empty());
        assert_eq!(h.store.expired(300, 10), vec![(b"a".to_vec(), 3)]);
    }

    #[test]
    fn commands_in_one_batch_see_each_other_and_emit_events_in_revision_order() {
        let mut h = Harness::new();
        let batch = h.apply([
            put("k", "1"),
            Command::compare_and_swap("k", compare(Target::Value("1".into())), "2", 500),
            Command::delete("k", true),
            put("k", "3"),
        ]);
        let revisions: Vec<i64> = batch
            .outcomes
            .iter()
            .map(|(_, outcome)| match outcome {
                CommandOutcome::Put { revision, .. }
                | CommandOutcome::Delete { revision, .. }
                | CommandOutcome::CompareAndSwap { revision, .. }
                | CommandOutcome::Etcd { revision, .. } => *revision,
                CommandOutcome::Expire { .. } => 0,
            })
            .collect();
        assert_eq!(revisions, vec![1, 2, 3, 4]);
        let CommandOutcome::Delete {
            prev_kv: Some(deleted),
            ..
        } = &batch.outcomes[2].1
        else {
            panic!("delete should report the value written by the swap");
        };
        assert_eq!(deleted.value.as_ref(), b"2");

        let types: Vec<_> = batch.events.iter().map(|e| e.event_type()).collect();
        assert_eq!(
            types,
            vec![
                EventType::Put,
                EventType::Put,
                EventType::Delete,
                EventType::Put
            ]
        );
        let delete = batch.events[2].kv.clone().unwrap();
        assert_eq!(
            delete,
            KeyValue {
                key: "k".into(),
                mod_revision: 3,
                ..KeyValue::default()
            }
        );
        let k = h.get("k").unwrap();
        assert_eq!(
            (k.create_revision, k.version, k.expires_at_unix_ms),
            (4, 1, 0)
        );
        // The TTL set and deleted within the batch left nothing behind.
        assert!(h.store.expired(i64::MAX, 10).is_empty());
    }
}
