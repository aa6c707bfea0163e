//! The production [`Engine`]: RocksDB with one column family per [`Space`].

use std::path::Path;
use std::sync::Arc;

use rocksdb::{
    ColumnFamilyDescriptor, DBIteratorWithThreadMode, Direction, IteratorMode, Options,
    ReadOptions, SnapshotWithThreadMode, WriteOptions, DB,
};

use super::{Durability, Engine, Reader, Space, StorageError, StorageResult, WriteBatch, WriteOp};

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

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

/// Where reads come from: the database as it is, or a snapshot of it.
trait Source {
    fn db(&self) -> &DB;
    fn get(
        &self,
        family: &rocksdb::ColumnFamily,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, rocksdb::Error>;
    fn iterator(
        &self,
        family: &rocksdb::ColumnFamily,
        read: ReadOptions,
        mode: IteratorMode,
    ) -> DBIteratorWithThreadMode<'_, DB>;
}

impl Source for RocksEngine {
    fn db(&self) -> &DB {
        &self.db
    }

    fn get(
        &self,
        family: &rocksdb::ColumnFamily,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, rocksdb::Error> {
        self.db.get_cf(family, key)
    }

    fn iterator(
        &self,
        family: &rocksdb::ColumnFamily,
        read: ReadOptions,
        mode: IteratorMode,
    ) -> DBIteratorWithThreadMode<'_, DB> {
        self.db.iterator_cf_opt(family, read, mode)
    }
}

fn family(db: &DB, space: Space) -> StorageResult<&rocksdb::ColumnFamily> {
    db.cf_handle(space.name())
        .ok_or_else(|| StorageError::Engine(format!("missing column family {}", space.name())))
}

fn get(source: &impl Source, space: Space, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
    source
        .get(family(source.db(), space)?, key)
        .map_err(engine_error)
}

fn scan(
    source: &impl Source,
    space: Space,
    from: &[u8],
    to: Option<&[u8]>,
    limit: usize,
) -> StorageResult<Pairs> {
    let mut read = ReadOptions::default();
    if let Some(to) = to {
        read.set_iterate_upper_bound(to.to_vec());
    }
    let iter = source.iterator(
        family(source.db(), space)?,
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
    source: &impl Source,
    space: Space,
    before: Option<&[u8]>,
) -> StorageResult<Option<(Vec<u8>, Vec<u8>)>> {
    let mut read = ReadOptions::default();
    if let Some(before) = before {
        read.set_iterate_upper_bound(before.to_vec());
    }
    let mut iter = source.iterator(family(source.db(), space)?, read, IteratorMode::End);
    match iter.next() {
        Some(item) => {
            let (k, v) = item.map_err(engine_error)?;
            Ok(Some((k.into_vec(), v.into_vec())))
        }
        None => Ok(None),
    }
}

/// The database and its snapshots read alike.
impl<S: Source + Send + Sync> Reader for S {
    fn get(&self, space: Space, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
        get(self, space, key)
    }

    fn scan(
        &self,
        space: Space,
        from: &[u8],
        to: Option<&[u8]>,
        limit: usize,
    ) -> StorageResult<Pairs> {
        scan(self, space, from, to, limit)
    }

    fn last_before(
        &self,
        space: Space,
        before: Option<&[u8]>,
    ) -> StorageResult<Option<(Vec<u8>, Vec<u8>)>> {
        last_before(self, space, before)
    }
}

type Snapshot<'a> = SnapshotWithThreadMode<'a, DB>;

self_cell::self_cell!(
    /// A RocksDB snapshot with the engine it was taken of, which it keeps open.
    struct RocksView {
        owner: Arc<RocksEngine>,
        #[covariant]
        dependent: Snapshot,
    }
);

impl Source for RocksView {
    fn db(&self) -> &DB {
        &self.borrow_owner().db
    }

    fn get(
        &self,
        family: &rocksdb::ColumnFamily,
        key: &[u8],
    ) -> Result<Option<Vec<u8>>, rocksdb::Error> {
        self.borrow_dependent().get_cf(family, key)
    }

    fn iterator(
        &self,
        family: &rocksdb::ColumnFamily,
        read: ReadOptions,
        mode: IteratorMode,
    ) -> DBIteratorWithThreadMode<'_, DB> {
        self.borrow_dependent().iterator_cf_opt(family, read, mode)
    }
}

impl Engine for RocksEngine {
    fn compact_storage(&self) -> StorageResult<()> {
        for space in Space::ALL {
            self.db
                .compact_range_cf(family(&self.db, space)?, None::<&[u8]>, None::<&[u8]>);
        }
        Ok(())
    }

    fn size_bytes(&self) -> StorageResult<u64> {
        let mut total = 0;
        for space in Space::ALL {
            let family = family(&self.db, space)?;
            for property in [
                "rocksdb.total-sst-files-size",
                "rocksdb.cur-size-all-mem-tables",
            ] {
                total += self
                    .db
                    .property_int_value_cf(family, property)
                    .map_err(engine_error)?
                    .unwrap_or(0);
            }
        }
        Ok(total)
    }

    fn view(self: Arc<Self>) -> StorageResult<Arc<dyn Reader>> {
        Ok(Arc::new(RocksView::new(self, |engine| {
            engine.db.snapshot()
        })))
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> StorageResult<()> {
        let mut rocks_batch = rocksdb::WriteBatch::default();
        for op in batch.ops() {
            match op {
                WriteOp::Put { space, key, value } => {
                    rocks_batch.put_cf(family(&self.db, *space)?, key, value)
                }
                WriteOp::Delete { space, key } => {
                    rocks_batch.delete_cf(family(&self.db, *space)?, key)
                }
                WriteOp::DeleteRange { space, from, to } => {
                    rocks_batch.delete_range_cf(family(&self.db, *space)?, from, to)
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
    fn keeps_every_promise_of_an_engine() {
        let dirs = std::cell::RefCell::new(Vec::new());
        super::super::contract::check_every_promise(|| {
            let dir = tempfile::tempdir().unwrap();
            let engine = Arc::new(RocksEngine::open(dir.path()).unwrap());
            dirs.borrow_mut().push(dir);
            engine
        });
    }

    #[test]
    fn a_view_keeps_the_database_open_while_it_lives() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Arc::new(RocksEngine::open(dir.path()).unwrap());
        let view = engine.clone().view().unwrap();
        let weak = Arc::downgrade(&engine);
        drop(engine);
        assert!(weak.upgrade().is_some());
        drop(view);
        assert!(weak.upgrade().is_none());
    }

    #[test]
    fn synced_data_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = RocksEngine::open(dir.path()).unwrap();
            let mut batch = WriteBatch::new();
            batch.put(Space::Kv, b"k".to_vec(), b"v".to_vec());
            engine.write(batch, Durability::Sync).unwrap();
        }
        let engine: Arc<dyn Engine> = Arc::new(RocksEngine::open(dir.path()).unwrap());
        assert_eq!(engine.get(Space::Kv, b"k").unwrap(), Some(b"v".to_vec()));
    }
}
