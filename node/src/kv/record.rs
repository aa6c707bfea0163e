//! How a key-value is stored in [`Space::Kv`]: the proto [`KeyValue`] without its key, which
//! is already the engine key and need not be stored twice.

use bytes::Bytes;
use prost::Message;

use crate::proto::KeyValue;
use crate::storage::{Reader, Space, StorageError, StorageResult};

/// Keys read per engine call when walking the whole key space, to bound memory.
const PAGE: usize = 1024;

pub(super) fn encode(kv: &KeyValue) -> Vec<u8> {
    KeyValue {
        key: Bytes::new(),
        ..kv.clone()
    }
    .encode_to_vec()
}

pub(super) fn decode(key: Vec<u8>, stored: &[u8]) -> StorageResult<KeyValue> {
    let mut kv = KeyValue::decode(stored).map_err(|e| StorageError::Corrupt {
        space: Space::Kv,
        detail: format!("key {}: {e}", key.escape_ascii()),
    })?;
    kv.key = Bytes::from(key);
    Ok(kv)
}

pub(super) fn get(engine: &dyn Reader, key: &[u8]) -> StorageResult<Option<KeyValue>> {
    engine
        .get(Space::Kv, key)?
        .map(|stored| decode(key.to_vec(), &stored))
        .transpose()
}

/// Calls `visit` with every key-value, in key order.
pub(super) fn for_each(engine: &dyn Reader, mut visit: impl FnMut(KeyValue)) -> StorageResult<()> {
    let mut from = Vec::new();
    loop {
        let page = engine.scan(Space::Kv, &from, None, PAGE)?;
        let full = page.len() == PAGE;
        for (key, stored) in page {
            // The smallest key after this one, where the next page starts.
            from.clone_from(&key);
            from.push(0);
            visit(decode(key, &stored)?);
        }
        if !full {
            return Ok(());
        }
    }
}
