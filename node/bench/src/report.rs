//! The JSON report of a run, what is printed, and the markdown table of several reports.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::procfs::ProcSample;
use crate::stats::{human_us, LatencySummary};

/// Everything about one run. Written by `--json`; `table` reads it back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub tool: String,
    pub version: String,
    pub label: Option<String>,
    pub started_unix_ms: u64,
    /// `dengine`, `embedded` or `etcd`.
    pub target: String,
    /// The endpoints the requests went to (after `--read-from`), and that choice.
    pub used_endpoints: Vec<String>,
    pub read_from: String,
    pub params: Params,
    /// False when the target has no such operation (etcd has no lease read); nothing ran.
    pub supported: bool,
    pub unsupported_reason: Option<String>,
    /// Seconds spent writing the keyspace before the run, if it was.
    pub preload_s: Option<f64>,
    pub result: Option<RunResult>,
    /// The nodes given by `--pids` (and this process, labelled `bench`).
    pub processes: Vec<ProcessReport>,
    /// `--sample-memory-every`: RSS of every process over time.
    pub memory_samples: Vec<MemorySample>,
    pub machine: Machine,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Params {
    pub clients: usize,
    /// gRPC connections; 0 for the embedded API.
    pub connections: usize,
    pub key_size: usize,
    pub value_size: usize,
    pub keyspace: u64,
    pub mix: String,
    pub mixed_write_percent: u32,
    pub ops: Option<u64>,
    pub duration_s: Option<f64>,
    pub warmup_s: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Operations completed (successfully) within the measurement.
    pub ops: u64,
    pub errors: u64,
    /// Error counts by gRPC code (or embedded error kind).
    pub error_kinds: BTreeMap<String, u64>,
    pub elapsed_s: f64,
    pub throughput_ops_s: f64,
    /// Every operation together.
    pub latency: LatencySummary,
    /// Per operation kind, for mixes of several.
    pub per_op: BTreeMap<String, LatencySummary>,
    /// For `cas`: comparisons that held and that did not (both are completed operations).
    pub cas_succeeded: u64,
    pub cas_failed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub label: String,
    pub before: Option<ProcSample>,
    pub after: Option<ProcSample>,
    /// CPU seconds (user + system) used during the measurement.
    pub cpu_s: Option<f64>,
    /// That as a share of one core over the measurement, percent.
    pub cpu_percent: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemorySample {
    /// Seconds since the measurement started.
    pub t_s: f64,
    /// RSS in KiB by pid.
    pub rss_kib: BTreeMap<u32, u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_kib: u64,
    pub kernel: String,
    pub load_average: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let load_average = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        Self {
            cpu_model,
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_kib,
            kernel,
            load_average,
        }
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Report {
    /// What the run printed, for people.
    pub fn human(&self) -> String {
        let p = &self.params;
        let mut out = format!(
            "{} {} clients={} connections={} key={}B value={}B keyspace={} via {} ({})\n",
            self.target,
            p.mix,
            p.clients,
            p.connections,
            p.key_size,
            p.value_size,
            p.keyspace,
            self.used_endpoints.join(","),
            self.read_from,
        );
        if !self.supported {
            let _ = writeln!(
                out,
                "  unsupported: {}",
                self.unsupported_reason.as_deref().unwrap_or("")
            );
            return out;
        }
        if let Some(s) = self.preload_s {
            let _ = writeln!(out, "  preload of {} keys: {s:.1} s", p.keyspace);
        }
        if let Some(r) = &self.result {
            let _ = writeln!(
                out,
                "  {} ops in {:.2} s = {:.0} ops/s; latency p50 {} p99 {} p99.9 {} max {}; errors {}",
                r.ops,
                r.elapsed_s,
                r.throughput_ops_s,
                human_us(r.latency.p50_us),
                human_us(r.latency.p99_us),
                human_us(r.latency.p999_us),
                human_us(r.latency.max_us),
                r.errors,
            );
            if r.per_op.len() > 1 {
                for (op, l) in &r.per_op {
                    let _ = writeln!(
                        out,
                        "    {op}: {} ops, p50 {} p99 {} p99.9 {}",
                        l.count,
                        human_us(l.p50_us),
                        human_us(l.p99_us),
                        human_us(l.p999_us)
                    );
                }
            }
            if r.cas_succeeded + r.cas_failed > 0 {
                let _ = writeln!(
                    out,
                    "    cas: {} held, {} did not",
                    r.cas_succeeded, r.cas_failed
                );
            }
            for (kind, n) in &r.error_kinds {
                let _ = writeln!(out, "    error {kind}: {n}");
            }
        }
        for proc in &self.processes {
            if let Some(after) = proc.after {
                let _ = writeln!(
                    out,
                    "  {} pid {}: rss {:.1} MiB (peak {:.1} MiB), cpu {:.2} s = {:.0}% of a core",
                    proc.label,
                    proc.pid,
                    mib(after.rss_kib),
                    mib(after.hwm_kib),
                    proc.cpu_s.unwrap_or(0.0),
                    proc.cpu_percent.unwrap_or(0.0),
                );
            }
        }
        if let (Some(first), Some(last)) = (self.memory_samples.first(), self.memory_samples.last())
        {
            for (pid, start) in &first.rss_kib {
                let end = last.rss_kib.get(pid).copied().unwrap_or(0);
                let _ = writeln!(
                    out,
                    "  memory of pid {pid}: {:.1} MiB at {:.0} s, {:.1} MiB at {:.0} s",
                    mib(*start),
                    first.t_s,
                    mib(end),
                    last.t_s
                );
            }
        }
        out
    }

    /// What a row is compared on: the label the script gives both runs of a pair, else the
    /// workload (mix, sizes, concurrency and node choice).
    fn pair_key(&self) -> String {
        if let Some(label) = &self.label {
            return label.clone();
        }
        let p = &self.params;
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}",
            p.mix,
            p.mixed_write_percent,
            p.clients,
            p.connections,
            p.key_size,
            p.value_size,
            p.keyspace,
            self.read_from
        )
    }
}

/// A markdown table of reports, in the order given. `ratio` is the throughput of a d-engine
/// row, gRPC or etcd API, over that of the etcd row of the same pair (same `--label`, else
/// same workload),
/// and of an embedded row over the d-engine gRPC row of the same pair.
pub fn markdown_table(reports: &[Report]) -> String {
    let throughput = |target: &str| -> BTreeMap<String, f64> {
        reports
            .iter()
            .filter(|r| r.target == target)
            .filter_map(|r| Some((r.pair_key(), r.result.as_ref()?.throughput_ops_s)))
            .collect()
    };
    let (etcd, grpc) = (throughput("etcd"), throughput("dengine"));
    let mut out = String::from(
        "| workload | clients/conns | node | system | ops/s | ratio | p50 ms | p99 ms | p99.9 ms | errors | RSS per node MiB (after) | CPU per node % of a core |\n\
         | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |\n",
    );
    for r in reports {
        if r.supported && r.result.is_none() {
            // A preload: nothing was measured.
            continue;
        }
        let p = &r.params;
        let workload = if p.mix == "mixed" {
            format!("mixed {}% w", p.mixed_write_percent)
        } else {
            p.mix.clone()
        };
        let conns = if r.target == "embedded" {
            format!("{}/-", p.clients)
        } else {
            format!("{}/{}", p.clients, p.connections)
        };
        let system = match r.target.as_str() {
            "dengine" => "d-engine gRPC",
            "dengine-etcd" => "d-engine etcd API",
            "embedded" => "d-engine embedded",
            "etcd" => "etcd",
            other => other,
        };
        let Some(result) = r.result.as_ref().filter(|_| r.supported) else {
            let _ = writeln!(
                out,
                "| {workload} | {conns} | {} | {system} | unsupported | | | | | | | |",
                r.read_from
            );
            continue;
        };
        let base = match r.target.as_str() {
            "dengine" | "dengine-etcd" => etcd.get(&r.pair_key()).map(|b| (*b, "etcd")),
            "embedded" => grpc.get(&r.pair_key()).map(|b| (*b, "gRPC")),
            _ => None,
        };
        let ratio = match base {
            Some((base, of)) if base > 0.0 => {
                format!("{:.2}× {of}", result.throughput_ops_s / base)
            }
            _ => String::new(),
        };
        let ms = |us: f64| format!("{:.2}", us / 1_000.0);
        let per_node = |f: &dyn Fn(&ProcessReport) -> Option<String>| {
            r.processes
                .iter()
                .filter(|p| p.label != "bench" || r.target == "embedded")
                .filter_map(f)
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let rss = per_node(&|p| p.after.map(|a| format!("{:.0}", mib(a.rss_kib))));
        let cpu = per_node(&|p| p.cpu_percent.map(|c| format!("{c:.0}")));
        let _ = writeln!(
            out,
            "| {workload} | {conns} | {} | {system} | {:.0} | {ratio} | {} | {} | {} | {} | {rss} | {cpu} |",
            r.read_from,
            result.throughput_ops_s,
            ms(result.latency.p50_us),
            ms(result.latency.p99_us),
            ms(result.latency.p999_us),
            result.errors,
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(target: &str, mix: &str, throughput: f64) -> Report {
        Report {
            tool: "dengine-bench".into(),
            version: "0.1.0".into(),
            label: None,
            started_unix_ms: 1,
            target: target.into(),
            used_endpoints: vec!["127.0.0.1:1".into()],
            read_from: "leader".into(),
            params: Params {
                clients: 10,
                connections: 10,
                key_size: 16,
                value_size: 256,
                keyspace: 1000,
                mix: mix.into(),
                mixed_write_percent: 20,
                ops: None,
                duration_s: Some(5.0),
                warmup_s: 1.0,
            },
            supported: true,
            unsupported_reason: None,
            preload_s: None,
            result: Some(RunResult {
                ops: (throughput * 5.0) as u64,
                errors: 0,
                error_kinds: BTreeMap::new(),
                elapsed_s: 5.0,
                throughput_ops_s: throughput,
                latency: LatencySummary {
                    count: 5,
                    p50_us: 1_000.0,
                    p99_us: 2_000.0,
                    p999_us: 3_000.0,
                    ..Default::default()
                },
                per_op: BTreeMap::new(),
                cas_succeeded: 0,
                cas_failed: 0,
            }),
            processes: vec![ProcessReport {
                pid: 7,
                label: "node".into(),
                before: None,
                after: Some(ProcSample {
                    rss_kib: 2048,
                    hwm_kib: 4096,
                    cpu_ticks: 10,
                }),
                cpu_s: Some(1.0),
                cpu_percent: Some(20.0),
            }],
            memory_samples: vec![],
            machine: Machine::default(),
        }
    }

    #[test]
    fn json_report_shape() {
        let value = serde_json::to_value(sample("dengine", "write", 100.0)).unwrap();
        for field in [
            "tool",
            "target",
            "params",
            "supported",
            "result",
            "processes",
            "machine",
            "used_endpoints",
            "read_from",
            "memory_samples",
        ] {
            assert!(value.get(field).is_some(), "missing {field}: {value}");
        }
        let result = &value["result"];
        assert_eq!(result["throughput_ops_s"], 100.0);
        for field in ["p50_us", "p99_us", "p999_us", "max_us", "mean_us", "count"] {
            assert!(result["latency"].get(field).is_some(), "latency.{field}");
        }
        assert_eq!(value["params"]["value_size"], 256);
        assert_eq!(value["processes"][0]["after"]["rss_kib"], 2048);
        let back: Report = serde_json::from_value(value).unwrap();
        assert_eq!(back.params.clients, 10);
    }

    #[test]
    fn table_compares_with_the_etcd_row_of_the_same_workload() {
        let mut unsupported = sample("etcd", "lease", 0.0);
        unsupported.supported = false;
        unsupported.result = None;
        let labelled = |target: &str, throughput: f64| {
            let mut r = sample(target, "write", throughput);
            r.label = Some("single-write".into());
            r
        };
        let mut preload = sample("dengine", "write", 0.0);
        preload.result = None;
        preload.preload_s = Some(2.0);
        let table = markdown_table(&[
            preload,
            sample("dengine", "write", 300.0),
            sample("etcd", "write", 200.0),
            sample("dengine-etcd", "write", 250.0),
            sample("dengine", "lease", 900.0),
            unsupported,
            labelled("dengine", 100.0),
            labelled("embedded", 250.0),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 9, "a preload has no row: {table}");
        assert!(lines[2].contains("| 300 | 1.50× etcd |"), "{table}");
        assert!(lines[2].contains("| 1.00 | 2.00 | 3.00 |"), "{table}");
        assert!(lines[2].contains("| 2 | 20 |"), "{table}");
        assert!(lines[3].contains("| etcd | 200 |  |"), "{table}");
        // d-engine through its etcd API, against the same etcd row.
        assert!(
            lines[4].contains("| d-engine etcd API | 250 | 1.25× etcd |"),
            "{table}"
        );
        assert!(lines[5].contains("| 900 |  |"), "no etcd row: {table}");
        assert!(lines[6].contains("unsupported"), "{table}");
        assert!(
            lines[7].contains("| 100 |  |"),
            "another pair's etcd: {table}"
        );
        assert!(lines[8].contains("| 250 | 2.50× gRPC |"), "{table}");
        let human = sample("dengine", "write", 300.0).human();
        assert!(human.contains("300 ops/s"), "{human}");
    }
}
