//! Reads at a past revision (etcd's MVCC): what each key held then, across deletes, compaction,
//! reopening and a store written before versions were indexed.

use crate::kv::fixtures::{keys, put, Harness};
use crate::kv::{Command, KvError};
use crate::storage::{Durability, Engine, Reader, Space, WriteBatch};

fn value_at(h: &Harness, key: &str, revision: i64) -> Option<String> {
    h.store
        .current()
        .get_at(key.as_bytes(), revision)
        .unwrap()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

fn keys_at(h: &Harness, revision: i64) -> Vec<String> {
    let (kvs, next) = h.store.current().scan_at(b"", b"", 100, revision).unwrap();
    assert!(next.is_empty());
    keys(&kvs)
}

fn stored_revisions(h: &Harness) -> Vec<u64> {
    let stored = h
        .engine
        .scan(Space::History, &[], None, usize::MAX)
        .unwrap();
    let index = h
        .engine
        .scan(Space::Versions, &[], None, usize::MAX)
        .unwrap();
    assert_eq!(stored.len(), index.len(), "one index entry per version");
    stored
        .iter()
        .map(|(key, _)| u64::from_be_bytes(key.as_slice().try_into().unwrap()))
        .collect()
}

/// a=1 (1), b=1 (2), a=2 (3), delete b (4), c=1 (5), b=2 (6).
fn six_revisions(h: &mut Harness) {
    h.apply([
        put("a", "1"),
        put("b", "1"),
        put("a", "2"),
        Command::delete("b", false),
        put("c", "1"),
        put("b", "2"),
    ]);
}

#[test]
fn a_read_at_a_revision_sees_each_key_as_it_was_then() {
    let mut h = Harness::new();
    six_revisions(&mut h);

    assert_eq!(value_at(&h, "a", 1).as_deref(), Some("1"));
    assert_eq!(value_at(&h, "a", 2).as_deref(), Some("1"));
    assert_eq!(value_at(&h, "a", 3).as_deref(), Some("2"));
    assert_eq!(value_at(&h, "b", 3).as_deref(), Some("1"));
    assert_eq!(value_at(&h, "b", 4), None, "deleted at 4");
    assert_eq!(value_at(&h, "b", 6).as_deref(), Some("2"));
    assert_eq!(value_at(&h, "c", 4), None, "not yet created");
    assert_eq!(value_at(&h, "a", 0).as_deref(), Some("2"), "0 reads now");

    assert_eq!(keys_at(&h, 2), vec!["a", "b"]);
    assert_eq!(keys_at(&h, 4), vec!["a"]);
    assert_eq!(keys_at(&h, 5), vec!["a", "c"]);
    assert_eq!(keys_at(&h, 0), vec!["a", "b", "c"]);
    let (old_a, _) = h.store.current().scan_at(b"a", b"", 10, 2).unwrap();
    assert_eq!(
        (
            old_a[0].mod_revision,
            old_a[0].version,
            old_a[0].value.as_ref()
        ),
        (1, 1, &b"1"[..])
    );

    // Pages at a revision continue at that revision.
    let view = h.store.current();
    let (first, next) = view.scan_at(b"", b"", 1, 5).unwrap();
    assert_eq!(
        (keys(&first), next.as_slice()),
        (vec!["a".to_string()], &b"a\0"[..])
    );
    let (second, next) = view.scan_at(b"", &next, 1, 5).unwrap();
    assert_eq!(
        (keys(&second), next.as_slice()),
        (vec!["c".to_string()], &b""[..])
    );

    assert!(matches!(
        view.get_at(b"a", 7),
        Err(KvError::FutureRevision {
            requested: 7,
            current: 6
        })
    ));
}

#[test]
fn compaction_keeps_the_state_at_the_compaction_point_readable() {
    let mut h = Harness::with_retention(2);
    h.apply([
        put("a", "1"),
        put("b", "1"),
        put("b", "2"),
        put("b", "3"),
        put("a", "2"),
    ]);
    assert_eq!(h.store.compacted_revision(), 3);
    // a=1 is older than the compaction point but still what a held there.
    assert_eq!(value_at(&h, "a", 3).as_deref(), Some("1"));
    assert_eq!(value_at(&h, "a", 4).as_deref(), Some("1"));
    assert_eq!(value_at(&h, "b", 3).as_deref(), Some("2"));
    assert!(matches!(
        h.store.current().get_at(b"a", 2),
        Err(KvError::Compacted {
            requested: 2,
            oldest_retained: 3
        })
    ));
    // b=1 (2) is superseded by b=2 (3) at the compaction point; a=1 (1) is not.
    assert_eq!(stored_revisions(&h), vec![1, 3, 4, 5]);

    h.run(Command::delete("a", false)); // 6, compacts 4: b=2 goes
    h.run(put("c", "1")); // 7, compacts 5: a=1 goes
    h.run(put("c", "2")); // 8, compacts 6: a=2 and a's delete go
    assert_eq!(h.store.compacted_revision(), 6);
    assert_eq!(stored_revisions(&h), vec![4, 7, 8]);
    assert_eq!(value_at(&h, "a", 6), None);
    assert_eq!(value_at(&h, "b", 6).as_deref(), Some("3"));
    assert_eq!(keys_at(&h, 6), vec!["b"]);
    assert_eq!(keys_at(&h, 7), vec!["b", "c"]);

    h.reopen();
    assert_eq!(value_at(&h, "c", 7).as_deref(), Some("1"));
    assert_eq!(keys_at(&h, 6), vec!["b"]);
}

#[test]
fn a_batch_compacting_its_own_writes_keeps_only_the_newest_of_each_key() {
    let mut h = Harness::with_retention(1);
    h.apply([put("k", "1"), put("k", "2"), put("j", "1"), put("k", "3")]);
    assert_eq!(h.store.compacted_revision(), 3);
    assert_eq!(stored_revisions(&h), vec![2, 3, 4]);
    assert_eq!(value_at(&h, "k", 3).as_deref(), Some("2"));
    assert_eq!(value_at(&h, "j", 4).as_deref(), Some("1"));
}

#[test]
fn a_store_written_before_versions_were_indexed_is_compacted_to_now_when_opened() {
    let mut h = Harness::with_retention(2);
    h.apply([put("old", "1"), put("k", "1"), put("k", "2"), put("k", "3")]);
    // As the previous format left it: no index, and the compacted window (revisions 1 and 2)
    // dropped whole, old=1 included.
    let mut batch = WriteBatch::new();
    batch.delete_range(Space::Versions, Vec::new(), vec![0xff]);
    batch.delete(Space::Meta, crate::kv::store::VERSIONS_INDEXED);
    batch.delete_range(Space::History, 1u64.to_be_bytes(), 3u64.to_be_bytes());
    h.engine.write(batch, Durability::Sync).unwrap();

    h.reopen();
    assert_eq!(h.store.compacted_revision(), 4);
    assert!(matches!(
        h.store.current().get_at(b"k", 3),
        Err(KvError::Compacted { .. })
    ));
    assert_eq!(
        stored_revisions(&h),
        vec![1, 4],
        "each key's current version"
    );
    h.run(put("old", "2"));
    assert_eq!(value_at(&h, "old", 4).as_deref(), Some("1"));
    assert_eq!(keys_at(&h, 4), vec!["k", "old"]);
    h.reopen();
    assert_eq!(h.store.compacted_revision(), 4, "indexed once");
}
