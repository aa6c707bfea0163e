//! Leases under faults, through etcd's Lease and KV services: sessions, each a lease of 2 s
//! with one key attached under `l/`, granted through the members in turn, kept alive for a
//! while by keepalives through the same member, then abandoned, while the nemesis kills,
//! pauses and partitions members and steps their wall clocks (which leases never read).
//!
//! Two properties:
//! - **No lease ends before its promise.** A keepalive invoked at time `t` and answered with
//!   TTL `T` promises the lease, and so its key, until `t + T` (the leader renewed it after
//!   `t`). The run's watchers see every key's deletion no earlier than it happened, so a
//!   deletion seen before the promise of its lease's last acknowledged keepalive is a
//!   violation, never a false alarm. A new leader must give leases their time again: one
//!   that did not would end them early, right after a failover.
//! - **Every abandoned lease ends.** After everything healed, no session's key is left on any
//!   member and no session's lease is listed, within a deadline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dengine::proto::kv_client::KvClient as NativeKv;
use dengine::proto::ReadPolicy;
use dengine_proto::etcd::etcdserverpb as pb;
use dengine_proto::etcd::etcdserverpb::kv_client::KvClient;
use dengine_proto::etcd::etcdserverpb::lease_client::LeaseClient;
use tonic::transport::Channel;

use super::cluster::FaultCluster;
use super::common::{scan_all, POLL};
use super::history::{Clock, Millis, Nanos};
use super::member::channel;
use super::rng::Rng;
use super::watcher::WatchLog;
use super::workload::Roster;

pub const LEASE_PREFIX: &str = "l/";
/// The TTL sessions ask for, in seconds.
const TTL: i64 = 2;
const END_DEADLINE: Duration = Duration::from_secs(30);

/// One session: its lease, its key, and the latest time its keepalives promised it.
#[derive(Debug)]
pub struct Session {
    pub lease: i64,
    pub key: String,
    /// `invoke + TTL` of the last acknowledged keepalive (or of the grant); `None` if the
    /// grant's answer never came.
    pub promised_until: Option<Nanos>,
    pub keepalives_acked: usize,
}

fn lease_client(channel: &Channel) -> LeaseClient<Channel> {
    LeaseClient::new(channel.clone())
}

/// One keepalive on a stream of its own: the TTL answered, or `None` (an error, no answer in
/// time, or the lease gone).
async fn keep_alive(leases: &mut LeaseClient<Channel>, id: i64) -> Option<i64> {
    let one = tokio_stream::iter([pb::LeaseKeepAliveRequest { id }]);
    let call = async {
        let mut answers = leases.lease_keep_alive(one).await.ok()?.into_inner();
        answers.message().await.ok()?.map(|answer| answer.ttl)
    };
    tokio::time::timeout(Duration::from_secs(2), call)
        .await
        .ok()
        .flatten()
        .filter(|&ttl| ttl > 0)
}

/// Runs sessions one after another until `stop` (`writer` tells concurrent runners apart);
/// returns every session begun.
pub async fn run_sessions(
    stop: Arc<AtomicBool>,
    roster: Roster,
    members: usize,
    clock: Clock,
    seed: u64,
    writer: usize,
) -> Vec<Session> {
    let mut rng = Rng::fork(seed, 8_000 + writer as u64);
    let mut sessions = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let seat = roster.seat((n as usize + writer) % members);
        let channel = channel(seat.client_port, Duration::from_secs(2));
        let mut leases = lease_client(&channel);
        let key = format!("{LEASE_PREFIX}{writer}/{n}");
        let invoke = clock.now();
        let granted = leases
            .lease_grant(pb::LeaseGrantRequest { ttl: TTL, id: 0 })
            .await;
        let Ok(granted) = granted.map(|g| g.into_inner()) else {
            // The lease may exist anyway; without its id nothing can be said about it, and
            // nothing is attached to it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut session = Session {
            lease: granted.id,
            key: key.clone(),
            promised_until: Some(invoke + granted.ttl as u64 * 1_000_000_000),
            keepalives_acked: 0,
        };
        let put = pb::PutRequest {
            key: key.into_bytes(),
            value: b"session".to_vec(),
            lease: granted.id,
            ..Default::default()
        };
        let _ = KvClient::new(channel.clone()).put(put).await;
        for _ in 0..rng.between(0, 8) {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(rng.between(200, 500))).await;
            let invoke = clock.now();
            if let Some(ttl) = keep_alive(&mut leases, granted.id).await {
                session.keepalives_acked += 1;
                let promise = invoke + ttl as u64 * 1_000_000_000;
                session.promised_until = session.promised_until.max(Some(promise));
            }
        }
        sessions.push(session);
    }
    sessions
}

/// No session's key was seen deleted before its lease's promise. Returns how many deletions
/// were judged, or the violations.
pub fn none_ended_early(
    sessions: &[Session],
    watch_logs: &[WatchLog],
) -> Result<usize, Vec<String>> {
    // The earliest any watcher saw each key deleted.
    let mut deleted_seen: BTreeMap<&str, Nanos> = BTreeMap::new();
    for log in watch_logs {
        for (key, at) in &log.session_deletes {
            let seen = deleted_seen.entry(key.as_str()).or_insert(*at);
            *seen = (*seen).min(*at);
        }
    }
    let mut violations = Vec::new();
    let mut judged = 0;
    for session in sessions {
        let (Some(promise), Some(&seen)) = (
            session.promised_until,
            deleted_seen.get(session.key.as_str()),
        ) else {
            continue;
        };
        judged += 1;
        if seen < promise {
            violations.push(format!(
                "lease {:x} ended early: its key {} was seen deleted at {} ms, but a keepalive \
                 (or the grant) promised it until {} ms ({} keepalives acknowledged)",
                session.lease,
                session.key,
                Millis(seen),
                Millis(promise),
                session.keepalives_acked
            ));
        }
    }
    match violations.is_empty() {
        true => Ok(judged),
        false => Err(violations),
    }
}

/// After everything healed: every session's key gone from every member and no session's
/// lease listed, within [`END_DEADLINE`].
pub async fn all_ended_everywhere(
    cluster: &FaultCluster,
    sessions: &[Session],
) -> Result<(), String> {
    let start = Instant::now();
    for member in &cluster.members {
        let channel = channel(member.spec.client_port, Duration::from_secs(5));
        let mut native = NativeKv::new(channel.clone());
        let mut leases = lease_client(&channel);
        loop {
            let keys_left =
                match scan_all(&mut native, LEASE_PREFIX, ReadPolicy::Eventual, 100).await {
                    Ok(kvs) => kvs.len(),
                    Err(status) => {
                        return Err(format!(
                            "node {}: scanning {LEASE_PREFIX}: {status}",
                            member.id()
                        ))
                    }
                };
            let listed = match leases.lease_leases(pb::LeaseLeasesRequest {}).await {
                Ok(answer) => answer.into_inner().leases.len(),
                Err(status) => {
                    return Err(format!("node {}: listing leases: {status}", member.id()))
                }
            };
            if keys_left == 0 && listed == 0 {
                break;
            }
            if start.elapsed() > END_DEADLINE {
                return Err(format!(
                    "node {}: {keys_left} session keys and {listed} leases left {END_DEADLINE:?} \
                     after the run ({} sessions)",
                    member.id(),
                    sessions.len()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(())
}
