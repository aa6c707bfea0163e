//! The version index in [`Space::Versions`]: for every key, the revisions at which
//! [`Space::History`] holds a version of it (the event of a put or of a delete), so that a read
//! at an earlier revision finds what the key held then, as etcd's MVCC store does.
//!
//! An entry is the user key, escaped so that entries sort by user key first and no key's
//! entries fall among another's (`0x00` becomes `0x00 0xff`, and a `0x00` ends the key), then
//! the big-endian revision. Values are empty: the version itself is the event in History.

use crate::storage::{u64_key, Reader, Space, StorageError, StorageResult, WriteBatch};

/// Index entries read per engine call when walking a range of keys, to bound memory.
const PAGE: usize = 1024;

/// Where `key`'s entries start: the escaped key and its terminator. Every entry of a key that
/// sorts before `key` sorts before this, and every entry of `key` or of a later key after it.
fn key_prefix(key: &[u8]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(key.len() + 1 + 8);
    for &byte in key {
        prefix.push(byte);
        if byte == 0 {
            prefix.push(0xff);
        }
    }
    prefix.push(0);
    prefix
}

/// The entry of `key`'s version at `revision`.
fn entry(key: &[u8], revision: i64) -> Vec<u8> {
    let mut entry = key_prefix(key);
    entry.extend_from_slice(&u64_key(revision.max(0).unsigned_abs()));
    entry
}

/// The user key and revision of an entry.
fn parse(entry: &[u8]) -> StorageResult<(Vec<u8>, i64)> {
    let corrupt = || StorageError::Corrupt {
        space: Space::Versions,
        detail: format!("malformed index entry {}", entry.escape_ascii()),
    };
    let split = entry.len().checked_sub(8).ok_or_else(corrupt)?;
    let (escaped, revision) = entry.split_at(split);
    let mut key = Vec::with_capacity(escaped.len());
    let mut bytes = escaped.iter();
    loop {
        match bytes.next() {
            Some(0) => match bytes.next() {
                Some(0xff) => key.push(0),
                None => break,
                Some(_) => return Err(corrupt()),
            },
            Some(&byte) => key.push(byte),
            None => return Err(corrupt()),
        }
    }
    let revision = u64::from_be_bytes(revision.try_into().map_err(|_| corrupt())?);
    Ok((key, i64::try_from(revision).map_err(|_| corrupt())?))
}

/// Adds to `batch` that History holds a version of `key` at `revision`.
pub(super) fn add(batch: &mut WriteBatch, key: &[u8], revision: i64) {
    batch.put(Space::Versions, entry(key, revision), Vec::new());
}

/// Adds to `batch` the removal of `key`'s version at `revision` from the index.
pub(super) fn remove(batch: &mut WriteBatch, key: &[u8], revision: i64) {
    batch.delete(Space::Versions, entry(key, revision));
}

/// The newest revision at or below `revision` at which `key` has a version.
pub(super) fn latest_at(
    reader: &dyn Reader,
    key: &[u8],
    revision: i64,
) -> StorageResult<Option<i64>> {
    let bound = entry(key, revision.saturating_add(1));
    match reader.last_before(Space::Versions, Some(&bound))? {
        Some((found, _)) => {
            let (found_key, at) = parse(&found)?;
            Ok((found_key == key).then_some(at))
        }
        None => Ok(None),
    }
}

/// The revisions of `key`'s versions below `before`, oldest first.
pub(super) fn below(reader: &dyn Reader, key: &[u8], before: i64) -> StorageResult<Vec<i64>> {
    reader
        .scan(
            Space::Versions,
            &entry(key, 0),
            Some(&entry(key, before)),
            usize::MAX,
        )?
        .iter()
        .map(|(found, _)| parse(found).map(|(_, at)| at))
        .collect()
}

/// Calls `visit` with every key in `[from, end)` (`end` `None`: no upper bound) that has a
/// version at or below `revision`, in key order, with the newest such revision, until `visit`
/// answers `false`.
pub(super) fn for_each_key_at(
    reader: &dyn Reader,
    from: &[u8],
    end: Option<&[u8]>,
    revision: i64,
    mut visit: impl FnMut(Vec<u8>, i64) -> StorageResult<bool>,
) -> StorageResult<()> {
    let end = end.map(key_prefix);
    let mut start = key_prefix(from);
    // The key being read and its newest revision at or below `revision` so far.
    let mut current: Option<(Vec<u8>, Option<i64>)> = None;
    loop {
        let page = reader.scan(Space::Versions, &start, end.as_deref(), PAGE)?;
        let full = page.len() == PAGE;
        for (found, _) in page {
            let (key, at) = parse(&found)?;
            start = found;
            start.push(0);
            match &mut current {
                Some((current_key, newest)) if *current_key == key => {
                    if at <= revision {
                        *newest = Some(at);
                    }
                }
                _ => {
                    if let Some((done, Some(newest))) = current.take() {
                        if !visit(done, newest)? {
                            return Ok(());
                        }
                    }
                    current = Some((key, (at <= revision).then_some(at)));
                }
            }
        }
        if !full {
            if let Some((done, Some(newest))) = current {
                visit(done, newest)?;
            }
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Durability, Engine, MemoryEngine};

    #[test]
    fn entries_sort_by_key_then_revision_whatever_bytes_the_keys_hold() {
        let keys: [&[u8]; 6] = [b"", b"a", b"a\0", b"a\0b", b"a\x01", b"ab"];
        let mut entries = Vec::new();
        for key in keys {
            for revision in [1, 2, 300] {
                entries.push(entry(key, revision));
            }
        }
        let mut sorted = entries.clone();
        sorted.sort();
        assert_eq!(sorted, entries, "entries sort as (key, revision)");
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(parse(&entries[i * 3 + 2]).unwrap(), (key.to_vec(), 300));
        }
        assert!(parse(b"short").is_err());
        assert!(parse(b"a\0\x07\0\0\0\0\0\0\0\x01").is_err());
    }

    #[test]
    fn reads_find_the_newest_version_at_a_revision() {
        let engine = MemoryEngine::new();
        let mut batch = WriteBatch::new();
        for (key, revision) in [("a", 2), ("a", 5), ("a\0", 3), ("b", 1), ("b", 4), ("c", 6)] {
            add(&mut batch, key.as_bytes(), revision);
        }
        engine.write(batch, Durability::Sync).unwrap();

        assert_eq!(latest_at(&engine, b"a", 1).unwrap(), None);
        assert_eq!(latest_at(&engine, b"a", 4).unwrap(), Some(2));
        assert_eq!(latest_at(&engine, b"a", 5).unwrap(), Some(5));
        assert_eq!(latest_at(&engine, b"a\0", 9).unwrap(), Some(3));
        assert_eq!(latest_at(&engine, b"missing", 9).unwrap(), None);
        assert_eq!(below(&engine, b"a", 5).unwrap(), vec![2]);
        assert_eq!(below(&engine, b"b", 9).unwrap(), vec![1, 4]);

        let mut seen = Vec::new();
        for_each_key_at(&engine, b"a", Some(b"c"), 3, |key, at| {
            seen.push((String::from_utf8(key).unwrap(), at));
            Ok(true)
        })
        .unwrap();
        assert_eq!(
            seen,
            vec![("a".into(), 2), ("a\0".into(), 3), ("b".into(), 1)]
        );

        let mut first = Vec::new();
        for_each_key_at(&engine, b"", None, 9, |key, _| {
            first.push(key);
            Ok(first.len() < 2)
        })
        .unwrap();
        assert_eq!(first, vec![b"a".to_vec(), b"a\0".to_vec()]);
    }
}
