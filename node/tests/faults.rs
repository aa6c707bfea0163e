//! Fault injection against real `node` processes, checked for linearizability.
//!
//! Three members talk Raft through TCP proxies this test controls. Six clients (two per node,
//! each on its own node's client port, as applications on the same machine do) write unique
//! values, compare-and-swap, delete and read under every read policy on a few keys (about half
//! of them through etcd's v3 API: Put, a Txn as compare-and-swap, DeleteRange, Range), while a
//! nemesis (`faults/nemesis.rs`) kills, pauses, partitions (one-way, both ways, or one pair of
//! members), stalls and fails disks (failpoints set at run time), stalls snapshot encoding and
//! steps wall clocks; moves leadership and replaces voters, also while a member
//! is down, and brings back a member that lost its disk under its id. Every fault kind strikes
//! the leader at least once while reads are in flight (probes read through the struck leader
//! and another member meanwhile), or the run fails. A watcher per node follows the whole
//! prefix. At the end everything is healed and restarted, the members (as the
//! membership now stands) converge, every key is read through every node, and:
//! - writes, compare-and-swaps, deletes, linearizable and lease reads must be linearizable,
//!   per key (`faults/linearizability.rs`); with the final reads in the history, this also
//!   says that every acknowledged write is either visible or superseded by a later one;
//! - eventual reads may be stale but never invent a value, and no read's revision goes
//!   backwards for one client within one lifetime of its node;
//! - no one ever observes a value whose write was refused for certain, or that the node said
//!   was not applied;
//! - watchers see consecutive revisions (resuming after disconnects), agree with each other
//!   and with the acknowledged writes, and replay to the final state; those going through
//!   etcd's Watch (even node ids) get every event's `prev_kv`, which must be what they saw
//!   of the key before;
//! - leases (sessions granted through etcd's Lease service, kept alive a while, abandoned)
//!   never end before the last acknowledged keepalive promised, and all end once abandoned
//!   (`faults/leases.rs`);
//! - every node ends with the same data.
//!
//! Lease reads are checked as linearizable: a leader serves them only while a quorum answered
//! heartbeats it sent within `lease_ticks`, fewer than an election timeout, so no other leader
//! can have been elected meanwhile; the members share one machine's monotonic clock, so there
//! is no drift to allow for (wall-clock steps do not touch it). `faults/snapshot_watch.rs` replays, deterministically, one scenario the
//! randomized run finds.
//!
//! `DENGINE_FAULT_SEED` (u64; default: from the clock, always printed) chooses the schedule of
//! faults and every client's choices; `DENGINE_FAULT_SECONDS` (default 40) how long faults
//! are injected at least (longer, up to twice that, until every fault kind struck the leader). The seed replays decisions, not timing: the processes run on a real machine.
//! On a violation the test prints the seed, the smallest failing sub-history it found, the
//! nemesis' log, and the end of every node's log.
//!
//! Runs only when built with `--features failpoints` (as `scripts/test` does): the nemesis sets
//! failpoints and steps clocks in the nodes at run time.

#![cfg(feature = "failpoints")]

mod common;

#[path = "faults/checks.rs"]
mod checks;
#[path = "faults/cluster.rs"]
mod cluster;
#[path = "faults/history.rs"]
mod history;
#[path = "faults/leases.rs"]
mod leases;
#[path = "faults/linearizability.rs"]
mod linearizability;
#[path = "faults/member.rs"]
mod member;
#[path = "faults/nemesis.rs"]
mod nemesis;
#[path = "faults/proxy.rs"]
mod proxy;
#[path = "faults/rng.rs"]
mod rng;
#[path = "faults/senders.rs"]
mod senders;
#[path = "faults/shrink.rs"]
mod shrink;
#[path = "faults/snapshot_watch.rs"]
mod snapshot_watch;
#[path = "faults/stall.rs"]
mod stall;
#[path = "faults/ttl.rs"]
mod ttl;
#[path = "faults/watcher.rs"]
mod watcher;
#[path = "faults/workload.rs"]
mod workload;

#[cfg(test)]
#[path = "faults/checker_tests.rs"]
mod checker_tests;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dengine::proto::ReadPolicy;
use tokio::sync::watch;

use checks::Findings;
use cluster::FaultCluster;
use history::{Call, Clock, Op, Policy, Ret, Value};
use nemesis::Nemesis;
use watcher::Watchers;
use workload::{Client, Roster, Seat, PREFIX};

/// Settings that have no flag: snapshots often and few entries kept behind them, so members
/// that were away catch up by snapshot, not only from the log.
const NODE_CONFIG: &str = "snapshot_every = 300\nsnapshot_keep_entries = 50\n";
const KEYS: usize = 6;
const CLIENTS_PER_NODE: usize = 2;
/// Lease sessions run side by side (`faults/leases.rs`).
const LEASE_SESSION_RUNNERS: usize = 3;

struct Settings {
    seed: u64,
    duration: Duration,
}

impl Settings {
    fn from_env() -> Self {
        let seed = std::env::var("DENGINE_FAULT_SEED")
            .ok()
            .map(|s| {
                s.trim()
                    .parse()
                    .unwrap_or_else(|_| panic!("DENGINE_FAULT_SEED={s:?} is not a u64"))
            })
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        let seconds: f64 = std::env::var("DENGINE_FAULT_SECONDS")
            .ok()
            .map(|s| {
                s.trim()
                    .trim_end_matches('s')
                    .parse()
                    .unwrap_or_else(|_| panic!("DENGINE_FAULT_SECONDS={s:?} is not a number"))
            })
            .unwrap_or(40.0);
        Self {
            seed,
            duration: Duration::from_secs_f64(seconds.max(1.0)),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crashes_pauses_and_partitions_leave_the_cluster_linearizable() {
    let settings = Settings::from_env();
    let seed = settings.seed;
    println!(
        "DENGINE_FAULT_SEED={seed} DENGINE_FAULT_SECONDS={}",
        settings.duration.as_secs_f64()
    );
    let mut cluster = FaultCluster::start(3, &[], NODE_CONFIG).await;
    let clock = Clock::start();
    let keys = workload::keys(KEYS);

    let stop = Arc::new(AtomicBool::new(false));
    let (finish, finish_watch) = watch::channel(None);
    let roster = Roster::default();
    let mut watchers = Watchers::new(clock, finish_watch, Duration::from_secs(10));
    let mut clients = Vec::new();
    for (index, member) in cluster.members.iter().enumerate() {
        roster.push(Seat {
            node: member.id(),
            client_port: member.spec.client_port,
            lifetime: member.lifetime(),
        });
        for k in 0..CLIENTS_PER_NODE {
            let client = Client::new(
                index * CLIENTS_PER_NODE + k,
                member.id(),
                member.spec.client_port,
                member.lifetime(),
                keys.clone(),
                clock,
                seed,
            );
            clients.push(tokio::spawn(client.run(
                stop.clone(),
                roster.clone(),
                index,
            )));
        }
        watchers.start(member.id(), member.spec.client_port, 1);
    }

    let ttl_writer = tokio::spawn(ttl::write(
        stop.clone(),
        roster.clone(),
        cluster.members.len(),
        clock,
        seed,
    ));
    let session_runners: Vec<_> = (0..LEASE_SESSION_RUNNERS)
        .map(|writer| {
            tokio::spawn(leases::run_sessions(
                stop.clone(),
                roster.clone(),
                cluster.members.len(),
                clock,
                seed,
                writer,
            ))
        })
        .collect();
    let mut nemesis = Nemesis::new(seed, clock, 2, keys.clone());
    nemesis
        .run(&mut cluster, &roster, &mut watchers, settings.duration)
        .await;
    nemesis.heal_everything(&mut cluster).await;
    stop.store(true, Ordering::SeqCst);
    let mut ops: Vec<Op> = Vec::new();
    for client in clients {
        ops.extend(client.await.expect("a client task panicked"));
    }
    ops.extend(nemesis.probe_ops().await);
    let ttl_writes = ttl_writer.await.expect("the TTL writer panicked");
    let mut sessions = Vec::new();
    for runner in session_runners {
        sessions.extend(runner.await.expect("a lease session runner panicked"));
    }

    let revision = cluster.wait_converged().await;
    let (final_reads, final_state) = read_everything_everywhere(&cluster, &keys, clock, seed).await;
    ops.extend(final_reads);
    finish.send_replace(Some(revision));
    let watch_logs = watchers.finish().await;

    ops.sort_by_key(|op| (op.invoke, op.client));
    for (id, op) in ops.iter_mut().enumerate() {
        op.id = id;
    }
    let mut findings = Findings::default();
    for failure in &nemesis.failures {
        findings
            .violations
            .push(format!("membership change: {failure}"));
    }
    same_data_everywhere(&cluster, &final_state, &mut findings).await;
    let forward_steps = nemesis.forward_clock_steps();
    let ttl_excused = match ttl::all_expired_everywhere(&cluster, &ttl_writes, &forward_steps).await
    {
        Ok(excused) => excused,
        Err(e) => {
            findings.violations.push(e);
            0
        }
    };
    if let Err(e) = leases::all_ended_everywhere(&cluster, &sessions).await {
        findings.violations.push(e);
    }
    let sessions_judged = match leases::none_ended_early(&sessions, &watch_logs) {
        // A run whose watchers saw no session end decided nothing about leases.
        Ok(0) => {
            findings.violations.push(format!(
                "no lease session's end was seen by a watcher ({} sessions): the lease check \
                 decided nothing",
                sessions.len()
            ));
            0
        }
        Ok(judged) => judged,
        Err(violations) => {
            findings.violations.extend(violations);
            0
        }
    };
    let prev_kvs_checked: usize = watch_logs.iter().map(|l| l.prev_kvs_checked).sum();
    if prev_kvs_checked == 0 {
        findings.violations.push(
            "no etcd watch event's prev_kv was checked: the prev_kv check decided nothing".into(),
        );
    }
    checks::linearizable(&ops, &mut findings);
    checks::no_invented_or_refused_values(&ops, &watch_logs, &mut findings);
    checks::read_revisions_monotonic(&ops, &mut findings);
    checks::watches(&ops, &watch_logs, &final_state, &mut findings);
    let coverage = checks::fault_coverage(&nemesis.strikes, &ops, clock.now());
    checks::every_fault_met_the_leader(&coverage, &mut findings);

    let events: usize = watch_logs.iter().map(|l| l.events.len()).sum();
    let reconnects: usize = watch_logs.iter().map(|l| l.reconnects).sum();
    println!(
        "seed {seed}: final revision {revision}; {events} watch events over {} watchers \
         ({} through etcd's Watch, {prev_kvs_checked} prev_kvs checked), {reconnects} reconnects; {} TTL keys written ({ttl_excused} during a forward clock \
         step, not held to expire); {} lease sessions, {} keepalives acknowledged, \
         {sessions_judged} ends seen and none before its promise; {}",
        watch_logs.len(),
        watch_logs.iter().filter(|l| l.etcd).count(),
        ttl_writes.len(),
        sessions.len(),
        sessions.iter().map(|s| s.keepalives_acked).sum::<usize>(),
        checks::summary(&ops),
    );
    println!("faults that struck the leader, with the reads in flight meanwhile:");
    for (kind, c) in &coverage {
        println!(
            "  {kind:<24} {:>3} strikes, {:>5} lease and {:>5} linearizable reads in flight",
            c.leader_strikes, c.lease_reads, c.linearizable_reads
        );
    }
    println!("nemesis:\n{}", nemesis.describe());
    for note in &findings.notes {
        println!("note: {note}");
    }
    assert!(
        findings.violations.is_empty(),
        "DENGINE_FAULT_SEED={seed}: {} violation(s):\n\n{}\n\nnemesis:\n{}",
        findings.violations.len(),
        findings.violations.join("\n\n"),
        nemesis.describe()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_deposed_while_stalled_serves_no_stale_lease_read() {
    stall::leader_deposed_while_stalled_serves_no_stale_lease_read().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_go_on_while_a_snapshot_is_encoded() {
    stall::writes_go_on_while_a_snapshot_is_encoded().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_go_on_while_a_watch_replays_history() {
    stall::writes_go_on_while_a_watch_replays_history().await;
}

/// Reads every key through every node, linearizably, retrying until each read is answered;
/// every attempt goes into the history. Returns those operations and the final state, as
/// the first node read it.
async fn read_everything_everywhere(
    cluster: &FaultCluster,
    keys: &[String],
    clock: Clock,
    seed: u64,
) -> (Vec<Op>, BTreeMap<String, Option<Value>>) {
    let mut ops = Vec::new();
    let mut state = BTreeMap::new();
    for (index, member) in cluster.members.iter().enumerate() {
        let mut client = Client::new(
            1_000 + index,
            member.id(),
            member.spec.client_port,
            member.lifetime(),
            keys.to_vec(),
            clock,
            seed,
        );
        for key in keys {
            for attempt in 1.. {
                let read = Call::Read {
                    policy: Policy::Linearizable,
                };
                let op = client.perform(key, read).await;
                let answer = match op.ret() {
                    Some(Ret::Read { value }) => Some(*value),
                    _ => None,
                };
                let outcome = format!("{op}");
                ops.push(op);
                if let Some(value) = answer {
                    state.entry(key.clone()).or_insert(value);
                    break;
                }
                assert!(
                    attempt < 20,
                    "the final read of {key} through node {} keeps failing: {outcome}",
                    member.id()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    (ops, state)
}

/// Every node's applied state (an eventual scan, after convergence) holds exactly the final
/// state.
async fn same_data_everywhere(
    cluster: &FaultCluster,
    final_state: &BTreeMap<String, Option<Value>>,
    findings: &mut Findings,
) {
    let expected: BTreeMap<String, String> = final_state
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_ref()?.to_string())))
        .collect();
    for member in &cluster.members {
        let kv = dengine::proto::kv_client::KvClient::new(member::channel(
            member.spec.client_port,
            Duration::from_secs(5),
        ));
        let mut kv = kv;
        match common::scan_all(&mut kv, PREFIX, ReadPolicy::Eventual, 100).await {
            Ok(kvs) => {
                let held = common::key_value_map(&kvs);
                if held != expected {
                    findings.violations.push(format!(
                        "node {} holds {held:?} after convergence, the final reads say {expected:?}",
                        member.id()
                    ));
                }
            }
            Err(status) => findings.violations.push(format!(
                "node {} cannot be scanned after convergence: {status}",
                member.id()
            )),
        }
    }
}
