//! Runs one workload: connect, preload the keyspace, warm up, measure, sample the nodes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::cli::{RunArgs, TargetKind};
use crate::mix::{self, Chooser, Op};
use crate::procfs::{self, ProcSample};
use crate::report::{Machine, MemorySample, Params, ProcessReport, Report, RunResult};
use crate::stats::{self, LatencySummary};
use crate::targets::{
    dengine::DengineTarget, embedded::EmbeddedTarget, etcd::EtcdTarget, Operation, Target,
};

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

/// Clients record latencies into this many shards of histograms (one per operation kind,
/// behind a mutex held for one record): a histogram per client would take hundreds of MiB
/// with 500 clients.
const SHARDS: usize = 8;

type Shard = std::sync::Mutex<Vec<Histogram<u64>>>;

/// What one client task counted besides latencies.
struct ClientTally {
    errors: BTreeMap<String, u64>,
    first_errors: BTreeMap<String, String>,
    cas_succeeded: u64,
    cas_failed: u64,
}

pub async fn connect(args: &RunArgs) -> anyhow::Result<Target> {
    let timeout = args.request_timeout();
    Ok(match args.target {
        TargetKind::Dengine => Target::Dengine(DengineTarget::connect(args, timeout).await?),
        TargetKind::Etcd => Target::Etcd(EtcdTarget::connect(args, timeout).await?),
        TargetKind::Embedded => Target::Embedded(Box::new(EmbeddedTarget::start(args).await?)),
    })
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Runs the workload `args` describes and returns its report (also when the target does not
/// offer the operation: then `supported` is false and nothing ran).
pub async fn run(args: &RunArgs) -> anyhow::Result<Report> {
    args.validate().map_err(anyhow::Error::msg)?;
    let started_unix_ms = now_unix_ms();
    let target = connect(args).await?;
    let chooser = Chooser::new(args.mix, args.mixed_write_percent);
    let mut report = Report {
        tool: "dengine-bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        label: args.label.clone(),
        started_unix_ms,
        target: args
            .system
            .clone()
            .unwrap_or_else(|| format!("{:?}", args.target).to_lowercase()),
        used_endpoints: target.used_endpoints(),
        read_from: format!("{:?}", args.read_from).to_lowercase(),
        params: Params {
            clients: args.clients,
            connections: target.connections(),
            key_size: args.key_size,
            value_size: args.value_size,
            keyspace: args.keyspace,
            mix: args.mix.name().into(),
            mixed_write_percent: args.mixed_write_percent,
            ops: args.ops,
            duration_s: args.duration().map(|d| d.as_secs_f64()),
            warmup_s: args.warmup().as_secs_f64(),
        },
        supported: true,
        unsupported_reason: None,
        preload_s: None,
        result: None,
        processes: Vec::new(),
        memory_samples: Vec::new(),
        machine: Machine::read(),
    };
    if let Some(reason) = chooser
        .ops()
        .into_iter()
        .find_map(|op| target.unsupported(op))
    {
        report.supported = false;
        report.unsupported_reason = Some(reason);
        target.close().await?;
        return Ok(report);
    }

    let target = Arc::new(target);
    let known: Arc<Vec<AtomicI64>> =
        Arc::new((0..args.keyspace).map(|_| AtomicI64::new(0)).collect());
    let value = Bytes::from(mix::value(args.value_size, 0x5eed));
    if args.preload_only || (args.mix.needs_preload() && !args.no_preload) {
        let started = Instant::now();
        preload(args, &target, &known, &value).await?;
        report.preload_s = Some(started.elapsed().as_secs_f64());
    }
    if !args.preload_only {
        let (result, processes, samples) = measure(args, &target, &known, value, chooser).await;
        report.result = Some(result);
        report.processes = processes;
        report.memory_samples = samples;
    }
    match Arc::try_unwrap(target) {
        Ok(target) => target.close().await?,
        Err(_) => anyhow::bail!("a client task still holds the target"),
    }
    Ok(report)
}

/// Writes every key of the keyspace once, `max(clients, 32)` at a time (at most 256),
/// retrying a failed write a few times.
async fn preload(
    args: &RunArgs,
    target: &Arc<Target>,
    known: &Arc<Vec<AtomicI64>>,
    value: &Bytes,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let workers = args.clients.clamp(32, 256);
    let mut tasks = Vec::new();
    for worker in 0..workers {
        let (target, known, value, next) =
            (target.clone(), known.clone(), value.clone(), next.clone());
        let (keyspace, key_size) = (args.keyspace, args.key_size);
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= keyspace {
                    return Ok::<(), anyhow::Error>(());
                }
                let key = Bytes::from(mix::key(i, key_size));
                let mut attempt = 0;
                loop {
                    tokio::task::consume_budget().await;
                    match target
                        .execute(
                            worker,
                            Operation {
                                op: Op::Write,
                                key: key.clone(),
                                value: value.clone(),
                                expected: 0,
                            },
                        )
                        .await
                    {
                        Ok(outcome) => {
                            known[i as usize]
                                .fetch_max(outcome.mod_revision.unwrap_or(0), Ordering::Relaxed);
                            break;
                        }
                        Err(e) if attempt < 20 => {
                            attempt += 1;
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => anyhow::bail!("preloading key {i}: {}: {}", e.kind, e.message),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

fn sample_all(pids: &[(u32, String)]) -> Vec<Option<ProcSample>> {
    pids.iter().map(|(pid, _)| procfs::sample(*pid)).collect()
}

async fn measure(
    args: &RunArgs,
    target: &Arc<Target>,
    known: &Arc<Vec<AtomicI64>>,
    value: Bytes,
    chooser: Chooser,
) -> (RunResult, Vec<ProcessReport>, Vec<MemorySample>) {
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let issued = Arc::new(AtomicU64::new(0));
    let limit = args.ops;
    let shards: Arc<Vec<Shard>> = Arc::new(
        (0..SHARDS)
            .map(|_| {
                std::sync::Mutex::new(Op::ALL.iter().map(|_| stats::new_histogram()).collect())
            })
            .collect(),
    );
    let mut clients = Vec::new();
    for c in 0..args.clients {
        let (target, known, value, phase, issued, shards) = (
            target.clone(),
            known.clone(),
            value.clone(),
            phase.clone(),
            issued.clone(),
            shards.clone(),
        );
        let (keyspace, key_size) = (args.keyspace, args.key_size);
        clients.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(0xbe4c_0000 + c as u64);
            let shard = &shards[c % SHARDS];
            let mut tally = ClientTally {
                errors: BTreeMap::new(),
                first_errors: BTreeMap::new(),
                cas_succeeded: 0,
                cas_failed: 0,
            };
            loop {
                let at_start = phase.load(Ordering::Acquire);
                if at_start == STOP {
                    break;
                }
                if at_start == MEASURE {
                    if let Some(limit) = limit {
                        if issued.fetch_add(1, Ordering::Relaxed) >= limit {
                            break;
                        }
                    }
                }
                let op = chooser.pick(&mut rng);
                let i = rng.u64(0..keyspace);
                let key = Bytes::from(mix::key(i, key_size));
                let expected = known[i as usize].load(Ordering::Relaxed);
                let sent = Instant::now();
                let result = target
                    .execute(
                        c,
                        Operation {
                            op,
                            key,
                            value: value.clone(),
                            expected,
                        },
                    )
                    .await;
                let latency = sent.elapsed();
                // An embedded read served from local state completes without ever waiting:
                // give the scheduler its turn now and then, or the timers that end the run
                // may never fire on a runtime whose workers all run such clients.
                tokio::task::consume_budget().await;
                // Counted only if it started and ended inside the measurement.
                let counted = at_start == MEASURE && phase.load(Ordering::Acquire) == MEASURE;
                match result {
                    Ok(outcome) => {
                        if let Some(revision) = outcome.mod_revision {
                            known[i as usize].fetch_max(revision, Ordering::Relaxed);
                        }
                        if counted {
                            let mut histograms = shard.lock().unwrap_or_else(|e| e.into_inner());
                            stats::record(&mut histograms[op.index()], latency);
                            drop(histograms);
                            match outcome.cas_succeeded {
                                Some(true) => tally.cas_succeeded += 1,
                                Some(false) => tally.cas_failed += 1,
                                None => {}
                            }
                        }
                    }
                    Err(e) => {
                        if counted {
                            *tally.errors.entry(e.kind.clone()).or_default() += 1;
                        }
                        tally.first_errors.entry(e.kind).or_insert(e.message);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            tally
        }));
    }

    let mut pids: Vec<(u32, String)> = args
        .pids
        .iter()
        .map(|pid| (*pid, procfs::name(*pid)))
        .collect();
    pids.push((std::process::id(), "bench".into()));

    tokio::time::sleep(args.warmup()).await;
    let before = sample_all(&pids);
    let started = Instant::now();
    phase.store(MEASURE, Ordering::Release);

    let sampler = args.sample_memory_every.map(|every| {
        let (phase, pids) = (phase.clone(), pids.clone());
        let every = Duration::from_secs_f64(every.max(0.01));
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut ticker = tokio::time::interval(every);
            while phase.load(Ordering::Acquire) == MEASURE {
                ticker.tick().await;
                let rss_kib = pids
                    .iter()
                    .filter_map(|(pid, _)| Some((*pid, procfs::sample(*pid)?.rss_kib)))
                    .collect();
                samples.push(MemorySample {
                    t_s: started.elapsed().as_secs_f64(),
                    rss_kib,
                });
            }
            samples
        })
    });

    let mut tallies = Vec::new();
    let (elapsed, after) = match args.duration() {
        Some(duration) => {
            tokio::time::sleep(duration).await;
            phase.store(STOP, Ordering::Release);
            let elapsed = started.elapsed();
            let after = sample_all(&pids);
            for client in clients {
                tallies.push(client.await.expect("a client task panicked"));
            }
            (elapsed, after)
        }
        None => {
            for client in clients {
                tallies.push(client.await.expect("a client task panicked"));
            }
            let elapsed = started.elapsed();
            phase.store(STOP, Ordering::Release);
            (elapsed, sample_all(&pids))
        }
    };
    let samples = match sampler {
        Some(task) => task.await.unwrap_or_default(),
        None => Vec::new(),
    };

    let mut all = stats::new_histogram();
    let mut per_op = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_errors: BTreeMap<String, String> = BTreeMap::new();
    let (mut cas_succeeded, mut cas_failed) = (0, 0);
    for op in chooser.ops() {
        let mut h = stats::new_histogram();
        for shard in shards.iter() {
            let histograms = shard.lock().unwrap_or_else(|e| e.into_inner());
            h.add(&histograms[op.index()]).expect("same bounds");
        }
        all.add(&h).expect("same bounds");
        per_op.insert(op.name().to_string(), LatencySummary::of(&h));
    }
    for tally in tallies {
        for (kind, n) in tally.errors {
            *errors.entry(kind).or_default() += n;
        }
        for (kind, message) in tally.first_errors {
            first_errors.entry(kind).or_insert(message);
        }
        cas_succeeded += tally.cas_succeeded;
        cas_failed += tally.cas_failed;
    }
    for (kind, message) in &first_errors {
        eprintln!("first {kind} error: {message}");
    }
    let elapsed_s = elapsed.as_secs_f64();
    let ops = all.len();
    let result = RunResult {
        ops,
        errors: errors.values().sum(),
        error_kinds: errors,
        elapsed_s,
        throughput_ops_s: if elapsed_s > 0.0 {
            ops as f64 / elapsed_s
        } else {
            0.0
        },
        latency: LatencySummary::of(&all),
        per_op,
        cas_succeeded,
        cas_failed,
    };
    let ticks = procfs::ticks_per_second() as f64;
    let processes = pids
        .into_iter()
        .zip(before.into_iter().zip(after))
        .map(|((pid, label), (before, after))| {
            let cpu_s = match (before, after) {
                (Some(b), Some(a)) => Some(a.cpu_ticks.saturating_sub(b.cpu_ticks) as f64 / ticks),
                _ => None,
            };
            ProcessReport {
                pid,
                label,
                before,
                after,
                cpu_s,
                cpu_percent: cpu_s.map(|s| {
                    if elapsed_s > 0.0 {
                        s / elapsed_s * 100.0
                    } else {
                        0.0
                    }
                }),
            }
        })
        .collect();
    (result, processes, samples)
}
