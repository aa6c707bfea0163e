//! etcd's Lock (`v3lockpb.Lock`) and Election (`v3electionpb.Election`) services: the recipes
//! of etcd's `clientv3/concurrency` package run on the server, as etcd's own v3lock and
//! v3election servers run them, so the keys they write and the answers they give are etcd's.
//!
//! Both queue contenders by the create revision of a key per lease under `name/`: the
//! contender whose key is oldest holds the lock or leads; the others wait for every older key
//! to be deleted (unlocked, resigned, or gone with its lease). A contender whose call is
//! abandoned before it got its turn takes its key out of the queue, so that it blocks nobody.

use std::pin::Pin;

use dengine_proto::etcd::etcdserverpb as pb;
use dengine_proto::etcd::mvccpb;
use dengine_proto::etcd::v3electionpb as election;
use dengine_proto::etcd::v3lockpb as lock;
use futures::Stream;
use pb::compare::{CompareResult, CompareTarget, TargetUnion};
use pb::request_op::Request as Op;
use pb::response_op::Response as Answer;
use tonic::{Code, Request, Response, Status};

use super::api::{ApiError, EventKind, Header, KvApi, WatchRequest};
use super::etcd_service::etcd_header;
use crate::kv::etcd::{EtcdRequest, EtcdResponse};
use crate::storage::prefix_end;

/// The TTL of the lease a contender gets when it names none: etcd's session default. Nothing
/// keeps it alive, as in etcd's servers, so such a lock or leadership lasts a minute at most.
const SESSION_TTL: i64 = 60;

/// The services' errors that etcd's concurrency package returns as plain errors (gRPC's
/// UNKNOWN, with its text).
fn plain(message: &'static str) -> ApiError {
    ApiError::Etcd {
        code: Code::Unknown,
        message,
    }
}

/// A contender's queue: the keys under `name/`.
fn queue(name: &[u8]) -> Vec<u8> {
    [name, b"/"].concat()
}

/// The key a contender holding `lease` queues with.
fn contender_key(queue: &[u8], lease: i64) -> Vec<u8> {
    [queue, format!("{lease:x}").as_bytes()].concat()
}

fn op(request: Op) -> pb::RequestOp {
    pb::RequestOp {
        request: Some(request),
    }
}

fn created_as(key: &[u8], revision: i64) -> pb::Compare {
    pb::Compare {
        key: key.to_vec(),
        target: CompareTarget::Create.into(),
        result: CompareResult::Equal.into(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
        range_end: Vec::new(),
    }
}

fn put(key: &[u8], value: &[u8], lease: i64) -> pb::RequestOp {
    op(Op::RequestPut(pb::PutRequest {
        key: key.to_vec(),
        value: value.to_vec(),
        lease,
        ..Default::default()
    }))
}

fn get(key: &[u8]) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}

/// The oldest key under `queue` (etcd's `WithFirstCreate`).
fn first_created(queue: &[u8]) -> pb::RangeRequest {
    use pb::range_request::{SortOrder, SortTarget};
    pb::RangeRequest {
        key: queue.to_vec(),
        range_end: prefix_end(queue).unwrap_or_else(|| vec![0]),
        sort_target: SortTarget::Create.into(),
        sort_order: SortOrder::Ascend.into(),
        limit: 1,
        ..Default::default()
    }
}

/// The txn's header, whether it succeeded, and the keys its range answers found, in order.
async fn txn(
    api: &KvApi,
    request: pb::TxnRequest,
) -> Result<(Header, bool, Vec<Vec<mvccpb::KeyValue>>), ApiError> {
    let (header, answer) = api.etcd_write(EtcdRequest::Txn(request)).await?;
    let Some(EtcdResponse::Txn(txn)) = answer.response else {
        return Err(ApiError::Internal(
            "internal error: a txn was answered with another kind of response".into(),
        ));
    };
    let ranges = txn
        .responses
        .into_iter()
        .filter_map(|response| match response.response {
            Some(Answer::ResponseRange(range)) => Some(range.kvs),
            _ => None,
        })
        .collect();
    Ok((header, txn.succeeded, ranges))
}

async fn delete(api: &KvApi, key: &[u8]) -> Result<Header, ApiError> {
    let request = pb::DeleteRangeRequest {
        key: key.to_vec(),
        ..Default::default()
    };
    Ok(api.etcd_write(EtcdRequest::DeleteRange(request)).await?.0)
}

/// Waits until every key under `queue` created at or before `max_create_revision` is
/// deleted: the newest of them first, then again, as etcd's `waitDeletes`.
async fn wait_deletes(api: &KvApi, queue: &[u8], max_create_revision: i64) -> Result<(), ApiError> {
    use pb::range_request::SortOrder;
    // No key was created at revision 0 or before; and a maximum of 0 would filter nothing.
    if max_create_revision < 1 {
        return Ok(());
    }
    loop {
        let newest = pb::RangeRequest {
            sort_order: SortOrder::Descend.into(),
            max_create_revision,
            ..first_created(queue)
        };
        let (header, found) = api.etcd_range(&newest).await?;
        let Some(ahead) = found.kvs.first() else {
            return Ok(());
        };
        wait_delete(api, &ahead.key, header.revision).await?;
    }
}

/// Waits for `key`, which exists at `revision`, to be deleted.
async fn wait_delete(api: &KvApi, key: &[u8], revision: i64) -> Result<(), ApiError> {
    let mut watch = api
        .watch(WatchRequest {
            start_revision: revision + 1,
            ..WatchRequest::key(key)
        })
        .await?;
    while let Some(batch) = watch.recv().await {
        if batch?.events.iter().any(|e| e.kind == EventKind::Delete) {
            return Ok(());
        }
    }
    Err(ApiError::ShuttingDown)
}

/// Takes a contender's key out of the queue if its call ends before it got its turn (the
/// client gave up, or the wait failed), unless disarmed.
struct LeaveQueueUnlessServed {
    api: KvApi,
    key: Vec<u8>,
    /// The key's create revision: only that key, not a later one of the same lease.
    revision: i64,
    served: bool,
}

impl Drop for LeaveQueueUnlessServed {
    fn drop(&mut self) {
        if self.served {
            return;
        }
        let api = self.api.clone();
        let request = pb::TxnRequest {
            compare: vec![created_as(&self.key, self.revision)],
            success: vec![op(Op::RequestDeleteRange(pb::DeleteRangeRequest {
                key: self.key.clone(),
                ..Default::default()
            }))],
            failure: Vec::new(),
        };
        tokio::spawn(async move {
            if let Err(e) = txn(&api, request).await {
                tracing::warn!(error = %e, "could not take an abandoned lock or campaign key out of its queue; its lease will");
            }
        });
    }
}

/// The lease a contender queues with: its own, or a new one of etcd's session TTL.
async fn lease_or_new(api: &KvApi, lease: i64) -> Result<i64, ApiError> {
    match lease {
        0 => Ok(api.lease_grant(SESSION_TTL, 0).await?.1.id),
        lease => Ok(lease),
    }
}

/// The Lock service of etcd's v3 API.
pub struct EtcdLockService {
    pub api: KvApi,
}

impl EtcdLockService {
    /// etcd's `Mutex.Lock`: queue (or find this lease's key already queued), then wait for
    /// every older key to go.
    async fn lock(&self, name: &[u8], lease: i64) -> Result<(Header, Vec<u8>), ApiError> {
        let lease = lease_or_new(&self.api, lease).await?;
        let queue = queue(name);
        let key = contender_key(&queue, lease);
        let (header, queued, ranges) = txn(
            &self.api,
            pb::TxnRequest {
                compare: vec![created_as(&key, 0)],
                success: vec![
                    put(&key, b"", lease),
                    op(Op::RequestRange(first_created(&queue))),
                ],
                failure: vec![
                    op(Op::RequestRange(get(&key))),
                    op(Op::RequestRange(first_created(&queue))),
                ],
            },
        )
        .await?;
        let mine = match queued {
            true => header.revision,
            // Locking twice with one lease is one acquisition.
            false => ranges
                .first()
                .and_then(|kvs| kvs.first())
                .map(|kv| kv.create_revision)
                .ok_or_else(|| plain("mutex: session is expired"))?,
        };
        let owner = ranges.last().and_then(|kvs| kvs.first());
        if owner.is_none_or(|owner| owner.create_revision == mine) {
            return Ok((header, key));
        }
        let mut leave = LeaveQueueUnlessServed {
            api: self.api.clone(),
            key: key.clone(),
            revision: mine,
            served: false,
        };
        wait_deletes(&self.api, &queue, mine - 1).await?;
        // The key must still be there: its lease may have expired while it waited.
        let (header, found) = self.api.etcd_range(&get(&key)).await?;
        if found.kvs.is_empty() {
            return Err(plain("mutex: session is expired"));
        }
        leave.served = true;
        Ok((header, key))
    }
}

#[tonic::async_trait]
impl lock::lock_server::Lock for EtcdLockService {
    async fn lock(
        &self,
        request: Request<lock::LockRequest>,
    ) -> Result<Response<lock::LockResponse>, Status> {
        let request = request.into_inner();
        let (header, key) = EtcdLockService::lock(self, &request.name, request.lease).await?;
        Ok(Response::new(lock::LockResponse {
            header: Some(etcd_header(header)),
            key,
        }))
    }

    /// Deletes the key Lock answered; the next in the queue then holds the lock.
    async fn unlock(
        &self,
        request: Request<lock::UnlockRequest>,
    ) -> Result<Response<lock::UnlockResponse>, Status> {
        let header = delete(&self.api, &request.into_inner().key).await?;
        Ok(Response::new(lock::UnlockResponse {
            header: Some(etcd_header(header)),
        }))
    }
}

/// The Election service of etcd's v3 API.
pub struct EtcdElectionService {
    pub api: KvApi,
}

fn leader_key(leader: Option<election::LeaderKey>) -> Result<election::LeaderKey, ApiError> {
    leader.ok_or_else(|| plain("\"leader\" field must be provided"))
}

impl EtcdElectionService {
    /// etcd's `Election.Campaign`: queue with the value (or find this lease's key and set the
    /// value), then wait for every older campaigner to go.
    async fn campaign(
        &self,
        request: election::CampaignRequest,
    ) -> Result<(Header, election::LeaderKey), ApiError> {
        let lease = lease_or_new(&self.api, request.lease).await?;
        let queue = queue(&request.name);
        let key = contender_key(&queue, lease);
        let (header, queued, ranges) = txn(
            &self.api,
            pb::TxnRequest {
                compare: vec![created_as(&key, 0)],
                success: vec![put(&key, &request.value, lease)],
                failure: vec![op(Op::RequestRange(get(&key)))],
            },
        )
        .await?;
        let mut leader = election::LeaderKey {
            name: request.name,
            key,
            rev: header.revision,
            lease,
        };
        if !queued {
            let Some(existing) = ranges.first().and_then(|kvs| kvs.first()) else {
                return Err(plain("election: not leader"));
            };
            leader.rev = existing.create_revision;
            if existing.value != request.value {
                self.proclaim(&leader, &request.value).await?;
            }
        }
        let mut leave = LeaveQueueUnlessServed {
            api: self.api.clone(),
            key: leader.key.clone(),
            revision: leader.rev,
            served: false,
        };
        wait_deletes(&self.api, &queue, leader.rev - 1).await?;
        leave.served = true;
        Ok((header, leader))
    }

    /// Sets the leader's value, if `leader` still leads (its key was not deleted since).
    async fn proclaim(
        &self,
        leader: &election::LeaderKey,
        value: &[u8],
    ) -> Result<Header, ApiError> {
        let (header, led, _) = txn(
            &self.api,
            pb::TxnRequest {
                compare: vec![created_as(&leader.key, leader.rev)],
                success: vec![put(&leader.key, value, leader.lease)],
                failure: Vec::new(),
            },
        )
        .await?;
        match led {
            true => Ok(header),
            false => Err(plain("election: not leader")),
        }
    }

    /// The oldest campaigner of election `name`, after a linearizable read.
    async fn leader(&self, name: &[u8]) -> Result<(Header, Option<mvccpb::KeyValue>), ApiError> {
        let (header, found) = self.api.etcd_range(&first_created(&queue(name))).await?;
        Ok((header, found.kvs.into_iter().next()))
    }
}

type LeaderStream = Pin<Box<dyn Stream<Item = Result<election::LeaderResponse, Status>> + Send>>;

#[tonic::async_trait]
impl election::election_server::Election for EtcdElectionService {
    async fn campaign(
        &self,
        request: Request<election::CampaignRequest>,
    ) -> Result<Response<election::CampaignResponse>, Status> {
        let (header, leader) = EtcdElectionService::campaign(self, request.into_inner()).await?;
        Ok(Response::new(election::CampaignResponse {
            header: Some(etcd_header(header)),
            leader: Some(leader),
        }))
    }

    async fn proclaim(
        &self,
        request: Request<election::ProclaimRequest>,
    ) -> Result<Response<election::ProclaimResponse>, Status> {
        let request = request.into_inner();
        let leader = leader_key(request.leader)?;
        let header = EtcdElectionService::proclaim(self, &leader, &request.value).await?;
        Ok(Response::new(election::ProclaimResponse {
            header: Some(etcd_header(header)),
        }))
    }

    async fn leader(
        &self,
        request: Request<election::LeaderRequest>,
    ) -> Result<Response<election::LeaderResponse>, Status> {
        let (header, kv) = EtcdElectionService::leader(self, &request.into_inner().name).await?;
        let kv = kv.ok_or_else(|| plain("election: no leader"))?;
        Ok(Response::new(election::LeaderResponse {
            header: Some(etcd_header(header)),
            kv: Some(kv),
        }))
    }

    type ObserveStream = LeaderStream;

    /// Every value the election's leaders proclaim, in order: the leader's now (once there is
    /// one), each change of it, then the next leader's when it goes.
    async fn observe(
        &self,
        request: Request<election::LeaderRequest>,
    ) -> Result<Response<LeaderStream>, Status> {
        let name = request.into_inner().name;
        let service = EtcdElectionService {
            api: self.api.clone(),
        };
        let (sender, answers) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            let observed = observe(&service, &name, &sender).await;
            if let Err(e) = observed {
                let _ = sender.send(Err(Status::from(e))).await;
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(answers),
        )))
    }

    async fn resign(
        &self,
        request: Request<election::ResignRequest>,
    ) -> Result<Response<election::ResignResponse>, Status> {
        let leader = leader_key(request.into_inner().leader)?;
        let (header, _, _) = txn(
            &self.api,
            pb::TxnRequest {
                compare: vec![created_as(&leader.key, leader.rev)],
                success: vec![op(Op::RequestDeleteRange(pb::DeleteRangeRequest {
                    key: leader.key.clone(),
                    ..Default::default()
                }))],
                failure: Vec::new(),
            },
        )
        .await?;
        Ok(Response::new(election::ResignResponse {
            header: Some(etcd_header(header)),
        }))
    }
}

/// Sends the election's leader values until the client goes away (the send fails).
async fn observe(
    service: &EtcdElectionService,
    name: &[u8],
    sender: &tokio::sync::mpsc::Sender<Result<election::LeaderResponse, Status>>,
) -> Result<(), ApiError> {
    let queue = queue(name);
    loop {
        let (header, leader) = service.leader(name).await?;
        let Some(leader) = leader else {
            // No leader: wait for anything to happen under the queue, then look again.
            let mut watch = service
                .api
                .watch(WatchRequest {
                    start_revision: header.revision + 1,
                    ..WatchRequest::prefix(&queue)
                })
                .await?;
            match watch.recv().await {
                Some(batch) => batch?,
                None => return Err(ApiError::ShuttingDown),
            };
            continue;
        };
        let answer = |header: Header, kv: mvccpb::KeyValue| {
            Ok(election::LeaderResponse {
                header: Some(etcd_header(header)),
                kv: Some(kv),
            })
        };
        let key = leader.key.clone();
        if sender.send(answer(header, leader)).await.is_err() {
            return Ok(());
        }
        // Follow this leader's key until it goes.
        let mut watch = service
            .api
            .watch(WatchRequest {
                start_revision: header.revision + 1,
                ..WatchRequest::key(&key)
            })
            .await?;
        'leader: loop {
            let Some(batch) = watch.recv().await else {
                return Err(ApiError::ShuttingDown);
            };
            for event in batch?.events {
                match event.kind {
                    EventKind::Delete => break 'leader,
                    EventKind::Put => {
                        let header = service.api.header_at(event.kv.mod_revision);
                        let kv = crate::kv::etcd::to_etcd(event.kv);
                        if sender.send(answer(header, kv)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contenders_queue_under_the_name_by_lease_in_hex_as_etcd_does() {
        let queue = queue(b"my-lock");
        assert_eq!(queue, b"my-lock/");
        assert_eq!(contender_key(&queue, 0x694d_77aa), b"my-lock/694d77aa");
        let first = first_created(&queue);
        assert_eq!(
            (first.key.as_slice(), first.range_end.as_slice()),
            (&b"my-lock/"[..], &b"my-lock0"[..])
        );
    }
}
