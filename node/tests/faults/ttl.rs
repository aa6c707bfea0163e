//! Keys with a TTL under faults: a writer puts keys under `t/` with TTLs of 0.5 to 2 s through
//! every member in turn while the nemesis works. Their expiry is decided by whichever node
//! leads, through the log, by its wall clock (which the nemesis steps); so expiry may come
//! early or late. After everything heals, every one of them must be gone from every node
//! within seconds, except those written while some node's clock was stepped forward: the
//! leader may have stamped their deadline an hour late, and they may live that long.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dengine::proto::kv_client::KvClient;
use dengine::proto::{PutRequest, ReadPolicy};

use super::cluster::FaultCluster;
use super::common::{b, scan_all, POLL};
use super::history::{Clock, Nanos};
use super::member::channel;
use super::rng::Rng;
use super::workload::Roster;

pub const TTL_PREFIX: &str = "t/";
const EXPIRY_DEADLINE: Duration = Duration::from_secs(30);

/// A TTL key written: when the write was invoked and when it returned.
pub struct TtlWrite {
    pub key: String,
    pub invoke: Nanos,
    pub complete: Nanos,
}

/// Writes TTL keys until `stop`; returns every write tried.
pub async fn write(
    stop: Arc<AtomicBool>,
    roster: Roster,
    members: usize,
    clock: Clock,
    seed: u64,
) -> Vec<TtlWrite> {
    let mut rng = Rng::fork(seed, 7_000);
    let mut writes = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let seat = roster.seat((n as usize) % members);
        let mut kv = KvClient::new(channel(seat.client_port, Duration::from_secs(3)));
        let key = format!("{TTL_PREFIX}{n}");
        let request = PutRequest {
            key: b(&key),
            value: b("expires"),
            ttl_ms: rng.between(500, 2_000),
            prev_kv: false,
        };
        let invoke = clock.now();
        let _ = kv.put(request).await;
        writes.push(TtlWrite {
            key,
            invoke,
            complete: clock.now(),
        });
        tokio::time::sleep(Duration::from_millis(rng.between(20, 80))).await;
    }
    writes
}

/// After everything healed: every TTL key must be gone from every member within
/// [`EXPIRY_DEADLINE`] (the longest TTL is 2 s; the leader scans for expired keys every few
/// ticks), but those whose write overlapped a forward step of a clock (`forward_steps`,
/// the end `None` for one still in force). Returns how many keys were excused.
pub async fn all_expired_everywhere(
    cluster: &FaultCluster,
    writes: &[TtlWrite],
    forward_steps: &[(Nanos, Option<Nanos>)],
) -> Result<usize, String> {
    let excused: BTreeSet<&str> = writes
        .iter()
        .filter(|w| {
            forward_steps
                .iter()
                .any(|&(from, to)| w.complete >= from && to.is_none_or(|to| w.invoke <= to))
        })
        .map(|w| w.key.as_str())
        .collect();
    let start = Instant::now();
    for member in &cluster.members {
        let mut kv = KvClient::new(channel(member.spec.client_port, Duration::from_secs(5)));
        loop {
            let left = match scan_all(&mut kv, TTL_PREFIX, ReadPolicy::Eventual, 100).await {
                Ok(kvs) => {
                    let left: Vec<String> = kvs
                        .iter()
                        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
                        .filter(|key| !excused.contains(key.as_str()))
                        .collect();
                    if left.is_empty() {
                        break;
                    }
                    format!("{} TTL keys left, first {}", left.len(), left[0])
                }
                Err(status) => status.to_string(),
            };
            if start.elapsed() > EXPIRY_DEADLINE {
                return Err(format!(
                    "node {}: TTL keys not expired {EXPIRY_DEADLINE:?} after the run: {left}",
                    member.id()
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(excused.len())
}
