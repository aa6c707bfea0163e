//! etcd's v3 KV service (`etcdserverpb.KV`) on the client port, beside `dengine.v1`: what
//! etcdctl and every etcd client library call. Requests are checked as etcd checks them, with
//! etcd's codes and messages (clients match on the text), then carried out by [`KvApi`]; the
//! answers carry etcd's header (cluster id, member id, revision, raft term).

use std::collections::BTreeSet;
use std::pin::Pin;

use futures::Stream;

use dengine_proto::etcd::etcdserverpb as pb;
use tonic::{Code, Request, Response, Status};

use super::api::{ApiError, Header, KvApi};
use super::write::etcd_operation;
use crate::kv::etcd::{EtcdRequest, EtcdResponse, Interval};

/// Keys per message of a RangeStream answer.
const RANGE_STREAM_CHUNK: usize = 1000;

/// The KV service of etcd's v3 API.
pub struct EtcdKvService {
    pub api: KvApi,
    /// etcd's `--max-request-bytes`: this node's `max_request_bytes`.
    pub max_request_bytes: usize,
    /// etcd's `--max-txn-ops`: the most operations one Txn branch (or its compares) holds.
    pub max_txn_ops: usize,
}

/// An error of etcd's API, in etcd's code and words.
pub fn etcd(code: Code, message: &'static str) -> ApiError {
    ApiError::Etcd { code, message }
}

fn empty_key() -> ApiError {
    etcd(Code::InvalidArgument, "etcdserver: key is not provided")
}

fn duplicate_key() -> ApiError {
    etcd(
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    )
}

/// etcd's response header of this node's state now.
pub fn etcd_header_now(api: &KvApi) -> pb::ResponseHeader {
    etcd_header(api.header_now())
}

/// etcd's response header from the node's.
pub fn etcd_header(header: Header) -> pb::ResponseHeader {
    pb::ResponseHeader {
        cluster_id: header.cluster_id,
        member_id: header.member_id,
        revision: header.revision,
        raft_term: header.raft_term,
    }
}

impl EtcdKvService {
    fn check_size(&self, encoded_len: usize) -> Result<(), ApiError> {
        match encoded_len > self.max_request_bytes {
            true => Err(etcd(
                Code::InvalidArgument,
                "etcdserver: request is too large",
            )),
            false => Ok(()),
        }
    }

    /// Checks a write as etcd does, carries it out, and answers with its response, etcd's
    /// header set.
    async fn answer<R: AnswerOfKind>(&self, request: EtcdRequest) -> Result<Response<R>, Status> {
        match &request {
            EtcdRequest::Put(put) => check_put(put)?,
            EtcdRequest::DeleteRange(delete) => check_delete(delete)?,
            EtcdRequest::Txn(txn) => check_txn(txn, self.max_txn_ops)?,
            // Lease changes come from the Lease service and the leader, not from here.
            EtcdRequest::Compact(_)
            | EtcdRequest::LeaseGrant(_)
            | EtcdRequest::LeaseRevoke(_)
            | EtcdRequest::LeaseCheckpoint(_) => {}
        }
        self.check_size(request.encoded_len())?;
        let operation = etcd_operation(&request);
        let (header, answer) = self.api.etcd_write(request).await?;
        answer
            .response
            .and_then(|response| R::from_answer(response, etcd_header(header)))
            .map(Response::new)
            .ok_or_else(|| mismatch(operation))
    }
}

fn check_range(range: &pb::RangeRequest) -> Result<(), ApiError> {
    use pb::range_request::{SortOrder, SortTarget};
    if range.key.is_empty() {
        return Err(empty_key());
    }
    if SortOrder::try_from(range.sort_order).is_err()
        || SortTarget::try_from(range.sort_target).is_err()
    {
        return Err(etcd(
            Code::InvalidArgument,
            "etcdserver: invalid sort option",
        ));
    }
    Ok(())
}

fn check_put(put: &pb::PutRequest) -> Result<(), ApiError> {
    if put.key.is_empty() {
        return Err(empty_key());
    }
    if put.ignore_value && !put.value.is_empty() {
        return Err(etcd(Code::InvalidArgument, "etcdserver: value is provided"));
    }
    if put.ignore_lease && put.lease != 0 {
        return Err(etcd(Code::InvalidArgument, "etcdserver: lease is provided"));
    }
    Ok(())
}

fn check_delete(delete: &pb::DeleteRangeRequest) -> Result<(), ApiError> {
    match delete.key.is_empty() {
        true => Err(empty_key()),
        false => Ok(()),
    }
}

/// etcd's checks of a Txn: its size, every operation, and no key written twice in a branch.
fn check_txn(txn: &pb::TxnRequest, max_ops: usize) -> Result<(), ApiError> {
    use pb::request_op::Request as Op;
    let ops = txn
        .compare
        .len()
        .max(txn.success.len())
        .max(txn.failure.len());
    if ops > max_ops {
        return Err(etcd(
            Code::InvalidArgument,
            "etcdserver: too many operations in txn request",
        ));
    }
    for op in txn.success.iter().chain(&txn.failure) {
        match &op.request {
            Some(Op::RequestRange(range)) => {
                check_range(range)?;
                if range.revision != 0 {
                    return Err(ApiError::invalid(
                        "a range at a revision inside a txn is not supported by d-engine; \
                         send it as a Range of its own",
                    ));
                }
            }
            Some(Op::RequestPut(put)) => check_put(put)?,
            Some(Op::RequestDeleteRange(delete)) => check_delete(delete)?,
            Some(Op::RequestTxn(nested)) => check_txn(nested, max_ops)?,
            None => return Err(ApiError::invalid("a txn operation without a request")),
        }
    }
    written(&txn.success)?;
    written(&txn.failure)?;
    Ok(())
}

/// The keys a branch puts and the intervals it deletes (a nested txn's either branch may run),
/// refusing a key put twice or put and deleted, as etcd does.
fn written(ops: &[pb::RequestOp]) -> Result<(BTreeSet<Vec<u8>>, Vec<Interval>), ApiError> {
    use pb::request_op::Request as Op;
    let mut puts = BTreeSet::new();
    let mut deletes = Vec::new();
    for op in ops {
        match &op.request {
            Some(Op::RequestPut(put)) if !puts.insert(put.key.clone()) => {
                return Err(duplicate_key());
            }
            Some(Op::RequestDeleteRange(delete)) => {
                deletes.push(Interval::new(&delete.key, &delete.range_end));
            }
            Some(Op::RequestTxn(nested)) => {
                let (then_puts, then_deletes) = written(&nested.success)?;
                let (else_puts, else_deletes) = written(&nested.failure)?;
                for key in then_puts.union(&else_puts) {
                    if !puts.insert(key.clone()) {
                        return Err(duplicate_key());
                    }
                }
                deletes.extend(then_deletes);
                deletes.extend(else_deletes);
            }
            _ => {}
        }
    }
    if puts
        .iter()
        .any(|key| deletes.iter().any(|interval| interval.contains(key)))
    {
        return Err(duplicate_key());
    }
    Ok((puts, deletes))
}

/// Puts the node's header into an answer etcd's way.
fn with_header<T>(
    header: Header,
    set: impl FnOnce(Option<pb::ResponseHeader>) -> T,
) -> Response<T> {
    Response::new(set(Some(etcd_header(header))))
}

#[tonic::async_trait]
impl pb::kv_server::Kv for EtcdKvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let request = request.into_inner();
        check_range(&request)?;
        let (header, response) = self.api.etcd_range(&request).await?;
        Ok(with_header(header, |header| pb::RangeResponse {
            header,
            ..response
        }))
    }

    type RangeStreamStream =
        Pin<Box<dyn Stream<Item = Result<pb::RangeStreamResponse, Status>> + Send>>;

    /// etcd 3.7's chunked Range: the same answer as Range, its keys in chunks, the header,
    /// `more` and `count` on the last.
    async fn range_stream(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<Self::RangeStreamStream>, Status> {
        let request = request.into_inner();
        check_range(&request)?;
        let (header, mut response) = self.api.etcd_range(&request).await?;
        let mut kvs = std::mem::take(&mut response.kvs);
        let mut chunks = Vec::new();
        while kvs.len() > RANGE_STREAM_CHUNK {
            let rest = kvs.split_off(RANGE_STREAM_CHUNK);
            chunks.push(pb::RangeResponse {
                kvs,
                ..pb::RangeResponse::default()
            });
            kvs = rest;
        }
        chunks.push(pb::RangeResponse {
            header: Some(etcd_header(header)),
            kvs,
            ..response
        });
        let chunks = chunks.into_iter().map(|chunk| {
            Ok(pb::RangeStreamResponse {
                range_response: Some(chunk),
            })
        });
        Ok(Response::new(Box::pin(futures::stream::iter(chunks))))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        self.answer(EtcdRequest::Put(request.into_inner())).await
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        self.answer(EtcdRequest::DeleteRange(request.into_inner()))
            .await
    }

    /// The responses inside carry the revisions apply gave them, as etcd's do.
    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        self.answer(EtcdRequest::Txn(request.into_inner())).await
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        self.answer(EtcdRequest::Compact(request.into_inner()))
            .await
    }
}

/// One kind of write's response, taken out of a write's answer with the header set.
trait AnswerOfKind: Sized {
    fn from_answer(response: EtcdResponse, header: pb::ResponseHeader) -> Option<Self>;
}

macro_rules! answer_of_kind {
    ($kind:ident, $response:ty) => {
        impl AnswerOfKind for $response {
            fn from_answer(response: EtcdResponse, header: pb::ResponseHeader) -> Option<Self> {
                match response {
                    EtcdResponse::$kind(mut response) => {
                        response.header = Some(header);
                        Some(response)
                    }
                    _ => None,
                }
            }
        }
    };
}

answer_of_kind!(Put, pb::PutResponse);
answer_of_kind!(DeleteRange, pb::DeleteRangeResponse);
answer_of_kind!(Txn, pb::TxnResponse);
answer_of_kind!(Compact, pb::CompactionResponse);

fn mismatch(operation: &str) -> Status {
    ApiError::Internal(format!(
        "internal error: an {operation} was answered with another kind of response"
    ))
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::request_op::Request as Op;

    fn put(key: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Op::RequestPut(pb::PutRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    fn delete(key: &str, range_end: &str) -> pb::RequestOp {
        pb::RequestOp {
            request: Some(Op::RequestDeleteRange(pb::DeleteRangeRequest {
                key: key.into(),
                range_end: range_end.into(),
                ..Default::default()
            })),
        }
    }

    fn txn(success: Vec<pb::RequestOp>, failure: Vec<pb::RequestOp>) -> pb::TxnRequest {
        pb::TxnRequest {
            compare: Vec::new(),
            success,
            failure,
        }
    }

    fn check_txn_default(txn: &pb::TxnRequest) -> Result<(), ApiError> {
        check_txn(txn, 128)
    }

    fn message(result: Result<(), ApiError>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn txns_are_checked_as_etcd_checks_them() {
        assert!(check_txn_default(&txn(vec![put("a"), put("b")], vec![put("a")])).is_ok());
        assert_eq!(
            message(check_txn_default(&txn(vec![put("a"), put("a")], vec![]))),
            "etcdserver: duplicate key given in txn request"
        );
        assert_eq!(
            message(check_txn_default(&txn(
                vec![delete("a", "c"), put("b")],
                vec![]
            ))),
            "etcdserver: duplicate key given in txn request"
        );
        let nested = pb::RequestOp {
            request: Some(Op::RequestTxn(txn(vec![put("a")], vec![put("a")]))),
        };
        assert!(check_txn_default(&txn(vec![nested.clone()], vec![])).is_ok());
        assert_eq!(
            message(check_txn_default(&txn(vec![nested, put("a")], vec![]))),
            "etcdserver: duplicate key given in txn request"
        );
        let too_many = (0..=128).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(
            message(check_txn_default(&txn(too_many, vec![]))),
            "etcdserver: too many operations in txn request"
        );
        assert_eq!(
            message(check_txn_default(&txn(vec![put("")], vec![]))),
            "etcdserver: key is not provided"
        );
    }

    #[test]
    fn puts_refuse_a_value_or_lease_they_were_told_to_ignore() {
        let ignoring = pb::PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ignore_value: true,
            ..Default::default()
        };
        assert_eq!(
            message(check_put(&ignoring)),
            "etcdserver: value is provided"
        );
        let leased = pb::PutRequest {
            key: b"k".to_vec(),
            lease: 7,
            ignore_lease: true,
            ..Default::default()
        };
        assert_eq!(message(check_put(&leased)), "etcdserver: lease is provided");
    }
}
