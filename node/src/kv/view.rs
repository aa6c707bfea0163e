//! [`KvView`]: reads of the state machine as it was at one moment.
//!
//! Reads that take a while (a long scan, a watch replaying history, a snapshot being encoded)
//! read from a view of the engine taken under the state machine's lock, and then let go of the
//! lock: the event loop, which needs it to apply, never waits for them.

use std::sync::Arc;

use prost::Message as _;

use crate::proto::{Event, KeyValue};
use crate::storage::{prefix_end, Reader, Space, StorageResult};

use super::meta::Meta;
use super::{history, record, versions, KvError};

/// Keys read per engine call by a range, to bound each read.
const RANGE_PAGE: usize = 1024;

/// History rows one page of a watch's replay reads at most.
pub const HISTORY_PAGE_ROWS: usize = 1024;

/// The state machine as one reader sees it: the engine (as it is, or a point-in-time view of
/// it) and the revisions that go with it.
#[derive(Clone)]
pub struct KvView {
    reader: Arc<dyn Reader>,
    meta: Meta,
}

/// One page of a watch's history (see [`KvView::history_page`]).
#[derive(Debug, Default)]
pub struct HistoryPage {
    pub events: Vec<Event>,
    /// Where the next page starts; `None` when this was the last.
    pub next: Option<i64>,
}

/// The snapshot payload: the current key-values and every retained version. A snapshot written
/// before versions were kept has none: after restoring it nothing before its revision can be
/// read or replayed, and the compacted revision says so.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct KvSnapshot {
    #[prost(int64, tag = "1")]
    pub revision: i64,
    /// In key order.
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
    /// Every retained version, in revision order.
    #[prost(message, repeated, tag = "3")]
    pub history: Vec<Event>,
    #[prost(int64, tag = "4")]
    pub compacted_revision: i64,
    /// Every lease, in id order (the keys' records say which keys are attached).
    #[prost(message, repeated, tag = "5")]
    pub leases: Vec<super::LeaseRecord>,
}

impl KvView {
    pub(super) fn new(reader: Arc<dyn Reader>, meta: Meta) -> Self {
        Self { reader, meta }
    }

    /// Index of the last Raft log entry applied in this view.
    pub fn applied_index(&self) -> u64 {
        self.meta.applied_index
    }

    /// Revision of the last state change in this view.
    pub fn revision(&self) -> i64 {
        self.meta.revision
    }

    /// Highest revision whose watch history is gone.
    pub fn compacted_revision(&self) -> i64 {
        self.meta.compacted_revision
    }

    pub fn get(&self, key: &[u8]) -> StorageResult<Option<KeyValue>> {
        record::get(self.reader.as_ref(), key)
    }

    /// `key` as it was at `revision` (0: now), as etcd's Range at a revision.
    ///
    /// Fails with [`KvError::Compacted`] below the compaction point (the state there is still
    /// readable: each key's newest version at or below it is kept) and with
    /// [`KvError::FutureRevision`] above the current revision.
    pub fn get_at(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, KvError> {
        let revision = self.readable(revision)?;
        // A key unchanged since `revision` held then what it holds now: the common case, read
        // from the current state without touching the versions.
        match self.get(key)? {
            Some(kv) if kv.mod_revision <= revision => Ok(Some(kv)),
            _ if revision == self.meta.revision => Ok(None),
            _ => self.version_at(key, revision),
        }
    }

    /// [`KvView::scan`] at `revision` (0: now): the keys under `prefix` as they were then.
    pub fn scan_at(
        &self,
        prefix: &[u8],
        continuation: &[u8],
        limit: usize,
        revision: i64,
    ) -> Result<(Vec<KeyValue>, Vec<u8>), KvError> {
        let revision = self.readable(revision)?;
        if revision == self.meta.revision {
            return self.scan(prefix, continuation, limit);
        }
        let from = scan_start(prefix, continuation)?;
        let limit = limit.max(1);
        let end = prefix_end(prefix);
        // One more than asked tells whether another page exists.
        let mut kvs = Vec::new();
        versions::for_each_key_at(
            self.reader.as_ref(),
            from,
            end.as_deref(),
            revision,
            |key, at| {
                // A key whose newest version then is a delete did not exist then.
                if let Some(kv) = history::version(self.reader.as_ref(), at, &key)? {
                    kvs.push(kv);
                }
                Ok(kvs.len() <= limit)
            },
        )?;
        let next = page_end(&mut kvs, limit);
        Ok((kvs, next))
    }

    /// Every key in `[start, end)` (`end` `None`: no upper bound) as it was at `revision` (0:
    /// now), in key order: what an etcd Range reads.
    pub fn range_at(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        revision: i64,
    ) -> Result<Vec<KeyValue>, KvError> {
        let revision = self.readable(revision)?;
        if revision == self.meta.revision {
            let mut kvs = Vec::new();
            let mut from = start.to_vec();
            loop {
                let page = self.reader.scan(Space::Kv, &from, end, RANGE_PAGE)?;
                let full = page.len() == RANGE_PAGE;
                for (key, stored) in page {
                    from.clone_from(&key);
                    from.push(0);
                    kvs.push(record::decode(key, &stored)?);
                }
                if !full {
                    return Ok(kvs);
                }
            }
        }
        let mut kvs = Vec::new();
        versions::for_each_key_at(self.reader.as_ref(), start, end, revision, |key, at| {
            kvs.extend(history::version(self.reader.as_ref(), at, &key)?);
            Ok(true)
        })?;
        Ok(kvs)
    }

    fn version_at(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, KvError> {
        match versions::latest_at(self.reader.as_ref(), key, revision)? {
            Some(at) => Ok(history::version(self.reader.as_ref(), at, key)?),
            None => Ok(None),
        }
    }

    /// The revision a read at `revision` reads: 0 (or less) is now; below the compaction point
    /// and above the current revision there is nothing to read.
    fn readable(&self, revision: i64) -> Result<i64, KvError> {
        let Meta {
            revision: current,
            compacted_revision: compacted,
            ..
        } = self.meta;
        match revision {
            now if now <= 0 => Ok(current),
            past if past < compacted => Err(KvError::Compacted {
                requested: past,
                oldest_retained: compacted,
            }),
            future if future > current => Err(KvError::FutureRevision {
                requested: future,
                current,
            }),
            revision => Ok(revision),
        }
    }

    /// Up to `limit` keys starting with `prefix` (all keys when empty), in key order, after
    /// `continuation` (empty for the first page). Returns the page and the continuation of the
    /// next one, empty when there are no more keys.
    ///
    /// The continuation is the smallest key after the last one returned: a key inserted
    /// between two pages is still seen if it sorts after the page boundary. A limit of 0 is
    /// read as 1, since an empty page with no continuation would look like the end.
    pub fn scan(
        &self,
        prefix: &[u8],
        continuation: &[u8],
        limit: usize,
    ) -> Result<(Vec<KeyValue>, Vec<u8>), KvError> {
        let from = scan_start(prefix, continuation)?;
        let limit = limit.max(1);
        let end = prefix_end(prefix);
        // One more than asked tells whether another page exists.
        let rows = self
            .reader
            .scan(Space::Kv, from, end.as_deref(), limit.saturating_add(1))?;
        let mut kvs = rows
            .into_iter()
            .map(|(key, stored)| record::decode(key, &stored))
            .collect::<StorageResult<Vec<_>>>()?;
        let next = page_end(&mut kvs, limit);
        Ok((kvs, next))
    }

    /// The retained events with revision `>= start_revision` on `key`, or on every key under
    /// it when `prefix`, reading at most [`HISTORY_PAGE_ROWS`] stored revisions: a watch
    /// replays a long history page by page.
    ///
    /// Fails with [`KvError::Compacted`] when some of those events were dropped. Revision 0
    /// never existed, so with nothing compacted a start of 0 replays the whole history.
    pub fn history_page(
        &self,
        start_revision: i64,
        key: &[u8],
        prefix: bool,
    ) -> Result<HistoryPage, KvError> {
        let compacted = self.meta.compacted_revision;
        if start_revision.max(1) <= compacted {
            return Err(KvError::Compacted {
                requested: start_revision,
                oldest_retained: compacted + 1,
            });
        }
        if start_revision > self.meta.revision {
            return Ok(HistoryPage::default());
        }
        history_read_failpoint()?;
        let (events, next) = history::read_page(
            self.reader.as_ref(),
            start_revision,
            key,
            prefix,
            HISTORY_PAGE_ROWS,
        )?;
        Ok(HistoryPage {
            events,
            next: next.filter(|&next| next <= self.meta.revision),
        })
    }

    /// Every retained event from `start_revision` on (see [`KvView::history_page`]), in one
    /// list.
    pub fn events_since(
        &self,
        start_revision: i64,
        key: &[u8],
        prefix: bool,
    ) -> Result<Vec<Event>, KvError> {
        let mut events = Vec::new();
        let mut next = Some(start_revision);
        while let Some(start) = next {
            let page = self.history_page(start, key, prefix)?;
            events.extend(page.events);
            next = page.next;
        }
        Ok(events)
    }

    /// Every key-value and the revision, encoded: a snapshot at [`KvView::applied_index`].
    pub fn snapshot_data(&self) -> StorageResult<Vec<u8>> {
        crate::server::failpoints::failpoint!("snapshot_encode");
        let mut kvs = Vec::new();
        record::for_each(self.reader.as_ref(), |kv| kvs.push(kv))?;
        Ok(KvSnapshot {
            revision: self.meta.revision,
            kvs,
            history: history::all(self.reader.as_ref())?,
            compacted_revision: self.meta.compacted_revision,
            leases: super::lease::load(self.reader.as_ref())?,
        }
        .encode_to_vec())
    }
}

/// Where a scan of `prefix` starts: at the prefix, or at a continuation from a scan of it.
fn scan_start<'a>(prefix: &'a [u8], continuation: &'a [u8]) -> Result<&'a [u8], KvError> {
    if continuation.is_empty() {
        Ok(prefix)
    } else if continuation.starts_with(prefix) {
        Ok(continuation)
    } else {
        Err(KvError::InvalidContinuation)
    }
}

/// Cuts a page read one key longer than `limit` down to `limit`, and answers the continuation:
/// the smallest key after the last one kept when there was more, empty otherwise.
fn page_end(kvs: &mut Vec<KeyValue>, limit: usize) -> Vec<u8> {
    if kvs.len() <= limit {
        return Vec::new();
    }
    kvs.truncate(limit);
    let mut next = kvs.last().map(|kv| kv.key.to_vec()).unwrap_or_default();
    next.push(0);
    next
}

/// Failpoint `watch_history_read`: before a page of a watch's history is read.
fn history_read_failpoint() -> StorageResult<()> {
    crate::server::failpoints::failpoint!("watch_history_read");
    Ok(())
}
