//! The etcd v3 API's requests as the node carries them out: reads of a key or a range at a
//! revision after the read barrier their consistency asks for, and writes through the same
//! path as every other write (proposed here when this node leads, forwarded otherwise). The
//! gRPC service (`etcd_service`) checks requests in etcd's terms and makes etcd's headers.

use dengine_proto::etcd::etcdserverpb as pb;

use super::{lock_poisoned, ApiError, Header, KvApi, ReadPolicy};
use crate::kv::etcd::{range_response, EtcdAnswer, EtcdFailure, EtcdRequest, Interval};
use crate::kv::KvError;
use crate::server::write::{WriteOutcome, WriteRequest};

impl KvApi {
    /// An etcd Range: linearizable unless `serializable`, which reads this node's state as it
    /// is (etcd's serializable reads; d-engine's eventual ones).
    pub async fn etcd_range(
        &self,
        request: &pb::RangeRequest,
    ) -> Result<(Header, pb::RangeResponse), ApiError> {
        let policy = match request.serializable {
            true => ReadPolicy::Eventual,
            false => ReadPolicy::Linearizable,
        };
        self.frontend.reads.wait(Some(policy)).await?;
        let (kvs, revision) = match Interval::new(&request.key, &request.range_end) {
            // One key is read at once under the state machine's lock, as the native Get.
            Interval::Key(key) => {
                let store = self.kv.read().map_err(|_| lock_poisoned())?;
                let found = store.current().get_at(&key, request.revision);
                (found.map(|kv| kv.into_iter().collect()), store.revision())
            }
            // A range may be long: read it from a view, not under the lock the event loop
            // needs to apply.
            Interval::Range { start, end } => {
                let view = self.kv.read().map_err(|_| lock_poisoned())?.view()?;
                let found = view.range_at(&start, end.as_deref(), request.revision);
                (found, view.revision())
            }
        };
        let kvs = kvs.map_err(etcd_read_error)?;
        Ok((
            self.frontend.header.at(revision),
            range_response(kvs, request),
        ))
    }

    /// An etcd Put, DeleteRange, Txn or Compact, answered once applied here.
    pub async fn etcd_write(&self, request: EtcdRequest) -> Result<(Header, EtcdAnswer), ApiError> {
        match self
            .frontend
            .writes
            .execute(WriteRequest::Etcd(request), false)
            .await?
        {
            WriteOutcome::Etcd { header, answer } => {
                Ok((self.frontend.header.answered_here(header), answer))
            }
            _ => Err(ApiError::Internal(
                "internal error: an etcd write was answered with another kind of outcome".into(),
            )),
        }
    }
}

impl KvApi {
    /// The header of this node's state now.
    pub fn header_now(&self) -> Header {
        let revision = self.kv.read().map(|kv| kv.revision()).unwrap_or(0);
        self.header_at(revision)
    }

    /// The header of this node's state at `revision` (cluster, member and term from the
    /// status; no lock on the state machine).
    pub fn header_at(&self, revision: i64) -> Header {
        self.frontend.header.at(revision)
    }

    /// `key` as it was just before `revision` (a watch event's `prev_kv`); `None` when it did
    /// not exist then, or that past is compacted.
    pub fn version_before(&self, key: &[u8], revision: i64) -> Option<crate::proto::KeyValue> {
        // Revision 0 reads "now" and is nothing's previous revision: before 1 was nothing.
        let before = revision.checked_sub(1).filter(|&before| before > 0)?;
        let store = self.kv.read().ok()?;
        store.current().get_at(key, before).ok().flatten()
    }
}

/// A read's error as etcd words it.
fn etcd_read_error(error: KvError) -> ApiError {
    match error {
        KvError::Compacted { .. } => EtcdFailure::Compacted.into(),
        KvError::FutureRevision { .. } => EtcdFailure::FutureRevision.into(),
        other => other.into(),
    }
}

/// What etcd's HashKV answers: a hash of the key space at a revision, to compare members by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpaceHash {
    pub hash: u32,
    /// The revision hashed.
    pub revision: i64,
    /// The compaction point then.
    pub compacted_revision: i64,
}

impl KvApi {
    /// A CRC-32C of every key-value (key, value, create and mod revision, version) at
    /// `revision` (0: now), in key order, read from this node's own state: equal on members
    /// that applied the same log, whatever their storage did since.
    pub fn etcd_hash_kv(&self, revision: i64) -> Result<(Header, KeySpaceHash), ApiError> {
        let view = self.kv.read().map_err(|_| lock_poisoned())?.view()?;
        let kvs = view
            .range_at(&[], None, revision)
            .map_err(etcd_read_error)?;
        let mut hash = 0;
        for kv in &kvs {
            for part in [
                kv.key.as_ref(),
                kv.value.as_ref(),
                &kv.create_revision.to_be_bytes(),
                &kv.mod_revision.to_be_bytes(),
                &kv.version.to_be_bytes(),
            ] {
                hash = crc32c::crc32c_append(hash, &(part.len() as u64).to_be_bytes());
                hash = crc32c::crc32c_append(hash, part);
            }
        }
        let hashed = match revision {
            0 => view.revision(),
            revision => revision,
        };
        Ok((
            self.frontend.header.at(view.revision()),
            KeySpaceHash {
                hash,
                revision: hashed,
                compacted_revision: view.compacted_revision(),
            },
        ))
    }

    /// etcd's Defragment: the engine rewrites its data without what deletes left behind.
    pub async fn etcd_defragment(&self) -> Result<Header, ApiError> {
        // Off the state machine's lock: a full compaction takes a while, and applies go on.
        let engine = self.kv.read().map_err(|_| lock_poisoned())?.engine();
        tokio::task::spawn_blocking(move || engine.compact_storage())
            .await
            .map_err(|e| ApiError::Internal(format!("internal error: defragmenting: {e}")))??;
        let revision = self.kv.read().map_err(|_| lock_poisoned())?.revision();
        Ok(self.frontend.header.at(revision))
    }

    /// The bytes this node's engine holds (etcd's `dbSize`).
    pub fn storage_bytes(&self) -> Result<u64, ApiError> {
        Ok(self.kv.read().map_err(|_| lock_poisoned())?.size_bytes()?)
    }
}
