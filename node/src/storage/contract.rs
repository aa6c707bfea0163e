//! What every [`Engine`] promises, as tests run against each engine: RocksDB in production
//! and the in-memory engine the simulators use must not drift apart, or the simulators would
//! prove things about a storage the node does not have.

use std::sync::Arc;

use super::{u64_key, Durability, Engine, Space, WriteBatch};

fn put(key: &[u8], value: &[u8]) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put(Space::Kv, key.to_vec(), value.to_vec());
    batch
}

/// Scans stop at their end and limit; `last_before` finds the last key below a bound.
pub fn scans_and_last_before_respect_bounds(engine: Arc<dyn Engine>) {
    let mut batch = WriteBatch::new();
    for k in [b"a", b"b", b"c", b"d"] {
        batch.put(Space::Kv, k.to_vec(), k.to_vec());
    }
    engine.write(batch, Durability::Sync).unwrap();
    let keys: Vec<_> = engine
        .scan(Space::Kv, b"b", Some(b"d"), 10)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, vec![b"b".to_vec(), b"c".to_vec()]);
    assert_eq!(engine.scan(Space::Kv, b"a", None, 2).unwrap().len(), 2);
    let before_c = engine.last_before(Space::Kv, Some(b"c")).unwrap().unwrap();
    assert_eq!(before_c.0, b"b".to_vec());
    let last = engine.last_before(Space::Kv, None).unwrap().unwrap();
    assert_eq!(last.0, b"d".to_vec());
    assert_eq!(engine.last_before(Space::RaftLog, None).unwrap(), None);
}

/// Spaces are apart, log keys sort by index, and a range delete drops exactly its range.
pub fn log_keys_sort_by_index_and_range_deletes_cut_exactly(engine: Arc<dyn Engine>) {
    let mut batch = WriteBatch::new();
    for i in 0u64..10 {
        batch.put(Space::RaftLog, u64_key(i).to_vec(), vec![i as u8]);
    }
    engine.write(batch, Durability::Sync).unwrap();
    let mut cut = WriteBatch::new();
    cut.delete_range(Space::RaftLog, u64_key(0).to_vec(), u64_key(3).to_vec());
    engine.write(cut, Durability::Sync).unwrap();
    let all = engine.scan(Space::RaftLog, &[], None, 100).unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(all[0].1, vec![3]);
    let last = engine
        .last_before(Space::RaftLog, Some(&u64_key(9)))
        .unwrap()
        .unwrap();
    assert_eq!(last.1, vec![8]);
    assert_eq!(engine.last_before(Space::Kv, None).unwrap(), None);
}

/// A view reads the state it was taken at.
pub fn a_view_reads_the_state_it_was_taken_at(engine: Arc<dyn Engine>) {
    engine.write(put(b"a", b"1"), Durability::Sync).unwrap();
    let view = engine.clone().view().unwrap();
    engine.write(put(b"a", b"2"), Durability::Sync).unwrap();
    engine.write(put(b"b", b"1"), Durability::Sync).unwrap();
    assert_eq!(view.get(Space::Kv, b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(view.scan(Space::Kv, b"", None, 10).unwrap().len(), 1);
    assert_eq!(view.last_before(Space::Kv, None).unwrap().unwrap().0, b"a");
    assert_eq!(engine.scan(Space::Kv, b"", None, 10).unwrap().len(), 2);
}

/// Runs every promise against engines `make` opens, a fresh one each.
pub fn check_every_promise(make: impl Fn() -> Arc<dyn Engine>) {
    scans_and_last_before_respect_bounds(make());
    log_keys_sort_by_index_and_range_deletes_cut_exactly(make());
    a_view_reads_the_state_it_was_taken_at(make());
}
