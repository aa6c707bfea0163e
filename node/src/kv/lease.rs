//! Leases, etcd's model: a lease has a TTL and keys attached to it; revoking it, by a client
//! or by the leader when its TTL ran out, deletes those keys.
//!
//! What the state machine keeps of a lease is only what every replica must agree on: that it
//! exists, its granted TTL, the remaining TTL the leader last checkpointed, and (in each key's
//! record) which keys are attached. When a lease expires is not part of it: the leader keeps
//! deadlines on its own monotonic clock, renews them on keepalives without writing anything,
//! and proposes a revoke through the log when one passes, as etcd's lessor does.
//!
//! Records live in [`Space::Meta`] under `lease/` and the big-endian id; the keys of each lease
//! are indexed in memory (rebuilt from [`Space::Kv`] on open), as revoking must find them
//! without a scan.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use prost::Message;

use crate::proto::KeyValue;
use crate::storage::{Reader, Space, StorageError, StorageResult, WriteBatch};

/// A lease as the state machine stores it.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LeaseRecord {
    #[prost(int64, tag = "1")]
    pub id: i64,
    /// The TTL granted, in seconds.
    #[prost(int64, tag = "2")]
    pub ttl: i64,
    /// The TTL left when the leader last checkpointed it, in seconds; 0 when never (or since
    /// a keepalive). A new leader counts from this rather than from the whole TTL.
    #[prost(int64, tag = "3")]
    pub remaining_ttl: i64,
}

impl LeaseRecord {
    /// The TTL a new leader gives the lease before its election-timeout grace: what was left
    /// at the last checkpoint, or the whole TTL.
    pub fn ttl_to_resume(&self) -> i64 {
        match self.remaining_ttl {
            0 => self.ttl,
            left => left,
        }
    }
}

const PREFIX: &[u8] = b"lease/";

fn record_key(id: i64) -> Vec<u8> {
    [PREFIX, &id.to_be_bytes()].concat()
}

pub(super) fn write(batch: &mut WriteBatch, record: &LeaseRecord) {
    batch.put(Space::Meta, record_key(record.id), record.encode_to_vec());
}

pub(super) fn erase(batch: &mut WriteBatch, id: i64) {
    batch.delete(Space::Meta, record_key(id));
}

/// Every lease record, in id order.
pub(super) fn load(reader: &dyn Reader) -> StorageResult<Vec<LeaseRecord>> {
    let end = crate::storage::prefix_end(PREFIX);
    reader
        .scan(Space::Meta, PREFIX, end.as_deref(), usize::MAX)?
        .into_iter()
        .map(|(key, stored)| {
            LeaseRecord::decode(stored.as_slice()).map_err(|e| StorageError::Corrupt {
                space: Space::Meta,
                detail: format!("lease record {}: {e}", key.escape_ascii()),
            })
        })
        .collect()
}

/// A lease and the keys attached to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub record: LeaseRecord,
    pub keys: BTreeSet<Bytes>,
}

/// Every lease, with its keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leases {
    by_id: BTreeMap<i64, Lease>,
}

impl Leases {
    pub fn from_records(records: impl IntoIterator<Item = LeaseRecord>) -> Self {
        let mut leases = Self::default();
        for record in records {
            leases.upsert(record);
        }
        leases
    }

    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.by_id.get(&id)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.by_id.contains_key(&id)
    }

    /// Every lease, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Adds a lease, or takes on a changed record of one (its keys stay).
    pub(super) fn upsert(&mut self, record: LeaseRecord) {
        match self.by_id.get_mut(&record.id) {
            Some(lease) => lease.record = record,
            None => {
                self.by_id.insert(
                    record.id,
                    Lease {
                        record,
                        keys: BTreeSet::new(),
                    },
                );
            }
        }
    }

    pub(super) fn remove(&mut self, id: i64) {
        self.by_id.remove(&id);
    }

    /// Notes `kv` under its lease, if it has one that exists.
    pub(super) fn attach(&mut self, kv: &KeyValue) {
        if let Some(lease) = self.by_id.get_mut(&kv.lease) {
            lease.keys.insert(kv.key.clone());
        }
    }

    /// Forgets `kv` under the lease it was attached to.
    pub(super) fn detach(&mut self, kv: &KeyValue) {
        if let Some(lease) = self.by_id.get_mut(&kv.lease) {
            lease.keys.remove(&kv.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Durability, Engine, MemoryEngine};

    #[test]
    fn records_round_trip_through_the_engine_in_id_order() {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for (id, ttl) in [(9, 60), (-1, 5), (3, 10)] {
            write(
                &mut batch,
                &LeaseRecord {
                    id,
                    ttl,
                    remaining_ttl: 0,
                },
            );
        }
        erase(&mut batch, 3);
        engine.write(batch, Durability::Sync).unwrap();
        let ids: Vec<i64> = load(&engine).unwrap().iter().map(|r| r.id).collect();
        // Big-endian bytes sort a negative id (never granted, but storable) after the rest;
        // what matters is that every record comes back once.
        assert_eq!(ids, vec![9, -1]);
    }

    #[test]
    fn a_checkpoint_is_where_a_new_leader_resumes() {
        let mut record = LeaseRecord {
            id: 1,
            ttl: 60,
            remaining_ttl: 0,
        };
        assert_eq!(record.ttl_to_resume(), 60);
        record.remaining_ttl = 12;
        assert_eq!(record.ttl_to_resume(), 12);
    }
}
