//! An in-memory [`Engine`] for the simulator, with crash semantics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::{Durability, Engine, Reader, Space, StorageError, StorageResult, WriteBatch, WriteOp};

type Tree = BTreeMap<Vec<u8>, Vec<u8>>;

#[derive(Default)]
struct State {
    /// What survives a crash.
    durable: BTreeMap<Space, Tree>,
    /// Buffered batches not yet made durable by a synced write, oldest first.
    pending: Vec<WriteBatch>,
    /// What reads see: `durable` plus `pending`.
    visible: BTreeMap<Space, Tree>,
    crashed: bool,
    /// Writes still allowed before the engine crashes instead of writing (a crash in the
    /// middle of a sequence of writes); `None`: no crash planned.
    writes_before_crash: Option<u64>,
}

/// Keeps buffered writes apart until the next synced write, so [`MemoryEngine::crash`] can
/// drop them, as a real crash before fsync would.
#[derive(Default)]
pub struct MemoryEngine {
    state: Mutex<State>,
}

fn apply(trees: &mut BTreeMap<Space, Tree>, batch: &WriteBatch) {
    for op in batch.ops() {
        match op {
            WriteOp::Put { space, key, value } => {
                trees
                    .entry(*space)
                    .or_default()
                    .insert(key.clone(), value.clone());
            }
            WriteOp::Delete { space, key } => {
                trees.entry(*space).or_default().remove(key);
            }
            WriteOp::DeleteRange { space, from, to } => {
                let tree = trees.entry(*space).or_default();
                let doomed: Vec<Vec<u8>> = tree
                    .range(from.clone()..to.clone())
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in doomed {
                    tree.remove(&key);
                }
            }
        }
    }
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// Loses every write not yet made durable and refuses further use until
    /// [`MemoryEngine::restart`].
    pub fn crash(&self) {
        Self::crash_locked(&mut self.lock());
    }

    /// Makes the engine usable again after a crash, holding only what was durable.
    pub fn restart(&self) {
        let mut state = self.lock();
        state.crashed = false;
        state.writes_before_crash = None;
    }

    /// Lets `writes` more writes happen, then crashes (as [`MemoryEngine::crash`]) at the next
    /// one instead of carrying it out: the process died in the middle of a sequence of writes.
    pub fn crash_after_writes(&self, writes: u64) {
        self.lock().writes_before_crash = Some(writes);
    }

    /// Forgets a crash planned by [`MemoryEngine::crash_after_writes`].
    pub fn cancel_planned_crash(&self) {
        self.lock().writes_before_crash = None;
    }

    fn crash_locked(state: &mut State) {
        state.pending.clear();
        state.visible = state.durable.clone();
        state.crashed = true;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock means a test already panicked; the data is still consistent because
        // every mutation below is completed before the guard drops.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// What the memory engine's readers have in common: trees to read, when they can be read.
trait Trees {
    fn visible<T>(&self, read: impl FnOnce(&BTreeMap<Space, Tree>) -> T) -> StorageResult<T>;
}

impl Trees for MemoryEngine {
    /// What reads see now, unless the engine has crashed.
    fn visible<T>(&self, read: impl FnOnce(&BTreeMap<Space, Tree>) -> T) -> StorageResult<T> {
        let state = self.lock();
        if state.crashed {
            return Err(StorageError::Crashed);
        }
        Ok(read(&state.visible))
    }
}

/// A copy of what the engine held when the view was taken (the memory engine is for tests and
/// the simulator, whose states are small).
struct MemoryView {
    trees: BTreeMap<Space, Tree>,
}

impl Trees for MemoryView {
    fn visible<T>(&self, read: impl FnOnce(&BTreeMap<Space, Tree>) -> T) -> StorageResult<T> {
        Ok(read(&self.trees))
    }
}

/// [`Reader`] for a type of [`Trees`] (a blanket impl would overlap RocksDB's).
macro_rules! reader_over_trees {
    ($reader:ty) => {
        impl Reader for $reader {
            fn get(&self, space: Space, key: &[u8]) -> StorageResult<Option<Vec<u8>>> {
                self.visible(|trees| trees.get(&space).and_then(|t| t.get(key)).cloned())
            }

            fn scan(
                &self,
                space: Space,
                from: &[u8],
                to: Option<&[u8]>,
                limit: usize,
            ) -> StorageResult<Pairs> {
                self.visible(|trees| {
                    let Some(tree) = trees.get(&space) else {
                        return Vec::new();
                    };
                    tree.range(from.to_vec()..)
                        .take_while(|(k, _)| to.is_none_or(|to| k.as_slice() < to))
                        .take(limit)
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                })
            }

            fn last_before(
                &self,
                space: Space,
                before: Option<&[u8]>,
            ) -> StorageResult<Option<(Vec<u8>, Vec<u8>)>> {
                self.visible(|trees| {
                    let tree = trees.get(&space)?;
                    let found = match before {
                        Some(before) => tree.range(..before.to_vec()).next_back(),
                        None => tree.iter().next_back(),
                    };
                    found.map(|(k, v)| (k.clone(), v.clone()))
                })
            }
        }
    };
}

reader_over_trees!(MemoryEngine);
reader_over_trees!(MemoryView);

impl Engine for MemoryEngine {
    /// Nothing is left behind in memory.
    fn compact_storage(&self) -> StorageResult<()> {
        self.visible(|_| ())
    }

    fn size_bytes(&self) -> StorageResult<u64> {
        self.visible(|trees| {
            trees
                .values()
                .flat_map(|tree| tree.iter())
                .map(|(key, value)| (key.len() + value.len()) as u64)
                .sum()
        })
    }

    fn view(self: Arc<Self>) -> StorageResult<Arc<dyn Reader>> {
        let trees = self.visible(Clone::clone)?;
        Ok(Arc::new(MemoryView { trees }))
    }

    fn write(&self, batch: WriteBatch, durability: Durability) -> StorageResult<()> {
        let mut state = self.lock();
        if state.crashed {
            return Err(StorageError::Crashed);
        }
        match state.writes_before_crash {
            Some(0) => {
                Self::crash_locked(&mut state);
                return Err(StorageError::Crashed);
            }
            Some(n) => state.writes_before_crash = Some(n - 1),
            None => {}
        }
        apply(&mut state.visible, &batch);
        state.pending.push(batch);
        if durability == Durability::Sync {
            let pending = std::mem::take(&mut state.pending);
            for batch in &pending {
                apply(&mut state.durable, batch);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_loses_buffered_writes_but_keeps_synced_ones() {
        let engine = MemoryEngine::new();
        let mut a = WriteBatch::new();
        a.put(Space::Kv, b"a".to_vec(), b"1".to_vec());
        engine.write(a, Durability::Buffered).unwrap();
        let mut b = WriteBatch::new();
        b.put(Space::Kv, b"b".to_vec(), b"2".to_vec());
        engine.write(b, Durability::Sync).unwrap();
        let mut c = WriteBatch::new();
        c.put(Space::Kv, b"c".to_vec(), b"3".to_vec());
        engine.write(c, Durability::Buffered).unwrap();
        assert!(engine.get(Space::Kv, b"c").unwrap().is_some());

        engine.crash();
        assert!(matches!(
            engine.get(Space::Kv, b"a"),
            Err(StorageError::Crashed)
        ));
        engine.restart();
        // The synced write made the earlier buffered one durable too (one shared WAL).
        assert_eq!(engine.get(Space::Kv, b"a").unwrap(), Some(b"1".to_vec()));
        assert_eq!(engine.get(Space::Kv, b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(engine.get(Space::Kv, b"c").unwrap(), None);
    }

    #[test]
    fn a_planned_crash_strikes_at_the_chosen_write() {
        let engine = MemoryEngine::new();
        engine.crash_after_writes(1);
        let batch = |key: &[u8]| {
            let mut batch = WriteBatch::new();
            batch.put(Space::Kv, key.to_vec(), b"v".to_vec());
            batch
        };
        engine.write(batch(b"a"), Durability::Sync).unwrap();
        assert!(matches!(
            engine.write(batch(b"b"), Durability::Sync),
            Err(StorageError::Crashed)
        ));
        engine.restart();
        assert!(engine.get(Space::Kv, b"a").unwrap().is_some());
        assert!(engine.get(Space::Kv, b"b").unwrap().is_none());
        engine.write(batch(b"c"), Durability::Sync).unwrap();
    }

    #[test]
    fn keeps_every_promise_of_an_engine() {
        super::super::contract::check_every_promise(|| Arc::new(MemoryEngine::new()));
    }
}
