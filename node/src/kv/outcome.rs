//! What applying commands reports back: to the client that proposed each one, and to watchers.

use crate::proto::{Event, KeyValue};

use super::etcd::{EtcdAnswer, EtcdFailure};

/// What one command did. `revision` is the store's revision after the command.
#[derive(Debug, Clone, PartialEq)]
pub enum CommandOutcome {
    Put {
        revision: i64,
        /// The key before the write, when the command asked for it and the key existed.
        prev_kv: Option<KeyValue>,
    },
    Delete {
        revision: i64,
        deleted: bool,
        prev_kv: Option<KeyValue>,
    },
    CompareAndSwap {
        succeeded: bool,
        revision: i64,
        /// The key as it was when the comparison was evaluated.
        current: Option<KeyValue>,
    },
    Expire {
        deleted: bool,
    },
    /// An etcd write: its answer (without headers), or why it changed nothing.
    Etcd {
        revision: i64,
        result: Result<EtcdAnswer, EtcdFailure>,
    },
}

/// The result of [`KvStore::apply`](super::KvStore::apply).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ApplyBatch {
    /// One per applied command, by log index.
    pub outcomes: Vec<(u64, CommandOutcome)>,
    /// Every state change, in revision order, for watchers.
    pub events: Vec<Event>,
}
