//! Command-line flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::mix::Mix;

#[derive(Debug, Parser)]
#[command(
    name = "dengine-bench",
    version,
    about = "Drives one workload against d-engine's gRPC API, its embedded API or etcd's v3 API \
             and reports throughput, p50/p99/p99.9 latency, and memory and CPU of the nodes",
    after_help = "Examples:\n  \
        dengine-bench --target dengine --endpoints 127.0.0.1:2379 --mix write --clients 10 --connections 10 --duration 10\n  \
        dengine-bench --target etcd --endpoints 127.0.0.1:12379,127.0.0.1:22379 --mix linearizable --read-from follower\n  \
        dengine-bench --target embedded --mix mixed --ops 100000 --json report.json\n  \
        dengine-bench table results/*.json"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Prints a markdown table of JSON reports (one row per report, in the order given),
    /// with each d-engine row's throughput relative to the etcd row of the same workload.
    Table {
        /// JSON reports written by `--json`.
        #[arg(required = true)]
        reports: Vec<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// d-engine's gRPC client API (`proto/dengine/v1/kv.proto`) on `--endpoints`.
    Dengine,
    /// d-engine embedded in this process (`dengine::embedded`), driven through its client
    /// handle: a single node in a temporary directory, or a member of a cluster with
    /// `--embedded-initial-cluster`.
    Embedded,
    /// etcd's v3 gRPC API on `--endpoints`.
    Etcd,
}

/// Which node the requests go to. Every request (writes too) goes there; a follower forwards
/// writes to the leader and asks it for read indexes, in both systems.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// The node the cluster reports as leader.
    Leader,
    /// One node that is not the leader.
    Follower,
    /// Every endpoint given, connections spread over them round-robin.
    Any,
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct RunArgs {
    /// Which API to drive.
    #[arg(long, value_enum, default_value_t = TargetKind::Dengine)]
    pub target: TargetKind,
    /// Client endpoints `host:port`, comma separated (for `embedded`: the other members'
    /// client APIs, used to move leadership).
    #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
    pub endpoints: Vec<String>,
    /// Concurrent clients (Tokio tasks), each with one request in flight at a time.
    #[arg(long, default_value_t = 1)]
    pub clients: usize,
    /// gRPC connections (HTTP/2 channels); clients share them round-robin. Not used by
    /// `embedded`.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Key size in bytes.
    #[arg(long, default_value_t = 16)]
    pub key_size: usize,
    /// Value size in bytes (random, incompressible).
    #[arg(long, default_value_t = 256)]
    pub value_size: usize,
    /// Number of distinct keys; each request picks one uniformly.
    #[arg(long, default_value_t = 100_000)]
    pub keyspace: u64,
    /// Operation mix.
    #[arg(long, value_enum, default_value_t = Mix::Write)]
    pub mix: Mix,
    /// Share of writes in `--mix mixed`, percent; the rest are linearizable reads.
    #[arg(long, default_value_t = 20)]
    pub mixed_write_percent: u32,
    /// Measure this many operations (after the warm-up), instead of a duration.
    #[arg(long, conflicts_with = "duration")]
    pub ops: Option<u64>,
    /// Measure for this many seconds (default 10 unless --ops is given).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Run the workload this many seconds before measuring.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Where requests go: the leader, a follower, or every endpoint.
    #[arg(long, value_enum, default_value_t = ReadFrom::Leader)]
    pub read_from: ReadFrom,
    /// Do not write the keyspace before a run that reads or compares (it is already there).
    #[arg(long)]
    pub no_preload: bool,
    /// Only write the keyspace, then exit.
    #[arg(long, conflicts_with = "no_preload")]
    pub preload_only: bool,
    /// Write the report here as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Processes (the nodes) whose memory (VmRSS, VmHWM) and CPU (utime + stime) are read
    /// before and after the measurement and reported; comma separated.
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Also read the memory of those processes (and of this one) every this many seconds
    /// during the measurement, for checking that it stays flat over a long run.
    #[arg(long)]
    pub sample_memory_every: Option<f64>,
    /// A label stored in the report (e.g. the script's run name).
    #[arg(long)]
    pub label: Option<String>,
    /// The system measured, as the report and the table name it (default: the target's
    /// name). `dengine-etcd` is d-engine measured through its etcd API (`--target etcd`
    /// against a d-engine node), which the table sets beside etcd.
    #[arg(long)]
    pub system: Option<String>,
    /// Per-request deadline, seconds.
    #[arg(long, default_value_t = 10.0)]
    pub request_timeout: f64,

    /// Embedded: the data directory (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub embedded_data_dir: Option<PathBuf>,
    /// Embedded: this node's id.
    #[arg(long, default_value_t = 1)]
    pub embedded_id: u64,
    /// Embedded: found a cluster with these members (`id=host:port,...`, peer addresses, as
    /// for `node --initial-cluster`); the others are `node` processes. Default: a single node.
    #[arg(long)]
    pub embedded_initial_cluster: Option<String>,
    /// Embedded: the peer listen address, for a cluster member.
    #[arg(long)]
    pub embedded_peer_listen: Option<String>,
    /// Embedded: the cluster token, as given to the other members.
    #[arg(long)]
    pub embedded_cluster_token: Option<String>,
}

impl RunArgs {
    pub fn duration(&self) -> Option<Duration> {
        match (self.ops, self.duration) {
            (Some(_), _) => None,
            (None, Some(s)) => Some(Duration::from_secs_f64(s.max(0.0))),
            (None, None) => Some(Duration::from_secs(10)),
        }
    }

    pub fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.warmup.max(0.0))
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.request_timeout.max(0.001))
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.clients == 0 {
            return Err("--clients must be at least 1".into());
        }
        if self.connections == 0 {
            return Err("--connections must be at least 1".into());
        }
        if self.keyspace == 0 {
            return Err("--keyspace must be at least 1".into());
        }
        if self.key_size == 0 {
            return Err("--key-size must be at least 1".into());
        }
        if self.endpoints.is_empty() && self.target != TargetKind::Embedded {
            return Err("--endpoints is empty".into());
        }
        if self.mixed_write_percent > 100 {
            return Err("--mixed-write-percent is a percentage (0-100)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("dengine-bench").chain(args.iter().copied()))
            .expect("valid flags")
    }

    #[test]
    fn defaults() {
        let cli = parse(&[]);
        let run = cli.run;
        assert_eq!(run.target, TargetKind::Dengine);
        assert_eq!(
            (run.key_size, run.value_size, run.keyspace),
            (16, 256, 100_000)
        );
        assert_eq!(run.duration(), Some(Duration::from_secs(10)));
        assert_eq!(run.read_from, ReadFrom::Leader);
        assert!(run.validate().is_ok());
    }

    #[test]
    fn ops_replace_the_duration_and_lists_split_on_commas() {
        let run = parse(&[
            "--target",
            "etcd",
            "--endpoints",
            "127.0.0.1:1,127.0.0.1:2",
            "--ops",
            "500",
            "--pids",
            "10,11",
            "--mix",
            "cas",
        ])
        .run;
        assert_eq!(run.duration(), None);
        assert_eq!(run.endpoints.len(), 2);
        assert_eq!(run.pids, vec![10, 11]);
        assert_eq!(run.mix, Mix::Cas);
        assert!(Cli::try_parse_from(["b", "--ops", "1", "--duration", "2"]).is_err());
        assert!(parse(&["--clients", "0"]).run.validate().is_err());
    }
}
