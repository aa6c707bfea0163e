//! etcd's writes on the state machine: Put, DeleteRange, Txn, Compact and the lease changes
//! (grant, revoke, checkpoint), with the semantics of etcd's `applierV3backend` and lessor. A transaction's changes, and a range delete's, all take one
//! revision; a Txn picks its branches by comparing the state before it (nested ones too); and a
//! write that cannot apply (a lease that does not exist, `ignore_value` on a missing key, a
//! compaction outside the history) fails whole, before it changes anything.
//!
//! The log carries etcd's own request messages, so that what a client sent is what every
//! replica applies.

use bytes::Bytes;
use dengine_proto::etcd::etcdserverpb as pb;
use dengine_proto::etcd::mvccpb;

use super::apply::{Attachment, Staged};
use super::lease::LeaseRecord;
use crate::proto::KeyValue;
use crate::storage::StorageResult;

/// One etcd write, as a Raft log entry carries it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EtcdOp {
    #[prost(oneof = "EtcdRequest", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub request: Option<EtcdRequest>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum EtcdRequest {
    #[prost(message, tag = "1")]
    Put(pb::PutRequest),
    #[prost(message, tag = "2")]
    DeleteRange(pb::DeleteRangeRequest),
    #[prost(message, tag = "3")]
    Txn(pb::TxnRequest),
    #[prost(message, tag = "4")]
    Compact(pb::CompactionRequest),
    /// A lease with the id (never 0: the server picks one first) and the TTL (raised to the
    /// minimum by the server) it carries.
    #[prost(message, tag = "5")]
    LeaseGrant(pb::LeaseGrantRequest),
    /// Ends a lease and deletes its keys; the leader proposes one when a lease expires.
    #[prost(message, tag = "6")]
    LeaseRevoke(pb::LeaseRevokeRequest),
    /// The leader records the TTL leases have left, for a leader after it to resume from.
    #[prost(message, tag = "7")]
    LeaseCheckpoint(pb::LeaseCheckpointRequest),
}

/// What an etcd write answers, headers left to the server (they name the member that answers).
#[derive(Clone, PartialEq, prost::Message)]
pub struct EtcdAnswer {
    #[prost(oneof = "EtcdResponse", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub response: Option<EtcdResponse>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum EtcdResponse {
    #[prost(message, tag = "1")]
    Put(pb::PutResponse),
    #[prost(message, tag = "2")]
    DeleteRange(pb::DeleteRangeResponse),
    #[prost(message, tag = "3")]
    Txn(pb::TxnResponse),
    #[prost(message, tag = "4")]
    Compact(pb::CompactionResponse),
    #[prost(message, tag = "5")]
    LeaseGrant(pb::LeaseGrantResponse),
    #[prost(message, tag = "6")]
    LeaseRevoke(pb::LeaseRevokeResponse),
    #[prost(message, tag = "7")]
    LeaseCheckpoint(pb::LeaseCheckpointResponse),
}

impl From<EtcdResponse> for EtcdAnswer {
    fn from(response: EtcdResponse) -> Self {
        Self {
            response: Some(response),
        }
    }
}

/// Why an etcd write changed nothing; the server answers each with etcd's own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtcdFailure {
    /// A put or a revoke names a lease that does not exist.
    LeaseNotFound,
    /// A grant names a lease that exists.
    LeaseExists,
    /// A put with `ignore_value` on a key that does not exist.
    KeyNotFound,
    /// A compaction at or below the compaction point.
    Compacted,
    /// A compaction above the current revision.
    FutureRevision,
}

/// The keys a key and range end name, etcd's way: no range end is the key alone, a range end of
/// `\0` is every key from the key on, and a key of `\0` with it is every key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interval {
    Key(Vec<u8>),
    /// `[start, end)`; no end: no upper bound.
    Range {
        start: Vec<u8>,
        end: Option<Vec<u8>>,
    },
}

impl Interval {
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        match range_end {
            [] => Interval::Key(key.to_vec()),
            [0] => Interval::Range {
                start: if key == [0] { Vec::new() } else { key.to_vec() },
                end: None,
            },
            end => Interval::Range {
                start: key.to_vec(),
                end: Some(end.to_vec()),
            },
        }
    }

    /// Whether `key` is in the interval.
    pub fn contains(&self, key: &[u8]) -> bool {
        match self {
            Interval::Key(only) => only == key,
            Interval::Range { start, end } => {
                key >= start.as_slice() && end.as_ref().is_none_or(|end| key < end.as_slice())
            }
        }
    }
}

/// A key-value as etcd's messages carry it.
pub fn to_etcd(kv: KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key.to_vec(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.to_vec(),
        lease: kv.lease,
    }
}

/// A Range's answer from the keys of its interval (in key order, as they are at the revision
/// read), etcd's way: `count` is every key of the interval; the revision filters, then the
/// sort, then the limit (`more` when it cut) apply to the rest. The header is the server's.
pub fn range_response(kvs: Vec<KeyValue>, request: &pb::RangeRequest) -> pb::RangeResponse {
    use pb::range_request::{SortOrder, SortTarget};
    let count = kvs.len() as i64;
    if request.count_only {
        return pb::RangeResponse {
            count,
            ..pb::RangeResponse::default()
        };
    }
    let limit = usize::try_from(request.limit).unwrap_or(0);
    let filtered = request.min_mod_revision != 0
        || request.max_mod_revision != 0
        || request.min_create_revision != 0
        || request.max_create_revision != 0;
    let mut kvs = kvs;
    if limit > 0 && request.sort_order() == SortOrder::None && !filtered {
        // etcd reads only one key past the limit, in key order, when no order was asked for,
        // even with a sort target it then sorts by: the answer is those keys, sorted.
        kvs.truncate(limit + 1);
    }
    let within = |revision: i64, min: i64, max: i64| {
        (min == 0 || revision >= min) && (max == 0 || revision <= max)
    };
    let mut kvs: Vec<KeyValue> = kvs
        .into_iter()
        .filter(|kv| {
            within(
                kv.mod_revision,
                request.min_mod_revision,
                request.max_mod_revision,
            ) && within(
                kv.create_revision,
                request.min_create_revision,
                request.max_create_revision,
            )
        })
        .collect();
    let target = request.sort_target();
    let order = match request.sort_order() {
        // A sort target without an order sorts ascending, as etcd does.
        SortOrder::None if target != SortTarget::Key => SortOrder::Ascend,
        order => order,
    };
    if order != SortOrder::None {
        // Stable, from key order, in either direction: equal values stay in key order, as
        // etcd's sort leaves them.
        let directed = |ordering: std::cmp::Ordering| match order {
            SortOrder::Descend => ordering.reverse(),
            _ => ordering,
        };
        match target {
            SortTarget::Key => kvs.sort_by(|a, b| directed(a.key.cmp(&b.key))),
            SortTarget::Version => kvs.sort_by(|a, b| directed(a.version.cmp(&b.version))),
            SortTarget::Create => {
                kvs.sort_by(|a, b| directed(a.create_revision.cmp(&b.create_revision)))
            }
            SortTarget::Mod => kvs.sort_by(|a, b| directed(a.mod_revision.cmp(&b.mod_revision))),
            SortTarget::Value => kvs.sort_by(|a, b| directed(a.value.cmp(&b.value))),
        }
    }
    let more = limit > 0 && kvs.len() > limit;
    if more {
        kvs.truncate(limit);
    }
    pb::RangeResponse {
        header: None,
        kvs: kvs
            .into_iter()
            .map(|kv| {
                let mut kv = to_etcd(kv);
                if request.keys_only {
                    kv.value.clear();
                }
                kv
            })
            .collect(),
        more,
        count,
    }
}

/// Whether an etcd comparison holds on the keys of its interval as they are (every key of a
/// range must satisfy it). As in etcd, a missing key compares as zeros, except that a value
/// comparison on a missing key always fails.
fn compare_holds(compare: &pb::Compare, kvs: &[KeyValue]) -> bool {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    use std::cmp::Ordering;
    let holds_on = |kv: Option<&KeyValue>| {
        let ordering = match (compare.target(), &compare.target_union) {
            (CompareTarget::Value, Some(TargetUnion::Value(value))) => match kv {
                Some(kv) => kv.value.as_ref().cmp(value.as_slice()),
                None => return false,
            },
            (CompareTarget::Version, Some(TargetUnion::Version(version))) => {
                kv.map_or(0, |kv| kv.version).cmp(version)
            }
            (CompareTarget::Create, Some(TargetUnion::CreateRevision(revision))) => {
                kv.map_or(0, |kv| kv.create_revision).cmp(revision)
            }
            (CompareTarget::Mod, Some(TargetUnion::ModRevision(revision))) => {
                kv.map_or(0, |kv| kv.mod_revision).cmp(revision)
            }
            (CompareTarget::Lease, Some(TargetUnion::Lease(lease))) => {
                kv.map_or(0, |kv| kv.lease).cmp(lease)
            }
            // A target whose value is missing or of another kind: etcd compares against the
            // zero value of the target.
            (CompareTarget::Value, _) => match kv {
                Some(kv) => kv.value.as_ref().cmp(&[][..]),
                None => return false,
            },
            (CompareTarget::Version, _) => kv.map_or(0, |kv| kv.version).cmp(&0),
            (CompareTarget::Create, _) => kv.map_or(0, |kv| kv.create_revision).cmp(&0),
            (CompareTarget::Mod, _) => kv.map_or(0, |kv| kv.mod_revision).cmp(&0),
            (CompareTarget::Lease, _) => kv.map_or(0, |kv| kv.lease).cmp(&0),
        };
        match compare.result() {
            CompareResult::Equal => ordering == Ordering::Equal,
            CompareResult::NotEqual => ordering != Ordering::Equal,
            CompareResult::Greater => ordering == Ordering::Greater,
            CompareResult::Less => ordering == Ordering::Less,
        }
    };
    match kvs {
        [] => holds_on(None),
        kvs => kvs.iter().all(|kv| holds_on(Some(kv))),
    }
}

/// Which branch each transaction takes, nested ones included, in the order they run: decided
/// on the state before the transaction changes anything, as etcd does.
fn branches(staged: &Staged<'_>, txn: &pb::TxnRequest, taken: &mut Vec<bool>) -> StorageResult<()> {
    let mut succeeded = true;
    for compare in &txn.compare {
        let kvs = staged.keys(&Interval::new(&compare.key, &compare.range_end))?;
        if !compare_holds(compare, &kvs) {
            succeeded = false;
            break;
        }
    }
    taken.push(succeeded);
    for op in branch(txn, succeeded) {
        if let Some(pb::request_op::Request::RequestTxn(nested)) = &op.request {
            branches(staged, nested, taken)?;
        }
    }
    Ok(())
}

fn branch(txn: &pb::TxnRequest, succeeded: bool) -> &[pb::RequestOp] {
    match succeeded {
        true => &txn.success,
        false => &txn.failure,
    }
}

impl Staged<'_> {
    /// The keys of `interval` as the batch has left them, in key order.
    fn keys(&self, interval: &Interval) -> StorageResult<Vec<KeyValue>> {
        match interval {
            Interval::Key(key) => Ok(self.current(key)?.into_iter().collect()),
            Interval::Range { start, end } => self.range(start, end.as_deref()),
        }
    }

    /// Applies one etcd write.
    pub(super) fn etcd(&mut self, op: &EtcdOp) -> StorageResult<Result<EtcdAnswer, EtcdFailure>> {
        let Some(request) = &op.request else {
            // Like a command without an operation: only a newer binary writes one.
            return Err(crate::storage::StorageError::Corrupt {
                space: crate::storage::Space::RaftLog,
                detail: "an etcd write without a request (written by a newer version?)".into(),
            });
        };
        let revision = self.revision + 1;
        let answer = match request {
            EtcdRequest::Put(put) => {
                if let Err(failure) = self.check_put(put)? {
                    return Ok(Err(failure));
                }
                EtcdResponse::Put(self.etcd_put(put, revision)?)
            }
            EtcdRequest::DeleteRange(delete) => {
                EtcdResponse::DeleteRange(self.delete_range(delete, revision)?)
            }
            EtcdRequest::Txn(txn) => {
                let mut taken = Vec::new();
                branches(self, txn, &mut taken)?;
                if let Err(failure) = self.check_txn(txn, &mut taken.iter().copied())? {
                    return Ok(Err(failure));
                }
                EtcdResponse::Txn(self.txn(txn, revision, &mut taken.into_iter())?)
            }
            EtcdRequest::Compact(compact) => match self.compact(compact) {
                Ok(response) => EtcdResponse::Compact(response),
                Err(failure) => return Ok(Err(failure)),
            },
            EtcdRequest::LeaseGrant(grant) => match self.grant(grant) {
                Ok(response) => EtcdResponse::LeaseGrant(response),
                Err(failure) => return Ok(Err(failure)),
            },
            EtcdRequest::LeaseRevoke(revoke) => match self.revoke(revoke.id, revision)? {
                Ok(()) => EtcdResponse::LeaseRevoke(pb::LeaseRevokeResponse { header: None }),
                Err(failure) => return Ok(Err(failure)),
            },
            EtcdRequest::LeaseCheckpoint(checkpoint) => {
                self.checkpoint(checkpoint);
                EtcdResponse::LeaseCheckpoint(pb::LeaseCheckpointResponse { header: None })
            }
        };
        // Every change took `revision`; without any, the revision stays.
        if self.events.last().is_some_and(|(r, _)| *r == revision) {
            self.revision = revision;
        }
        Ok(Ok(answer.into()))
    }

    fn check_put(&self, put: &pb::PutRequest) -> StorageResult<Result<(), EtcdFailure>> {
        if put.lease != 0 && self.lease(put.lease).is_none() {
            return Ok(Err(EtcdFailure::LeaseNotFound));
        }
        if (put.ignore_value || put.ignore_lease) && self.current(&put.key)?.is_none() {
            return Ok(Err(EtcdFailure::KeyNotFound));
        }
        Ok(Ok(()))
    }

    /// The puts of the branches `taken` picks, checked before anything changes.
    fn check_txn(
        &self,
        txn: &pb::TxnRequest,
        taken: &mut impl Iterator<Item = bool>,
    ) -> StorageResult<Result<(), EtcdFailure>> {
        let succeeded = taken.next().unwrap_or(false);
        for op in branch(txn, succeeded) {
            let checked = match &op.request {
                Some(pb::request_op::Request::RequestPut(put)) => self.check_put(put)?,
                Some(pb::request_op::Request::RequestTxn(nested)) => {
                    self.check_txn(nested, taken)?
                }
                _ => Ok(()),
            };
            if checked.is_err() {
                return Ok(checked);
            }
        }
        Ok(Ok(()))
    }

    fn etcd_put(&mut self, put: &pb::PutRequest, revision: i64) -> StorageResult<pb::PutResponse> {
        let key = Bytes::copy_from_slice(&put.key);
        let current = self.current(&key)?;
        let value = match (&current, put.ignore_value) {
            (Some(current), true) => current.value.clone(),
            _ => Bytes::copy_from_slice(&put.value),
        };
        let lease = match (&current, put.ignore_lease) {
            (Some(current), true) => current.lease,
            _ => put.lease,
        };
        let prev_kv = current.clone().filter(|_| put.prev_kv).map(to_etcd);
        // An etcd put carries no TTL: a TTL the native API gave the key ends with it.
        self.write_at(revision, &key, current, value, Attachment::Lease(lease));
        Ok(pb::PutResponse {
            header: None,
            prev_kv,
        })
    }

    fn delete_range(
        &mut self,
        delete: &pb::DeleteRangeRequest,
        revision: i64,
    ) -> StorageResult<pb::DeleteRangeResponse> {
        let doomed = self.keys(&Interval::new(&delete.key, &delete.range_end))?;
        let deleted = doomed.len() as i64;
        let mut prev_kvs = Vec::new();
        for kv in doomed {
            if delete.prev_kv {
                prev_kvs.push(to_etcd(kv.clone()));
            }
            self.remove_at(revision, kv);
        }
        Ok(pb::DeleteRangeResponse {
            header: None,
            deleted,
            prev_kvs,
        })
    }

    fn txn(
        &mut self,
        txn: &pb::TxnRequest,
        revision: i64,
        taken: &mut impl Iterator<Item = bool>,
    ) -> StorageResult<pb::TxnResponse> {
        use pb::request_op::Request;
        use pb::response_op::Response;
        let succeeded = taken.next().unwrap_or(false);
        let mut responses = Vec::new();
        for op in branch(txn, succeeded) {
            let response = match &op.request {
                Some(Request::RequestRange(range)) => {
                    let kvs = self.keys(&Interval::new(&range.key, &range.range_end))?;
                    Response::ResponseRange(range_response(kvs, range))
                }
                Some(Request::RequestPut(put)) => {
                    Response::ResponsePut(self.etcd_put(put, revision)?)
                }
                Some(Request::RequestDeleteRange(delete)) => {
                    Response::ResponseDeleteRange(self.delete_range(delete, revision)?)
                }
                Some(Request::RequestTxn(nested)) => {
                    Response::ResponseTxn(self.txn(nested, revision, taken)?)
                }
                // The server refuses an empty operation before proposing.
                None => continue,
            };
            responses.push(pb::ResponseOp {
                response: Some(self.with_header_as_of_now(response, revision)),
            });
        }
        Ok(pb::TxnResponse {
            header: None,
            succeeded,
            responses,
        })
    }

    /// A response inside a Txn carries a header with the revision as of its operation, as in
    /// etcd: the transaction's revision once it changed something, the one before until then.
    /// A nested Txn's own header stays empty; only the outermost one gets a revision.
    fn with_header_as_of_now(
        &self,
        response: pb::response_op::Response,
        revision: i64,
    ) -> pb::response_op::Response {
        use pb::response_op::Response;
        let changed = self.events.last().is_some_and(|(r, _)| *r == revision);
        let header = Some(pb::ResponseHeader {
            revision: if changed { revision } else { self.revision },
            ..Default::default()
        });
        match response {
            Response::ResponseRange(r) => {
                Response::ResponseRange(pb::RangeResponse { header, ..r })
            }
            Response::ResponsePut(r) => Response::ResponsePut(pb::PutResponse { header, ..r }),
            Response::ResponseDeleteRange(r) => {
                Response::ResponseDeleteRange(pb::DeleteRangeResponse { header, ..r })
            }
            Response::ResponseTxn(r) => Response::ResponseTxn(pb::TxnResponse {
                header: Some(pb::ResponseHeader::default()),
                ..r
            }),
        }
    }

    /// Moves the compaction point to the revision asked for; the store drops what it covers
    /// when it writes the batch.
    fn compact(
        &mut self,
        compact: &pb::CompactionRequest,
    ) -> Result<pb::CompactionResponse, EtcdFailure> {
        // Compacting at 0 before anything was compacted compacts nothing and is no error, as
        // compacting etcd's empty store at its first revision is not.
        let nothing_yet = compact.revision == 0 && self.compacted_revision == 0;
        if compact.revision <= self.compacted_revision && !nothing_yet {
            return Err(EtcdFailure::Compacted);
        }
        if compact.revision > self.revision {
            return Err(EtcdFailure::FutureRevision);
        }
        self.compacted_revision = compact.revision;
        Ok(pb::CompactionResponse { header: None })
    }

    fn grant(
        &mut self,
        grant: &pb::LeaseGrantRequest,
    ) -> Result<pb::LeaseGrantResponse, EtcdFailure> {
        // The server never proposes id 0; etcd's lessor answers it as a missing lease.
        if grant.id == 0 {
            return Err(EtcdFailure::LeaseNotFound);
        }
        if self.lease(grant.id).is_some() {
            return Err(EtcdFailure::LeaseExists);
        }
        let record = LeaseRecord {
            id: grant.id,
            ttl: grant.ttl,
            remaining_ttl: 0,
        };
        self.lease_changes.insert(grant.id, Some(record));
        Ok(pb::LeaseGrantResponse {
            header: None,
            id: grant.id,
            ttl: grant.ttl,
            error: String::new(),
        })
    }

    /// Ends lease `id`, deleting its keys in key order at `revision`, as etcd's lessor does.
    fn revoke(&mut self, id: i64, revision: i64) -> StorageResult<Result<(), EtcdFailure>> {
        if self.lease(id).is_none() {
            return Ok(Err(EtcdFailure::LeaseNotFound));
        }
        for kv in self.keys_of_lease(id)? {
            self.remove_at(revision, kv);
        }
        self.lease_changes.insert(id, None);
        Ok(Ok(()))
    }

    /// Records the TTL each lease named has left; a lease gone meanwhile is skipped.
    fn checkpoint(&mut self, checkpoint: &pb::LeaseCheckpointRequest) {
        for point in &checkpoint.checkpoints {
            if let Some(mut record) = self.lease(point.id) {
                record.remaining_ttl = point.remaining_ttl.max(0);
                self.lease_changes.insert(point.id, Some(record));
            }
        }
    }
}
