//! Client-side helpers: writes that find the leader and retry, and reads of a whole prefix.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use dengine::proto::admin_client::AdminClient;
use dengine::proto::kv_client::KvClient;
use dengine::proto::{
    GetRequest, GetResponse, KeyValue, PutRequest, PutResponse, RaftRole, ReadPolicy,
    ResponseHeader, ScanRequest, StatusRequest,
};
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::wait::{DEADLINE, POLL};

/// Errors after which a write may be retried: the client crate's rule (not the leader, gone,
/// leadership changed under the request, or a broken connection). A retried put writes the
/// same value again, so a first attempt that did apply after all does no harm.
pub use dengine_client::is_retryable;

/// This machine's clock in Unix milliseconds, as a node computes TTL deadlines.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Text as the bytes of a key or value.
pub fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

pub fn revision_of(header: Option<&ResponseHeader>) -> i64 {
    header.expect("responses carry a header").revision
}

/// The revision of the store, from the header of a linearizable read. (Admin.Status reports it
/// too, but is published by the node's event loop and may trail a write just acknowledged.)
pub async fn store_revision(kv: &mut KvClient<Channel>) -> i64 {
    revision_of(
        get(kv, "any-key", ReadPolicy::Linearizable)
            .await
            .header
            .as_ref(),
    )
}

/// A put that must succeed; panics with the status otherwise.
pub async fn put(kv: &mut KvClient<Channel>, key: &str, value: &str) -> PutResponse {
    kv.put(PutRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value: Bytes::copy_from_slice(value.as_bytes()),
        ..PutRequest::default()
    })
    .await
    .unwrap_or_else(|status| panic!("put {key:?}={value:?} failed: {status}"))
    .into_inner()
}

/// A read of one key under `read_policy`; panics if the read fails.
pub async fn get(kv: &mut KvClient<Channel>, key: &str, read_policy: ReadPolicy) -> GetResponse {
    kv.get(GetRequest {
        key: Bytes::copy_from_slice(key.as_bytes()),
        read_policy: read_policy.into(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|status| panic!("get {key:?} failed: {status}"))
    .into_inner()
}

/// Every key under `prefix`, following continuations `page` keys at a time.
pub async fn scan_all(
    kv: &mut KvClient<Channel>,
    prefix: &str,
    read_policy: ReadPolicy,
    page: u32,
) -> Result<Vec<KeyValue>, Status> {
    let mut all = Vec::new();
    let mut continuation = Bytes::new();
    loop {
        let response = kv
            .scan(ScanRequest {
                prefix: Bytes::copy_from_slice(prefix.as_bytes()),
                limit: page,
                continuation: continuation.clone(),
                read_policy: read_policy.into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        all.extend(response.kvs);
        if response.continuation.is_empty() {
            return Ok(all);
        }
        assert_ne!(
            response.continuation, continuation,
            "a scan returned the same continuation twice"
        );
        continuation = response.continuation;
    }
}

/// Keys and values as text, for comparisons whose failure messages a person can read.
pub fn key_value_map(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect()
}

/// Every key a node holds in its applied state, read with an eventual read.
pub async fn eventual_state(mut kv: KvClient<Channel>) -> Result<BTreeMap<String, String>, Status> {
    let kvs = scan_all(&mut kv, "", ReadPolicy::Eventual, 500).await?;
    Ok(key_value_map(&kvs))
}

/// Panics unless `actual` (what `who` holds) is exactly `expected`, naming a few keys that are
/// missing, wrong or unexpected rather than printing both maps whole.
pub fn assert_same_state(who: &str, actual: &Keys, expected: &Keys) {
    const SHOWN: usize = 10;
    let missing: Vec<&String> = expected
        .keys()
        .filter(|k| !actual.contains_key(*k))
        .collect();
    let wrong: Vec<String> = expected
        .iter()
        .filter_map(|(k, v)| match actual.get(k) {
            Some(found) if found != v => Some(format!("{k}: expected {v:?}, found {found:?}")),
            _ => None,
        })
        .collect();
    let unexpected: Vec<&String> = actual
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && wrong.is_empty() && unexpected.is_empty(),
        "{who} holds {} keys, expected {}: {} missing (e.g. {:?}), {} with a wrong value (e.g. {:?}), \
         {} unexpected (e.g. {:?})",
        actual.len(),
        expected.len(),
        missing.len(),
        &missing[..missing.len().min(SHOWN)],
        wrong.len(),
        &wrong[..wrong.len().min(SHOWN)],
        unexpected.len(),
        &unexpected[..unexpected.len().min(SHOWN)],
    );
}

/// Clients of every node of a cluster, for tasks that write while the test kills and restarts
/// nodes. Cheap to clone; clones share the remembered leader.
#[derive(Clone)]
pub struct ClusterClients {
    nodes: Vec<(u64, KvClient<Channel>, AdminClient<Channel>)>,
    leader: Arc<Mutex<Option<usize>>>,
}

/// Keys written by one test, with their last acknowledged value.
pub type Keys = BTreeMap<String, String>;

impl ClusterClients {
    pub fn new(nodes: Vec<(u64, KvClient<Channel>, AdminClient<Channel>)>) -> Self {
        Self {
            nodes,
            leader: Arc::new(Mutex::new(None)),
        }
    }

    /// The node that says it leads, at the highest term if two do (a deposed leader may not
    /// know it yet); Err describes what each node said.
    pub async fn find_leader(&self) -> Result<usize, String> {
        let answers = futures::future::join_all(
            self.nodes
                .iter()
                .map(|(_, _, admin)| admin.clone())
                .map(|mut admin| async move { admin.status(StatusRequest {}).await }),
        )
        .await;
        let mut best: Option<(u64, usize)> = None;
        let mut seen = Vec::new();
        for (index, answer) in answers.into_iter().enumerate() {
            let id = self.nodes[index].0;
            match answer {
                Ok(status) => {
                    let status = status.into_inner();
                    seen.push(format!(
                        "node {id}: role {:?} term {} leader {}",
                        RaftRole::try_from(status.role),
                        status.term,
                        status.leader_id
                    ));
                    if status.role == RaftRole::Leader as i32
                        && best.is_none_or(|(term, _)| status.term > term)
                    {
                        best = Some((status.term, index));
                    }
                }
                Err(e) => seen.push(format!("node {id}: {}", e.code())),
            }
        }
        best.map(|(_, index)| index)
            .ok_or_else(|| format!("no leader: {}", seen.join("; ")))
    }

    /// Puts `key`, retrying through whichever node leads until the write is acknowledged.
    /// Returns the revision of the acknowledged write; Err if that takes over [`DEADLINE`] or
    /// the write is refused for good.
    pub async fn put_acknowledged(&self, key: &str, value: &str) -> Result<i64, String> {
        let start = Instant::now();
        let mut last_error = String::from("none");
        loop {
            if start.elapsed() > DEADLINE {
                return Err(format!(
                    "put {key:?} not acknowledged within {DEADLINE:?}; last error: {last_error}"
                ));
            }
            let cached = *self.leader.lock().unwrap_or_else(|e| e.into_inner());
            let leader = match cached {
                Some(index) => Ok(index),
                None => self.find_leader().await,
            };
            match leader {
                Ok(index) => {
                    *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = Some(index);
                    let mut kv = self.nodes[index].1.clone();
                    let request = PutRequest {
                        key: Bytes::copy_from_slice(key.as_bytes()),
                        value: Bytes::copy_from_slice(value.as_bytes()),
                        ..PutRequest::default()
                    };
                    match kv.put(request).await {
                        Ok(response) => {
                            return Ok(response.into_inner().header.map_or(0, |h| h.revision));
                        }
                        Err(status) if is_retryable(&status) => {
                            last_error = format!("node {}: {status}", self.nodes[index].0);
                            *self.leader.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        }
                        Err(status) => return Err(format!("put {key:?} refused: {status}")),
                    }
                }
                Err(observed) => last_error = observed,
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// The status of a call that must fail, checked for etcd's code and message (etcd's clients
/// match on the text).
pub fn assert_etcd_error<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    message: &str,
) {
    let status = result.expect_err("the call must fail");
    assert_eq!((status.code(), status.message()), (code, message));
}
