//! The production [`Engine`]: RocksDB with one column family per [`Space`].

use std::path::Path;

use rocksdb::{
    ColumnFamilyDescriptor, Direction, IteratorMode, Options, ReadOptions, WriteOptions, DB,
};

use super::{Durability, Engine, Space, StorageError, StorageResult, WriteBatch, WriteOp};

pub struct RocksEngine {
    db: DB,
}

fn engine_error(e: rocksdb::Error) -> StorageError {
    StorageError::Engine(e.into_string())
}

impl RocksEngine {
    /// Opens (creating if needed) the database in `dir`.
    pub fn open(dir: &Path) -> StorageResult<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Coordination data is small and hot; keep the WAL bounded so restarts are quick.
        options.set_max_total_wal_size(64 << 20);
        options.set_keep_log_file_num(4);
        let families = Space::ALL
            .iter()
            .map(|space| ColumnFamilyDescriptor::new(space.name(), Options::default()));
        let db = DB::open_cf_descriptors(&options, dir, families).map_err(engine_error)?;
        Ok(Self { db })
    }

    fn family(&self, space: Space) -> StorageResult<&rocksdb::ColumnFamily> {
        self.db
            .cf_handle(space.name())
            .ok_or_else(|| StorageError::Engine(format!("missing column family {}", space.name())))
    }
}

/// Closing syncs the write-ahead log: writes made without fsync (the state machine's, which
/// a restart would otherwise rebuild from the Raft log) are on stable storage after a graceful
/// stop too.
impl Drop for RocksEngine {
    fn drop(&mut self) {
        if let Err(e) = self.db.flush_wal(true) {
            tracing::warn!(error = %e, "syncing the write-ahead log on close failed");
        }
    }
}

impl Engine for RocksEngine {
    fn get(&self, space: Space, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        self.db
            .get_cf(self.family(space)?, key)
            .map_err(engine_error)
    }

    fn scan(
        &self,
        space: Space,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> StorageResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut read = ReadOptions::default();
        if let Some(to) = to {
            read.set_iterate_upper_bound(to.to_vec());
        }
        let iter = self.db.iterator_cf_opt(
            self.family(space)?,
            read,
            IteratorMode::From(from, Direction::Forward),
        );
        let mut out = Vec::new();
        for item in iter.take(limit) {
            let (k, v) = item.map_err(engine_error)?;
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }

    fn last_before(
        &self,
        space: Space,
        before: Option<&[u8]>,
    ) -> StorageResult<Option<(Vec<u8>, Vec<u8>)>> {
        let mut read = ReadOptions::default();
        if let Some(before) = before {
            read.set_iterate_upper_bound(before.to_vec());
        }
        let mut iter = self
            .db
            .iterator_cf_opt(self.family(space)?, read, IteratorMode::End);
        match iter.next() {
            Some(item) => {
                let (k, v) = item.map_err(engine_error)?;
                Ok(Some((k.into_vec(), v.into_vec())))
            }
            None => Ok(None),
        }
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> StorageResult<()> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match op {
                WriteOp::Put { space, key, value } => {
                    rocks_batch.put_cf(self.family(*space)?, key, value)
                }
                WriteOp::Delete { space, key } => rocks_batch.delete_cf(self.family(*space)?, key),
                WriteOp::DeleteRange { space, from, to } => {
                    rocks_batch.delete_range_cf(self.family(*space)?, from, to)
                }
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(durability == Durability::Sync);
        self.db
            .write_opt(rocks_batch, &options)
            .map_err(engine_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_survives_reopen_and_ranges_are_ordered() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = RocksEngine::open(dir.path()).unwrap();
            let mut batch = WriteBatch::new();
            for i in 0u64..10 {
                batch.put(
                    Space::RaftLog,
                    super::super::u64_key(i).to_vec(),
                    vec![i as u8],
                );
            }
            engine.write(batch, Durability::Sync).unwrap();
            let mut cut = WriteBatch::new();
            cut.delete_range(
                Space::RaftLog,
                super::super::u64_key(0).to_vec(),
                super::super::u64_key(3).to_vec(),
            );
            engine.write(cut, Durability::Sync).unwrap();
        }
        let engine = RocksEngine::open(dir.path()).unwrap();
        let all = engine.scan(Space::RaftLog, &[], None, 100).unwrap();
        assert_eq!(all.len(), 7);
        assert_eq!(all[0].1, vec![3]);
        let last = engine
            .last_before(Space::RaftLog, Some(&super::super::u64_key(9)))
            .unwrap()
            .unwrap();
        assert_eq!(last.1, vec![8]);
        assert_eq!(engine.last_before(Space::Kv, None).unwrap(), None);
    }
}
