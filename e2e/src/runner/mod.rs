//! `dengine-e2e`: runs the scenarios against the Kubernetes cluster of the current kubeconfig
//! (or `--context`), in a fresh namespace per run, deleted at the end unless `--keep`.
//!
//! Needs, in that cluster: the DEngineCluster CRD and a running operator (the Helm chart), and
//! the node and writer images where the nodes can pull them. `e2e/run` provides all of that on
//! kind, or on any cluster with a registry (see e2e/README.md).
//!
//! While the scenarios run, the runner watches the cluster's pods, the Events on the
//! DEngineCluster and its status, and follows every pod's writer log to collect the
//! acknowledged writes ([`recorders`]); the scenarios check what those recorded, and read the
//! acknowledged keys back through the nodes themselves (`dengine scan` run in the node
//! container, [`env::Env::verify_acks`]).

pub mod env;
pub mod recorders;
pub mod report;

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use crate::scenarios::{self, SCENARIOS};
use env::Env;
use report::Report;

const AFTER_HELP: &str = "\
Scenarios (all, in this order, unless --scenario picks some; each starts by bringing the cluster
to the state it needs, so any one runs alone):
  1  one member with the writer application beside its node
  2  scale to three: learners added and promoted one at a time, data on every member
  3  delete the leader's pod under continuous writes
  4  rolling upgrade to --upgrade-tag under continuous writes
  5  a member loses its volume (claim and pod deleted) and is replaced
  6  scale back to one, then delete the DEngineCluster: owned objects and volumes
  7  bad input refused by the API server with the CRD's messages

Needs the DEngineCluster CRD and the operator installed (charts/dengine-operator), and the node
and writer images pullable by the cluster's nodes. e2e/run does all of it on kind.
Exit status: 0 when every scenario passed, 1 when one failed, 2 when the run could not start.";

/// `dengine-e2e`: the end-to-end scenarios on a Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "dengine-e2e", version, about = "d-engine's end-to-end scenarios on a Kubernetes cluster (kind or any other)", after_help = AFTER_HELP)]
pub struct Cli {
    /// The kubeconfig context to use (default: the current one; KUBECONFIG is honoured)
    #[arg(long)]
    pub context: Option<String>,
    /// Run in this namespace (created when missing) instead of a fresh dengine-e2e-<id>
    #[arg(long)]
    pub namespace: Option<String>,
    /// Keep the namespace and everything in it at the end, to look at
    #[arg(long)]
    pub keep: bool,
    /// Run only this scenario (repeatable); see the list below
    #[arg(long = "scenario", value_name = "N", value_parser = clap::value_parser!(u8).range(1..=7))]
    pub scenarios: Vec<u8>,
    /// Stop at the first failed scenario
    #[arg(long)]
    pub fail_fast: bool,
    /// The node image, without a tag
    #[arg(long, default_value = "ghcr.io/d-engine/dengine")]
    pub node_image: String,
    /// The node image tag clusters start on
    #[arg(long, default_value = "dev")]
    pub node_tag: String,
    /// The node image tag scenario 4 upgrades to (another tag; may hold the same binary)
    #[arg(long, default_value = "dev-next")]
    pub upgrade_tag: String,
    /// The writer application image with its tag [default: ghcr.io/d-engine/dengine-e2e-app:<node-tag>]
    #[arg(long)]
    pub app_image: Option<String>,
    /// Put members on distinct Kubernetes nodes: auto = when at least 3 schedulable nodes
    #[arg(long, value_enum, default_value_t = Spread::Auto)]
    pub spread: Spread,
    /// StorageClass of the members' volumes [default: the cluster's default class]
    #[arg(long)]
    pub storage_class: Option<String>,
    /// Size of each member's volume
    #[arg(long, default_value = "256Mi")]
    pub storage_size: String,
    /// The writers' pause between writes
    #[arg(long, default_value = "200ms")]
    pub write_interval: String,
    /// Multiply every deadline by this (slow clusters)
    #[arg(long, default_value_t = 1.0)]
    pub timeout_scale: f64,
    /// The longest Available may be False during the rolling upgrade: an election plus the
    /// operator's next look at the cluster
    #[arg(long, default_value = "20s", value_parser = crate::app::parse_duration)]
    pub election_budget: Duration,
}

/// Whether to spread members across Kubernetes nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Spread {
    Auto,
    True,
    False,
}

/// The runner's `main`.
pub async fn main(cli: Cli) -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,kube_client=off,kube_runtime=off")
            }),
        )
        .with_writer(std::io::stderr)
        .try_init();
    if cli.node_tag == cli.upgrade_tag {
        eprintln!(
            "dengine-e2e: --node-tag and --upgrade-tag are both {:?}; scenario 4 needs two tags \
             (they may name the same image)",
            cli.node_tag
        );
        return ExitCode::from(2);
    }
    let selected: Vec<u8> = if cli.scenarios.is_empty() {
        SCENARIOS.iter().map(|s| s.number).collect()
    } else {
        cli.scenarios.clone()
    };

    let env = match Env::start(&cli).await {
        Ok(env) => env,
        Err(error) => {
            eprintln!("dengine-e2e: cannot start: {error:#}");
            return ExitCode::from(2);
        }
    };

    let mut results = Vec::new();
    for number in selected {
        let scenario = &SCENARIOS[usize::from(number - 1)];
        println!();
        println!("=== scenario {number}: {}", scenario.title);
        let started = Instant::now();
        let mut report = Report::new();
        let outcome = scenarios::run(number, &env, &mut report).await;
        let took = started.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                println!(
                    "PASS scenario {number}: {} ({took:.0}s, {} checks)",
                    scenario.title,
                    report.checks()
                );
                results.push((number, true));
            }
            Err(error) => {
                println!("FAIL scenario {number}: {} ({took:.0}s)", scenario.title);
                println!("  reason: {error:#}");
                println!("{}", env.diagnostics().await);
                results.push((number, false));
                if cli.fail_fast {
                    break;
                }
            }
        }
    }

    env.finish(cli.keep).await;
    let failed: Vec<String> = results
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n.to_string())
        .collect();
    println!();
    println!(
        "{} passed, {} failed",
        results.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        println!("failed scenarios: {}", failed.join(", "));
        ExitCode::FAILURE
    }
}
