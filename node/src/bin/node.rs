//! `node`: runs one d-engine node, or a local three-node cluster for trying replication.
//!
//! With no arguments it starts a single-node cluster with data under
//! `./dengine-data/node-1`, serving the client API on 127.0.0.1:2379.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use dengine::server::config::LogFormat;
use dengine::server::{NodeConfig, NodeFlags};

#[derive(Parser)]
#[command(
    name = "node",
    version,
    about = "A d-engine node: Raft coordination with RocksDB storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    flags: NodeFlags,
}

#[derive(Subcommand)]
enum Command {
    /// Starts a local cluster of several nodes on this machine, one process each (client
    /// ports 2379, 22379, 32379, ...; peer ports 2380, 22380, 32380, ...; probes and metrics
    /// 2381, 22381, 32381, ...). Ctrl-C stops all.
    LocalCluster {
        /// How many nodes.
        #[arg(long, default_value_t = 3)]
        size: u64,
        /// Parent directory of the nodes' data directories.
        #[arg(long, default_value = "dengine-data/local-cluster")]
        data_dir: std::path::PathBuf,
    },
    /// Founds a new member's data directory from a backup (`dengine snapshot save`), offline,
    /// as `etcdutl snapshot restore`: run it for every founding member with the same
    /// --initial-cluster and --cluster-token, then start the nodes on those directories with
    /// those flags. (`node --restore-from FILE` does the same at start-up.)
    Restore {
        /// The backup file.
        file: std::path::PathBuf,
        /// The new, empty data directory.
        #[arg(long)]
        data_dir: std::path::PathBuf,
        /// The member this directory is for.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        /// The new cluster's founding members, id=host:port,... (default: this member alone
        /// at 127.0.0.1:2380).
        #[arg(long)]
        initial_cluster: Option<String>,
        /// Makes the new cluster's id unique; must match the nodes' --cluster-token.
        #[arg(long, default_value = "dengine")]
        cluster_token: String,
    },
}

fn init_tracing(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Failpoints come from the FAILPOINTS environment variable; without the `failpoints`
    // feature this does nothing.
    let _failpoints = fail::FailScenario::setup();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Some(Command::LocalCluster { size, data_dir }) => {
            runtime.block_on(local_cluster(size, data_dir))
        }
        Some(Command::Restore {
            file,
            data_dir,
            id,
            initial_cluster,
            cluster_token,
        }) => restore(file, data_dir, id, initial_cluster, cluster_token),
        None => runtime.block_on(run_node(cli.flags)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("Error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run_node(flags: NodeFlags) -> Result<(), String> {
    let config = NodeConfig::load(&flags).map_err(|e| e.to_string())?;
    init_tracing(config.log_format, &config.log_level);
    let mut node = dengine::server::start(config)
        .await
        .map_err(|e| e.to_string())?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot listen for SIGTERM: {e}"))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted; stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM; stopping"),
        result = node.stopped() => return result.map_err(|e| e.to_string()),
    }
    node.shutdown().await.map_err(|e| e.to_string())?;
    tracing::info!("stopped");
    Ok(())
}

fn restore(
    file: std::path::PathBuf,
    data_dir: std::path::PathBuf,
    id: u64,
    initial_cluster: Option<String>,
    cluster_token: String,
) -> Result<(), String> {
    let (header, _) = dengine_proto::backup::read(&file).map_err(|e| e.to_string())?;
    let config = NodeConfig {
        id,
        data_dir: Some(data_dir.clone()),
        initial_cluster,
        cluster_token,
        restore_from: Some(file.clone()),
        ..NodeConfig::default()
    };
    let cluster_id = dengine::server::restore_data_dir(&config).map_err(|e| e.to_string())?;
    let meta = header.metadata.unwrap_or_default();
    println!(
        "restored {} into {}: cluster {cluster_id:x}, member {id}, index {}, term {}, {} bytes",
        file.display(),
        data_dir.display(),
        meta.index,
        meta.term,
        header.data_bytes
    );
    Ok(())
}

async fn local_cluster(size: u64, data_dir: std::path::PathBuf) -> Result<(), String> {
    if !(1..=9).contains(&size) {
        return Err(format!("--size must be between 1 and 9, got {size}"));
    }
    let port = |i: u64, base: u64| if i == 1 { base } else { i * 10_000 + base };
    let initial_cluster = (1..=size)
        .map(|i| format!("{i}=127.0.0.1:{}", port(i, 2380)))
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this executable: {e}"))?;
    let mut children = Vec::new();
    for i in 1..=size {
        let child = tokio::process::Command::new(&exe)
            .arg("--id")
            .arg(i.to_string())
            .arg("--data-dir")
            .arg(data_dir.join(format!("node-{i}")))
            .arg("--client-listen")
            .arg(format!("127.0.0.1:{}", port(i, 2379)))
            .arg("--peer-listen")
            .arg(format!("127.0.0.1:{}", port(i, 2380)))
            .arg("--metrics-listen")
            .arg(format!("127.0.0.1:{}", port(i, 2381)))
            .arg("--initial-cluster")
            .arg(&initial_cluster)
            .arg("--cluster-token")
            .arg("dengine-local")
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start node {i}: {e}"))?;
        eprintln!(
            "node {i}: pid {} client 127.0.0.1:{} peer 127.0.0.1:{}",
            child.id().unwrap_or(0),
            port(i, 2379),
            port(i, 2380)
        );
        children.push(child);
    }
    let endpoints = (1..=size)
        .map(|i| format!("127.0.0.1:{}", port(i, 2379)))
        .collect::<Vec<_>>()
        .join(",");
    eprintln!("try: dengine --endpoints {endpoints} endpoint status");
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| format!("cannot wait for Ctrl-C: {e}"))?;
    for child in &mut children {
        if let Some(pid) = child.id() {
            // SIGTERM first, so every node stops gracefully.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
    for child in &mut children {
        let _ = child.wait().await;
    }
    Ok(())
}
