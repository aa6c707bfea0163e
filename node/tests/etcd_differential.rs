//! Differential testing of etcd's v3 KV and Lease APIs: the same random operations (puts with
//! and without leases, range deletes, transactions with every comparison, ranges with every
//! option at past revisions, compactions, lease grants, revokes, TTL queries with keys and
//! lease lists) sent to etcd 3.4 (Debian's etcd-server, installed by scripts/setup) and to a d-engine node,
//! and every answer compared field by field: the values, the revisions, `more` and `count`,
//! and for errors the code and etcd's message.
//!
//! Ids and terms differ by nature and are left out, and so does the TTL a lease has left (it
//! depends on when each server is asked); leases are granted with ids the test picks and TTLs
//! too long to expire during a run. Revisions are offset by one: an empty etcd
//! is at revision 1 and its first write is 2, d-engine's first write is 1; the test adds one
//! to every revision it sends etcd and takes one off every revision etcd answers.
//!
//!   DENGINE_ETCD_DIFF_SEED=S   replay one seed
//!   DENGINE_ETCD_DIFF_SEEDS=N  seeds to run (default 2), each 300 operations

mod common;

use std::process::{Child, Command, Stdio};

use dengine_proto::etcd::etcdserverpb as pb;
use dengine_proto::etcd::etcdserverpb::kv_client::KvClient;
use dengine_proto::etcd::etcdserverpb::lease_client::LeaseClient;
use dengine_proto::etcd::mvccpb;
use pb::compare::{CompareResult, CompareTarget, TargetUnion};
use pb::range_request::{SortOrder, SortTarget};
use pb::request_op::Request as Op;
use tonic::transport::Channel;

use common::{free_ports, wait_for, Cluster};

/// etcd 3.4, one member, on loopback, in its own data directory; killed when dropped.
struct Etcd {
    child: Child,
    endpoint: String,
    _dir: tempfile::TempDir,
}

impl Etcd {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(2);
        let (client, peer) = (
            format!("http://127.0.0.1:{}", ports[0]),
            format!("http://127.0.0.1:{}", ports[1]),
        );
        let child = Command::new("etcd")
            .args(["--name", "reference", "--data-dir"])
            .arg(dir.path().join("data"))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg(format!("--initial-cluster=reference={peer}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd runs (scripts/setup installs Debian's etcd-server)");
        let etcd = Etcd {
            child,
            endpoint: client,
            _dir: dir,
        };
        let mut kv = etcd.kv();
        wait_for("etcd to answer", || {
            let mut kv = kv.clone();
            async move {
                kv.range(range_of("ready", ""))
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        kv.range(range_of("ready", "")).await.unwrap();
        etcd
    }

    fn kv_channel(&self) -> Channel {
        Channel::from_shared(self.endpoint.clone())
            .unwrap()
            .connect_lazy()
    }

    fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.kv_channel())
    }

    fn clients(&self) -> Clients {
        Clients {
            kv: self.kv(),
            lease: LeaseClient::new(self.kv_channel()),
        }
    }
}

/// The services the operations go to.
struct Clients {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// splitmix64: a seeded sequence, the same on every run of a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const KEYS: [&str; 5] = ["k/a", "k/b", "k/c", "k/d", "k/e"];
/// The lease ids operations name; some are granted, some revoked, some never exist.
const LEASES: [i64; 4] = [1, 2, 3, 4];

/// A lease id, or none (most puts have none).
fn lease_or_none(rng: &mut Rng) -> i64 {
    match rng.chance(30) {
        true => *rng.pick(&LEASES),
        false => 0,
    }
}

fn range_of(key: &str, range_end: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        ..Default::default()
    }
}

/// What the operations may name: the revisions so far and the compaction point, in
/// d-engine's numbering.
struct Known {
    revision: i64,
    compacted: i64,
}

impl Known {
    /// A revision to read or compare at: mostly within the history, sometimes just outside.
    fn revision(&self, rng: &mut Rng) -> i64 {
        let low = self.compacted.max(1) - 1;
        low + rng.below((self.revision - low + 2) as u64) as i64
    }
}

/// An interval: one key, a few keys, or all of them.
fn interval(rng: &mut Rng) -> (String, String) {
    match rng.below(4) {
        0 | 1 => (rng.pick(&KEYS).to_string(), String::new()),
        2 => ("k/b".into(), "k/d".into()),
        _ => ("k/".into(), "k0".into()),
    }
}

fn value(rng: &mut Rng) -> Vec<u8> {
    let len = 1 + rng.below(3) as usize;
    (0..len).map(|_| b'a' + rng.below(3) as u8).collect()
}

fn put(rng: &mut Rng, key: &str) -> pb::PutRequest {
    pb::PutRequest {
        key: key.into(),
        value: value(rng),
        prev_kv: rng.chance(50),
        // Granted, revoked or never granted: both must attach it or refuse it alike.
        lease: lease_or_none(rng),
        ..Default::default()
    }
}

fn range(rng: &mut Rng, known: &Known) -> pb::RangeRequest {
    let (key, range_end) = interval(rng);
    let mut request = range_of(&key, &range_end);
    if rng.chance(30) {
        request.limit = 1 + rng.below(3) as i64;
    }
    if rng.chance(30) {
        request.revision = known.revision(rng);
    }
    if rng.chance(30) {
        request.sort_order =
            *rng.pick(&[SortOrder::None, SortOrder::Ascend, SortOrder::Descend]) as i32;
        request.sort_target = *rng.pick(&[
            SortTarget::Key,
            SortTarget::Version,
            SortTarget::Create,
            SortTarget::Mod,
            SortTarget::Value,
        ]) as i32;
    }
    request.keys_only = rng.chance(15);
    request.count_only = rng.chance(10);
    if rng.chance(15) {
        request.min_mod_revision = known.revision(rng);
    }
    if rng.chance(15) {
        request.max_create_revision = known.revision(rng);
    }
    request
}

fn compare(rng: &mut Rng, known: &Known) -> pb::Compare {
    let (key, range_end) = interval(rng);
    let target = *rng.pick(&[
        CompareTarget::Version,
        CompareTarget::Create,
        CompareTarget::Mod,
        CompareTarget::Value,
        CompareTarget::Lease,
    ]);
    let union = match target {
        CompareTarget::Lease => TargetUnion::Lease(lease_or_none(rng)),
        CompareTarget::Version => TargetUnion::Version(rng.below(4) as i64),
        CompareTarget::Create => TargetUnion::CreateRevision(known.revision(rng)),
        CompareTarget::Mod => TargetUnion::ModRevision(known.revision(rng)),
        _ => TargetUnion::Value(value(rng)),
    };
    pb::Compare {
        key: key.into(),
        range_end: range_end.into(),
        target: target.into(),
        result: *rng.pick(&[
            CompareResult::Equal,
            CompareResult::Greater,
            CompareResult::Less,
            CompareResult::NotEqual,
        ]) as i32,
        target_union: Some(union),
    }
}

/// A branch of a txn: puts on distinct keys, a delete and a range (no key written twice).
fn branch(rng: &mut Rng, known: &Known) -> Vec<pb::RequestOp> {
    let mut ops = Vec::new();
    let mut keys = KEYS.to_vec();
    for _ in 0..rng.below(3) {
        let key = keys.remove(rng.below(keys.len() as u64) as usize);
        let request = match rng.below(3) {
            0 => Op::RequestPut(put(rng, key)),
            1 => Op::RequestDeleteRange(pb::DeleteRangeRequest {
                key: key.into(),
                prev_kv: rng.chance(50),
                ..Default::default()
            }),
            _ => Op::RequestRange(pb::RangeRequest {
                revision: 0,
                ..range(rng, known)
            }),
        };
        ops.push(pb::RequestOp {
            request: Some(request),
        });
    }
    ops
}

/// One operation, as d-engine receives it (etcd gets it shifted by [`to_etcd`]).
#[derive(Debug, Clone)]
enum Operation {
    Put(pb::PutRequest),
    Delete(pb::DeleteRangeRequest),
    Range(pb::RangeRequest),
    Txn(pb::TxnRequest),
    Compact(i64),
    Grant { id: i64, ttl: i64 },
    Revoke(i64),
    TimeToLive(i64),
    Leases,
}

fn operation(rng: &mut Rng, known: &Known) -> Operation {
    match rng.below(100) {
        0..=21 => {
            let key = rng_key(rng);
            Operation::Put(put(rng, key))
        }
        // Each lease operation often enough that every run meets each one's answer.
        22..=26 => Operation::Grant {
            id: *rng.pick(&LEASES),
            ttl: *rng.pick(&[10, 60, 3600]),
        },
        27..=29 => Operation::Revoke(*rng.pick(&LEASES)),
        30..=32 => Operation::TimeToLive(*rng.pick(&LEASES)),
        33..=35 => Operation::Leases,
        36..=41 => {
            let (key, range_end) = interval(rng);
            Operation::Delete(pb::DeleteRangeRequest {
                key: key.into(),
                range_end: range_end.into(),
                prev_kv: rng.chance(50),
            })
        }
        42..=69 => Operation::Range(range(rng, known)),
        70..=95 => Operation::Txn(pb::TxnRequest {
            compare: (0..rng.below(3)).map(|_| compare(rng, known)).collect(),
            success: branch(rng, known),
            failure: branch(rng, known),
        }),
        // Not at 0: d-engine accepts compacting an empty store every time, etcd only the
        // first (docs/etcd-compatibility.md).
        _ => Operation::Compact(known.revision(rng).max(1)),
    }
}

fn rng_key(rng: &mut Rng) -> &'static str {
    KEYS[rng.below(KEYS.len() as u64) as usize]
}

/// Revisions d-engine numbers `r` etcd numbers `r + 1`; 0 keeps its meaning (none, or now).
fn shift(revision: i64, by: i64) -> i64 {
    match revision {
        0 => 0,
        r => r + by,
    }
}

fn shift_range(request: &mut pb::RangeRequest, by: i64) {
    request.revision = shift(request.revision, by);
    request.min_mod_revision = shift(request.min_mod_revision, by);
    request.max_mod_revision = shift(request.max_mod_revision, by);
    request.min_create_revision = shift(request.min_create_revision, by);
    request.max_create_revision = shift(request.max_create_revision, by);
}

fn shift_ops(ops: &mut [pb::RequestOp], by: i64) {
    for op in ops {
        match &mut op.request {
            Some(Op::RequestRange(range)) => shift_range(range, by),
            Some(Op::RequestTxn(txn)) => shift_txn(txn, by),
            _ => {}
        }
    }
}

fn shift_txn(txn: &mut pb::TxnRequest, by: i64) {
    for compare in &mut txn.compare {
        match &mut compare.target_union {
            Some(TargetUnion::CreateRevision(r)) | Some(TargetUnion::ModRevision(r)) => {
                *r = shift(*r, by)
            }
            _ => {}
        }
    }
    shift_ops(&mut txn.success, by);
    shift_ops(&mut txn.failure, by);
}

/// The operation as etcd must receive it: every revision one higher.
fn to_etcd(operation: &Operation) -> Operation {
    let mut operation = operation.clone();
    match &mut operation {
        Operation::Range(range) => shift_range(range, 1),
        Operation::Txn(txn) => shift_txn(txn, 1),
        // d-engine's revision 0 (nothing written) is etcd's 1.
        Operation::Compact(revision) => *revision += 1,
        _ => {}
    }
    operation
}

/// An answer, comparable across the two: ids and terms out, revisions in d-engine's numbering.
#[derive(Debug, PartialEq)]
enum Answer {
    Put(Option<Kv>, i64),
    Delete(i64, Vec<Kv>, i64),
    Range(Range),
    Txn(bool, Vec<Answer>, i64),
    Compact(i64),
    Granted {
        id: i64,
        ttl: i64,
        revision: i64,
    },
    Revoked(i64),
    /// Granted TTL and keys, sorted (the TTL left is timing); `found` false for no lease.
    Lease {
        granted_ttl: i64,
        keys: Vec<Vec<u8>>,
        found: bool,
        revision: i64,
    },
    /// Sorted: etcd lists leases in map order.
    Leases(Vec<i64>),
    Failed(tonic::Code, String),
}

#[derive(Debug, PartialEq)]
struct Range {
    kvs: Vec<Kv>,
    more: bool,
    count: i64,
    revision: i64,
}

#[derive(Debug, PartialEq)]
struct Kv {
    key: Vec<u8>,
    value: Vec<u8>,
    create: i64,
    modified: i64,
    version: i64,
    lease: i64,
}

fn kv(found: mvccpb::KeyValue, by: i64) -> Kv {
    Kv {
        key: found.key,
        value: found.value,
        create: shift(found.create_revision, by),
        modified: shift(found.mod_revision, by),
        version: found.version,
        lease: found.lease,
    }
}

fn revision(header: Option<pb::ResponseHeader>, by: i64) -> i64 {
    header.map_or(0, |h| h.revision + by)
}

fn range_answer(response: pb::RangeResponse, by: i64) -> Range {
    Range {
        kvs: response.kvs.into_iter().map(|k| kv(k, by)).collect(),
        more: response.more,
        count: response.count,
        revision: revision(response.header, by),
    }
}

fn txn_answer(response: pb::TxnResponse, by: i64) -> Answer {
    use pb::response_op::Response as R;
    let answers = response
        .responses
        .into_iter()
        .filter_map(|op| op.response)
        .map(|response| match response {
            R::ResponseRange(r) => Answer::Range(range_answer(r, by)),
            R::ResponsePut(r) => Answer::Put(r.prev_kv.map(|k| kv(k, by)), revision(r.header, by)),
            R::ResponseDeleteRange(r) => Answer::Delete(
                r.deleted,
                r.prev_kvs.into_iter().map(|k| kv(k, by)).collect(),
                revision(r.header, by),
            ),
            R::ResponseTxn(r) => txn_answer(r, by),
        })
        .collect();
    Answer::Txn(response.succeeded, answers, revision(response.header, by))
}

/// Sends `operation` and reads the answer back in d-engine's numbering (`by` is what to add
/// to the revisions answered).
async fn send(clients: &mut Clients, operation: Operation, by: i64) -> Answer {
    let failed =
        |status: tonic::Status| Answer::Failed(status.code(), status.message().to_string());
    let client = &mut clients.kv;
    let leases = &mut clients.lease;
    match operation {
        Operation::Grant { id, ttl } => {
            match leases.lease_grant(pb::LeaseGrantRequest { ttl, id }).await {
                Ok(r) => {
                    let r = r.into_inner();
                    Answer::Granted {
                        id: r.id,
                        ttl: r.ttl,
                        revision: revision(r.header, by),
                    }
                }
                Err(status) => failed(status),
            }
        }
        Operation::Revoke(id) => match leases.lease_revoke(pb::LeaseRevokeRequest { id }).await {
            Ok(r) => Answer::Revoked(revision(r.into_inner().header, by)),
            Err(status) => failed(status),
        },
        Operation::TimeToLive(id) => match leases
            .lease_time_to_live(pb::LeaseTimeToLiveRequest { id, keys: true })
            .await
        {
            Ok(r) => {
                let mut r = r.into_inner();
                // etcd 3.4 lists a lease's keys in map order.
                r.keys.sort();
                Answer::Lease {
                    granted_ttl: r.granted_ttl,
                    keys: r.keys,
                    found: r.ttl != -1,
                    revision: revision(r.header, by),
                }
            }
            Err(status) => failed(status),
        },
        Operation::Leases => match leases.lease_leases(pb::LeaseLeasesRequest {}).await {
            Ok(r) => {
                let mut ids: Vec<i64> = r.into_inner().leases.iter().map(|l| l.id).collect();
                ids.sort();
                Answer::Leases(ids)
            }
            Err(status) => failed(status),
        },
        Operation::Put(put) => match client.put(put).await {
            Ok(r) => {
                let r = r.into_inner();
                Answer::Put(r.prev_kv.map(|k| kv(k, by)), revision(r.header, by))
            }
            Err(status) => failed(status),
        },
        Operation::Delete(delete) => match client.delete_range(delete).await {
            Ok(r) => {
                let r = r.into_inner();
                Answer::Delete(
                    r.deleted,
                    r.prev_kvs.into_iter().map(|k| kv(k, by)).collect(),
                    revision(r.header, by),
                )
            }
            Err(status) => failed(status),
        },
        Operation::Range(range) => match client.range(range).await {
            Ok(r) => Answer::Range(range_answer(r.into_inner(), by)),
            Err(status) => failed(status),
        },
        Operation::Txn(txn) => match client.txn(txn).await {
            Ok(r) => txn_answer(r.into_inner(), by),
            Err(status) => failed(status),
        },
        Operation::Compact(revision_to) => match client
            .compact(pb::CompactionRequest {
                revision: revision_to,
                physical: true,
            })
            .await
        {
            Ok(r) => Answer::Compact(revision(r.into_inner().header, by)),
            Err(status) => failed(status),
        },
    }
}

/// One watch event, comparable across the two.
#[derive(Debug, PartialEq)]
struct Seen {
    deleted: bool,
    kv: Kv,
    prev: Option<Kv>,
}

/// The events of a watch on every test key from `start` with previous values, until one at
/// `until` (in d-engine's numbering) has come; `by` is what to add to the revisions answered.
async fn watched(channel: Channel, start: i64, until: i64, by: i64) -> Vec<Seen> {
    use pb::watch_request::RequestUnion;
    let (requests, requests_rx) = tokio::sync::mpsc::channel(1);
    requests
        .send(pb::WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(pb::WatchCreateRequest {
                key: "k/".into(),
                range_end: "k0".into(),
                start_revision: start,
                prev_kv: true,
                ..Default::default()
            })),
        })
        .await
        .unwrap();
    let mut answers = pb::watch_client::WatchClient::new(channel)
        .watch(tokio_stream::wrappers::ReceiverStream::new(requests_rx))
        .await
        .expect("a watch")
        .into_inner();
    let mut seen = Vec::new();
    while seen.last().is_none_or(|s: &Seen| s.kv.modified < until) {
        let answer = tokio::time::timeout(common::DEADLINE, answers.message())
            .await
            .expect("watch events within the deadline")
            .expect("the watch goes on")
            .expect("the watch stays open");
        assert!(!answer.canceled, "the watch was canceled: {answer:?}");
        seen.extend(answer.events.into_iter().map(|event| Seen {
            deleted: event.r#type == mvccpb::event::EventType::Delete as i32,
            kv: kv(event.kv.unwrap_or_default(), by),
            prev: event.prev_kv.map(|p| kv(p, by)),
        }));
    }
    seen
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("DENGINE_ETCD_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return vec![seed];
    }
    let count = std::env::var("DENGINE_ETCD_DIFF_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (0..count).map(|i| base.wrapping_add(i)).collect()
}

#[tokio::test]
async fn random_operations_answer_as_etcd_3_4_answers_them() {
    for seed in seeds() {
        let etcd = Etcd::start().await;
        let cluster = Cluster::start(1, &[]).await;
        let (mut reference, mut ours) = (
            etcd.clients(),
            Clients {
                kv: cluster.nodes[0].etcd_kv(),
                lease: LeaseClient::new(cluster.nodes[0].etcd_channel()),
            },
        );
        let mut rng = Rng(seed);
        let mut known = Known {
            revision: 0,
            compacted: 0,
        };
        let mut compared = [0usize; 10];
        for step in 0..300 {
            let operation = operation(&mut rng, &known);
            let expected = send(&mut reference, to_etcd(&operation), -1).await;
            let answered = send(&mut ours, operation.clone(), 0).await;
            assert_eq!(
                answered, expected,
                "seed {seed} (DENGINE_ETCD_DIFF_SEED={seed} to replay), step {step}: \
                 {operation:?}"
            );
            let kind = match &answered {
                Answer::Put(..) => 0,
                Answer::Delete(..) => 1,
                Answer::Range(_) => 2,
                Answer::Txn(..) => 3,
                Answer::Compact(_) => 4,
                Answer::Failed(..) => 5,
                Answer::Granted { .. } => 6,
                Answer::Revoked(_) => 7,
                Answer::Lease { .. } => 8,
                Answer::Leases(_) => 9,
            };
            compared[kind] += 1;
            match (&operation, &answered) {
                (Operation::Compact(at), Answer::Compact(_)) => known.compacted = *at,
                (
                    _,
                    Answer::Put(_, r)
                    | Answer::Delete(_, _, r)
                    | Answer::Txn(_, _, r)
                    | Answer::Revoked(r),
                ) => known.revision = *r,
                _ => {}
            }
        }
        // The history both kept, replayed by a watch from just above the compaction point
        // with previous values: the same events, in the same order, at the same revisions.
        if known.revision > known.compacted {
            let start = known.compacted + 1;
            let expected = watched(etcd.kv_channel(), start + 1, known.revision, -1).await;
            let replayed = watched(cluster.nodes[0].etcd_channel(), start, known.revision, 0).await;
            assert_eq!(
                replayed, expected,
                "seed {seed}: the watch from revision {start} differs"
            );
            println!(
                "seed {seed}: a watch from revision {start} replayed {} events alike",
                replayed.len()
            );
        }
        // A run that never exercised an answer kind decides nothing about it.
        assert!(
            compared.iter().all(|&n| n > 0),
            "seed {seed}: answers by kind (put, delete, range, txn, compact, error, grant, \
             revoke, time to live, leases): {compared:?}"
        );
        println!(
            "seed {seed}: 300 operations agreed; answers by kind (put, delete, range, txn, \
             compact, error, grant, revoke, time to live, leases): {compared:?}"
        );
    }
}
