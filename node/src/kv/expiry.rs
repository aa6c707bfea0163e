//! Which keys have a TTL, ordered by deadline.
//!
//! Kept in memory (rebuilt from [`Space::Kv`](crate::storage::Space::Kv) on open) because the
//! leader asks for due keys on every tick and the answer must not cost a disk scan.

use std::collections::BTreeMap;

use crate::proto::KeyValue;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ExpiryIndex {
    /// (deadline in Unix ms, key) to the key's mod revision, which the leader puts in the
    /// `Expire` command so that a key rewritten in the meantime is not deleted.
    deadlines: BTreeMap<(i64, Vec<u8>), i64>,
}

impl ExpiryIndex {
    /// Adds `kv` if it has a TTL.
    pub fn track(&mut self, kv: &KeyValue) {
        if kv.expires_at_unix_ms > 0 {
            self.deadlines
                .insert((kv.expires_at_unix_ms, kv.key.to_vec()), kv.mod_revision);
        }
    }

    /// Removes the entry `kv` was tracked under, if any.
    pub fn untrack(&mut self, kv: &KeyValue) {
        if kv.expires_at_unix_ms > 0 {
            self.deadlines
                .remove(&(kv.expires_at_unix_ms, kv.key.to_vec()));
        }
    }

    /// Up to `max` keys whose deadline is at or before `now_unix_ms`, earliest first, with
    /// their mod revisions.
    pub fn expired(&self, now_unix_ms: i64, max: usize) -> Vec<(Vec<u8>, i64)> {
        self.deadlines
            .iter()
            .take_while(|((deadline, _), _)| *deadline <= now_unix_ms)
            .take(max)
            .map(|((_, key), mod_revision)| (key.clone(), *mod_revision))
            .collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.deadlines.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn kv(key: &'static str, expires_at_unix_ms: i64, mod_revision: i64) -> KeyValue {
        KeyValue {
            key: Bytes::from(key),
            mod_revision,
            expires_at_unix_ms,
            ..KeyValue::default()
        }
    }

    #[test]
    fn expired_returns_due_keys_earliest_first_up_to_max() {
        let mut index = ExpiryIndex::default();
        index.track(&kv("late", 300, 3));
        index.track(&kv("early", 100, 1));
        index.track(&kv("mid", 200, 2));
        index.track(&kv("no-ttl", 0, 4));
        assert_eq!(index.len(), 3);

        assert_eq!(index.expired(99, 10), vec![]);
        assert_eq!(
            index.expired(200, 10),
            vec![(b"early".to_vec(), 1), (b"mid".to_vec(), 2)]
        );
        assert_eq!(index.expired(1_000, 1), vec![(b"early".to_vec(), 1)]);

        index.untrack(&kv("early", 100, 1));
        assert_eq!(index.expired(200, 10), vec![(b"mid".to_vec(), 2)]);
    }
}
