//! `dengine-operator`: the d-engine operator's command line.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use dengine_operator::http::{serve, Health};
use dengine_operator::kubernetes::{run_controller, Context, ControllerConfig};
use dengine_operator::leader_election::campaign;
use dengine_operator::metrics::Metrics;
use dengine_operator::observed::Limits;

/// The d-engine operator.
#[derive(Parser, Debug)]
#[command(name = "dengine-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the DEngineCluster CustomResourceDefinition as YAML (what crds/ holds).
    Crd,
    /// Run the operator: reconcile DEngineCluster resources with the kubeconfig in use (in a
    /// pod, its service account).
    Run(RunFlags),
}

#[derive(clap::Args, Debug)]
struct RunFlags {
    /// Where /livez, /readyz and /metrics are served.
    #[arg(long, env = "DENGINE_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// A namespace to watch (repeat for several); none watches every namespace.
    #[arg(
        long = "namespace",
        env = "DENGINE_OPERATOR_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// Compete for a Lease so that one replica reconciles at a time.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    leader_election: bool,
    /// The Lease's name.
    #[arg(long, default_value = "dengine-operator")]
    lease_name: String,
    /// The Lease's namespace: the operator's own.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's name in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log format.
    #[arg(
        long,
        env = "DENGINE_OPERATOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Log filter, as in RUST_LOG (for example `info` or `dengine_operator=debug,info`).
    #[arg(long, env = "DENGINE_OPERATOR_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// How long a member may be unhealthy, or a pod not ready, before Degraded is reported.
    #[arg(long, default_value = "300", value_name = "SECONDS")]
    degraded_after: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => print_crd(),
        Command::Run(flags) => run(flags),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("dengine-operator: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_crd() -> Result<(), String> {
    let yaml = dengine_operator::crdgen::crd_yaml().map_err(|e| e.to_string())?;
    std::io::stdout()
        .write_all(yaml.as_bytes())
        .map_err(|e| format!("writing to standard output: {e}"))
}

fn init_logging(flags: &RunFlags) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_new(&flags.log_level)
        .map_err(|e| format!("--log-level {}: {e}", flags.log_level))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match flags.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

fn run(flags: RunFlags) -> Result<(), String> {
    init_logging(&flags)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("starting tokio: {e}"))?;
    runtime.block_on(operate(flags))
}

async fn operate(flags: RunFlags) -> Result<(), String> {
    let client = kube::Client::try_default()
        .await
        .map_err(|e| format!("connecting to Kubernetes: {e}"))?;
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let health = Health {
        ready: ready.clone(),
        metrics: metrics.clone(),
    };
    let listener = tokio::net::TcpListener::bind(flags.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", flags.listen))?;
    let server = tokio::spawn(serve(listener, health));

    let identity = flags
        .identity
        .clone()
        .unwrap_or_else(|| format!("dengine-operator-{}", std::process::id()));
    let config = ControllerConfig {
        namespaces: flags.namespaces.clone(),
        limits: Limits {
            degraded_after: Duration::from_secs(flags.degraded_after),
            ..Limits::default()
        },
        admin_timeout: Duration::from_secs(10),
        instance: Some(identity.clone()),
    };
    let ctx = Arc::new(Context::new(client.clone(), metrics.clone(), config));

    let mut leading = if flags.leader_election {
        let mut leading = campaign(client, &flags.lease_namespace, &flags.lease_name, &identity)
            .await
            .map_err(|e| format!("leader election: {e}"))?;
        ready.store(true, Ordering::Relaxed);
        tracing::info!(lease = %flags.lease_name, %identity, "standing by for the Lease");
        leading
            .wait_for(|leads| *leads)
            .await
            .map_err(|_| "leader election stopped".to_string())?;
        Some(leading)
    } else {
        None
    };
    metrics.leader.set(1);
    ready.store(true, Ordering::Relaxed);
    tracing::info!(%identity, namespaces = ?flags.namespaces, "reconciling");

    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    let lost_lease = async {
        match leading.as_mut() {
            Some(leading) => {
                let _ = leading.wait_for(|leads| !*leads).await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = run_controller(ctx, shutdown.clone()) => Ok(()),
        _ = lost_lease => Err("lost the leader-election Lease; exiting so that a standby takes over".to_string()),
        served = server => Err(format!("the HTTP endpoint stopped: {served:?}")),
    }
}
