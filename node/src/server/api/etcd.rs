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
        // A range may be long: read it from a view, not under the lock the event loop needs.
        let view = self.kv.read().map_err(|_| lock_poisoned())?.view()?;
        let kvs = match Interval::new(&request.key, &request.range_end) {
            Interval::Key(key) => view
                .get_at(&key, request.revision)
                .map(|kv| kv.into_iter().collect()),
            Interval::Range { start, end } => {
                view.range_at(&start, end.as_deref(), request.revision)
            }
        }
        .map_err(etcd_read_error)?;
        Ok((
            self.frontend.header.at(view.revision()),
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
            WriteOutcome::Etcd { header, answer } => Ok((header, answer)),
            _ => Err(ApiError::Internal(
                "internal error: an etcd write was answered with another kind of outcome".into(),
            )),
        }
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
