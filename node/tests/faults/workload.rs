//! Clients, each talking to its own node's client port (as applications on the same machine
//! do), issuing random writes of unique values, compare-and-swaps, deletes and reads under
//! every read policy on a small key space, and recording every operation.
//!
//! Which node a client talks to comes from a shared `Roster`, looked up before every
//! operation: when the nemesis replaces a member, the clients of the removed node move to the
//! new one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dengine::proto::compare::Target;
use dengine::proto::kv_client::KvClient;
use dengine::proto::{
    Compare, CompareAndSwapRequest, DeleteRequest, GetRequest, PutRequest, ReadPolicy,
    ResponseHeader,
};
use dengine_proto::etcd::etcdserverpb::kv_client::KvClient as EtcdKv;
use dengine_proto::etcd::{etcdserverpb, mvccpb};
use tonic::transport::Channel;

use super::history::{classify, parse_value, Call, Clock, Op, Outcome, Policy, Ret, Value};
use super::member::channel;
use super::rng::Rng;

/// How long a request may take before its outcome counts as unknown. Short enough that a
/// client blocked on a paused or cut-off node moves on; long enough for an election.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);

/// Every key the workload touches lies under this prefix, so a prefix watch sees every write.
pub const PREFIX: &str = "f/";

pub fn keys(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{PREFIX}k{i}")).collect()
}

/// A node clients can be attached to.
#[derive(Clone)]
pub struct Seat {
    pub node: u64,
    pub client_port: u16,
    /// The node's start count (see `Member::lifetime`).
    pub lifetime: Arc<AtomicU64>,
}

/// The nodes clients are attached to, one seat per original member; a replacement takes over
/// the seat of the member it replaced.
#[derive(Clone, Default)]
pub struct Roster(Arc<Mutex<Vec<Seat>>>);

impl Roster {
    pub fn push(&self, seat: Seat) {
        self.0.lock().expect("roster lock").push(seat);
    }

    pub fn seat(&self, index: usize) -> Seat {
        let seats = self.0.lock().expect("roster lock");
        seats[index % seats.len()].clone()
    }

    /// Moves whoever sat at node `old` to `new`; false if no seat was `old`'s.
    pub fn replace(&self, old: u64, new: Seat) -> bool {
        let mut seats = self.0.lock().expect("roster lock");
        match seats.iter_mut().find(|s| s.node == old) {
            Some(seat) => {
                *seat = new;
                true
            }
            None => false,
        }
    }
}

/// What a client needs to run.
pub struct Client {
    pub id: usize,
    pub node: u64,
    pub kv: KvClient<Channel>,
    /// The same node through etcd's v3 API: about half the operations go that way.
    pub etcd: EtcdKv<Channel>,
    /// The serving node's start count (see `Member::lifetime`).
    pub lifetime: Arc<AtomicU64>,
    pub keys: Vec<String>,
    pub clock: Clock,
    pub rng: Rng,
}

impl Client {
    pub fn new(
        id: usize,
        node: u64,
        client_port: u16,
        lifetime: Arc<AtomicU64>,
        keys: Vec<String>,
        clock: Clock,
        seed: u64,
    ) -> Self {
        // Its own connection: a client stuck on a paused node stalls no one else.
        let connection = channel(client_port, REQUEST_DEADLINE);
        Self {
            id,
            node,
            kv: KvClient::new(connection.clone()),
            etcd: EtcdKv::new(connection),
            lifetime,
            keys,
            clock,
            rng: Rng::fork(seed, 1_000 + id as u64),
        }
    }

    /// Attaches to `seat`'s node, with a connection of its own, unless already there.
    fn attach(&mut self, seat: &Seat) {
        if seat.node != self.node {
            self.node = seat.node;
            let connection = channel(seat.client_port, REQUEST_DEADLINE);
            self.kv = KvClient::new(connection.clone());
            self.etcd = EtcdKv::new(connection);
            self.lifetime = seat.lifetime.clone();
        }
    }

    /// Runs until `stop`, one operation at a time, each through the node at seat `seat` of
    /// `roster` at that moment; returns them all.
    pub async fn run(mut self, stop: Arc<AtomicBool>, roster: Roster, seat: usize) -> Vec<Op> {
        let mut ops = Vec::new();
        // The last value this client saw for each key: what its compare-and-swaps expect.
        let mut seen: HashMap<String, Option<Value>> = HashMap::new();
        let mut sequence: Value = 0;
        while !stop.load(Ordering::SeqCst) {
            self.attach(&roster.seat(seat));
            let key = self.keys[self.rng.below(self.keys.len() as u64) as usize].clone();
            sequence += 1;
            // Unique across the run: the client in the high digits.
            let value = (self.id as Value + 1) * 10_000_000 + sequence;
            let call = match self.rng.weighted(&[25, 20, 8, 20, 12, 15]) {
                0 => Call::Write { value },
                1 => Call::Cas {
                    expected: match self.rng.chance(75) {
                        true => seen.get(&key).copied().flatten(),
                        false => None,
                    },
                    new: value,
                },
                2 => Call::Delete,
                3 => Call::Read {
                    policy: Policy::Linearizable,
                },
                4 => Call::Read {
                    policy: Policy::Lease,
                },
                _ => Call::Read {
                    policy: Policy::Eventual,
                },
            };
            let op = self.perform(&key, call).await;
            if let Some(state) = state_seen(&op) {
                seen.insert(key, state);
            }
            let failed = !op.is_ok();
            ops.push(op);
            if failed {
                // The node is down, cut off or electing: give it a moment.
                let pause = self.rng.between(20, 100);
                tokio::time::sleep(Duration::from_millis(pause)).await;
            }
        }
        ops
    }

    /// Sends one request and records it.
    pub async fn perform(&mut self, key: &str, call: Call) -> Op {
        // etcd's API has no lease reads; the rest go either way.
        let via_etcd =
            call != Call::Read {
                policy: Policy::Lease,
            } && self.rng.chance(50);
        let lifetime_before = self.lifetime.load(Ordering::SeqCst);
        let invoke = self.clock.now();
        let sent = async {
            match via_etcd {
                true => send_etcd(&mut self.etcd, key, &call).await,
                false => send(&mut self.kv, key, &call).await,
            }
        };
        let answer = tokio::time::timeout(REQUEST_DEADLINE + Duration::from_millis(500), sent)
            .await
            .unwrap_or_else(|_| {
                Err(tonic::Status::deadline_exceeded(
                    "no answer within the test's deadline",
                ))
            });
        let complete = self.clock.now();
        let lifetime_after = self.lifetime.load(Ordering::SeqCst);
        let (outcome, revision) = match answer {
            Ok((ret, header)) => (Outcome::Ok(ret), header.map(|h| h.revision)),
            Err(status) => (classify(&status), None),
        };
        Op {
            id: 0,
            client: self.id,
            node: self.node,
            key: key.to_string(),
            call,
            invoke,
            complete,
            outcome,
            revision,
            lifetime: (lifetime_before, lifetime_after),
            via_etcd,
        }
    }
}

/// The key's state an answer revealed, to base the next compare-and-swap on.
fn state_seen(op: &Op) -> Option<Option<Value>> {
    match op.ret()? {
        Ret::Write { .. } => op.written_value().map(Some),
        Ret::Cas {
            succeeded: true, ..
        } => op.written_value().map(Some),
        Ret::Cas { current, .. } => Some(*current),
        Ret::Delete { .. } => Some(None),
        Ret::Read { value } => Some(*value),
    }
}

fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(REQUEST_DEADLINE);
    request
}

fn value_of(kv: Option<&dengine::proto::KeyValue>) -> Option<Value> {
    kv.map(|kv| parse_value(&kv.value))
}

/// One call through etcd's v3 API, answered as the native call would be: a compare-and-swap is
/// a Txn comparing the value (or a create revision of 0 for absence), putting on success and
/// reading the key as compared on failure.
async fn send_etcd(
    kv: &mut EtcdKv<Channel>,
    key: &str,
    call: &Call,
) -> Result<(Ret, Option<ResponseHeader>), tonic::Status> {
    use etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
    use etcdserverpb::request_op::Request as Op;
    use etcdserverpb::response_op::Response as Answer;
    let key = key.as_bytes().to_vec();
    let encode = |value: Value| value.to_string().into_bytes();
    let value_of = |kv: Option<&mvccpb::KeyValue>| kv.map(|kv| parse_value(&kv.value));
    let header = |h: Option<etcdserverpb::ResponseHeader>| {
        h.map(|h| ResponseHeader {
            cluster_id: h.cluster_id,
            member_id: h.member_id,
            revision: h.revision,
            raft_term: h.raft_term,
        })
    };
    let put = |value: Value| etcdserverpb::PutRequest {
        key: key.clone(),
        value: encode(value),
        prev_kv: true,
        ..Default::default()
    };
    let range = |serializable: bool| etcdserverpb::RangeRequest {
        key: key.clone(),
        serializable,
        ..Default::default()
    };
    Ok(match call {
        Call::Write { value } => {
            let response = kv.put(request(put(*value))).await?.into_inner();
            let prev = value_of(response.prev_kv.as_ref());
            (Ret::Write { prev }, header(response.header))
        }
        Call::Cas { expected, new } => {
            let (target, result, union) = match expected {
                Some(value) => (
                    CompareTarget::Value,
                    CompareResult::Equal,
                    TargetUnion::Value(encode(*value)),
                ),
                None => (
                    CompareTarget::Create,
                    CompareResult::Equal,
                    TargetUnion::CreateRevision(0),
                ),
            };
            let txn = etcdserverpb::TxnRequest {
                compare: vec![etcdserverpb::Compare {
                    key: key.clone(),
                    target: target.into(),
                    result: result.into(),
                    target_union: Some(union),
                    range_end: Vec::new(),
                }],
                success: vec![etcdserverpb::RequestOp {
                    request: Some(Op::RequestPut(put(*new))),
                }],
                failure: vec![etcdserverpb::RequestOp {
                    request: Some(Op::RequestRange(range(false))),
                }],
            };
            let response = kv.txn(request(txn)).await?.into_inner();
            let current = match response.responses.first().and_then(|r| r.response.as_ref()) {
                // As the native answer: the key as compared, which is what was expected.
                Some(Answer::ResponsePut(_)) => *expected,
                Some(Answer::ResponseRange(read)) => value_of(read.kvs.first()),
                other => {
                    return Err(tonic::Status::internal(format!(
                        "a compare-and-swap txn answered {other:?}"
                    )))
                }
            };
            let ret = Ret::Cas {
                succeeded: response.succeeded,
                current,
            };
            (ret, header(response.header))
        }
        Call::Delete => {
            let delete = etcdserverpb::DeleteRangeRequest {
                key: key.clone(),
                prev_kv: true,
                ..Default::default()
            };
            let response = kv.delete_range(request(delete)).await?.into_inner();
            let ret = Ret::Delete {
                deleted: response.deleted > 0,
                prev: value_of(response.prev_kvs.first()),
            };
            (ret, header(response.header))
        }
        Call::Read { policy } => {
            let serializable = match policy {
                Policy::Linearizable => false,
                Policy::Eventual => true,
                Policy::Lease => {
                    return Err(tonic::Status::internal("etcd's API has no lease reads"))
                }
            };
            let response = kv.range(request(range(serializable))).await?.into_inner();
            let value = value_of(response.kvs.first());
            (Ret::Read { value }, header(response.header))
        }
    })
}

async fn send(
    kv: &mut KvClient<Channel>,
    key: &str,
    call: &Call,
) -> Result<(Ret, Option<ResponseHeader>), tonic::Status> {
    let key = Bytes::copy_from_slice(key.as_bytes());
    let encode = |value: Value| Bytes::from(value.to_string());
    Ok(match call {
        Call::Write { value } => {
            let response = kv
                .put(request(PutRequest {
                    key,
                    value: encode(*value),
                    ttl_ms: 0,
                    prev_kv: true,
                }))
                .await?
                .into_inner();
            let prev = value_of(response.prev_kv.as_ref());
            (Ret::Write { prev }, response.header)
        }
        Call::Cas { expected, new } => {
            let target = match expected {
                Some(value) => Target::Value(encode(*value)),
                None => Target::Absent(true),
            };
            let response = kv
                .compare_and_swap(request(CompareAndSwapRequest {
                    key,
                    compare: Some(Compare {
                        target: Some(target),
                    }),
                    new_value: encode(*new),
                    ttl_ms: 0,
                }))
                .await?
                .into_inner();
            let ret = Ret::Cas {
                succeeded: response.succeeded,
                current: value_of(response.current.as_ref()),
            };
            (ret, response.header)
        }
        Call::Delete => {
            let response = kv
                .delete(request(DeleteRequest { key, prev_kv: true }))
                .await?
                .into_inner();
            let ret = Ret::Delete {
                deleted: response.deleted,
                prev: value_of(response.prev_kv.as_ref()),
            };
            (ret, response.header)
        }
        Call::Read { policy } => {
            let read_policy = match policy {
                Policy::Linearizable => ReadPolicy::Linearizable,
                Policy::Lease => ReadPolicy::Lease,
                Policy::Eventual => ReadPolicy::Eventual,
            };
            let response = kv
                .get(request(GetRequest {
                    key,
                    read_policy: read_policy.into(),
                    ..Default::default()
                }))
                .await?
                .into_inner();
            let value = value_of(response.kv.as_ref());
            (Ret::Read { value }, response.header)
        }
    })
}
