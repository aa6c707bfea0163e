//! Test builders: a store over a [`MemoryEngine`] that numbers log entries itself.

use std::sync::Arc;

use crate::proto::compare::Target;
use crate::proto::{Compare, KeyValue};
use crate::storage::{Engine, MemoryEngine};

use super::{ApplyBatch, Command, CommandOutcome, KvStore};

pub(super) struct Harness {
    pub engine: Arc<MemoryEngine>,
    pub store: KvStore,
    retention: u64,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_retention(1_000)
    }

    pub fn with_retention(retention: u64) -> Self {
        let engine = Arc::new(MemoryEngine::new());
        let store = KvStore::open(engine.clone() as Arc<dyn Engine>, retention).unwrap();
        Self {
            engine,
            store,
            retention,
        }
    }

    /// Applies `commands` as the next log entries, in one call.
    pub fn apply(&mut self, commands: impl IntoIterator<Item = Command>) -> ApplyBatch {
        let first = self.store.applied_index() + 1;
        let entries: Vec<_> = (first..)
            .zip(commands)
            .map(|(index, command)| (index, Some(command)))
            .collect();
        self.store.apply(&entries).unwrap()
    }

    /// Applies one command as the next log entry and returns its outcome.
    pub fn run(&mut self, command: Command) -> CommandOutcome {
        let mut batch = self.apply([command]);
        assert_eq!(batch.outcomes.len(), 1);
        batch.outcomes.remove(0).1
    }

    /// Opens a second store over the same engine, as a restarted node would.
    pub fn reopen(&mut self) {
        self.store = KvStore::open(self.engine.clone() as Arc<dyn Engine>, self.retention).unwrap();
    }

    pub fn get(&self, key: &str) -> Option<KeyValue> {
        self.store.get(key.as_bytes()).unwrap()
    }
}

pub(super) fn put(key: &'static str, value: &'static str) -> Command {
    Command::put(key, value, 0, false)
}

pub(super) fn compare(target: Target) -> Compare {
    Compare {
        target: Some(target),
    }
}

/// The keys of a page, as strings, for readable assertions.
pub(super) fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}
