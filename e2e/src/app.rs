//! The writer application (`dengine-e2e-app`): the application container the scenarios run
//! beside every node. It talks only to its own node, on 127.0.0.1, through the client KV API,
//! like a real application would.
//!
//! `write` puts unique keys one after another (`<prefix><pod>/<boot>/<seq>`, `boot` being a
//! random id of this process, so a restarted container never reuses a key), prints `ACK` for
//! every write the node acknowledged and, every few writes, reads the last acknowledged key
//! back with a linearizable read and prints `READ ... ok|missing|mismatch`. Failed requests are
//! printed as `ERR` and retried with the next key (a failed write may or may not have happened,
//! so its key is never reused). The line format is in [`crate::acks`].
//!
//! `read KEY...` reads keys once and prints `GOT <key> <value>` or `ABSENT <key>`.

use std::future::Future;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};
use dengine_client::{Dial, EndpointAddr};
use tonic::transport::Channel;

use crate::acks::{key_for, value_for, Ack};
use crate::proto::kv_client::KvClient;
use crate::proto::{GetRequest, PutRequest, ReadPolicy};

/// `dengine-e2e-app`: writes and reads keys through the node beside it.
#[derive(Debug, Parser)]
#[command(
    name = "dengine-e2e-app",
    version,
    about = "The d-engine end-to-end suite's writer application: writes unique keys through its node and prints each acknowledged write"
)]
pub struct AppCli {
    #[command(subcommand)]
    pub command: AppCommand,
}

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Write unique keys until stopped (SIGTERM, Ctrl-C) or --count writes were acknowledged
    Write(WriteArgs),
    /// Read keys once and print `GOT <key> <value>` or `ABSENT <key>`
    Read(ReadArgs),
}

#[derive(Debug, Args)]
pub struct WriteArgs {
    /// The node's client API, host:port
    #[arg(long, env = "DENGINE_ENDPOINT", default_value = "127.0.0.1:2379")]
    pub endpoint: String,
    /// The prefix of every key
    #[arg(long, default_value = "e2e/")]
    pub prefix: String,
    /// This writer's name in its keys (the pod's name in Kubernetes)
    #[arg(long, env = "POD_NAME", default_value = "local")]
    pub pod: String,
    /// The pause after each write, e.g. 200ms, 1s
    #[arg(long, default_value = "200ms", value_parser = parse_duration)]
    pub interval: Duration,
    /// Read the last acknowledged key back after every N acknowledged writes (0: never)
    #[arg(long, default_value_t = 10)]
    pub read_every: u64,
    /// Stop after this many acknowledged writes (default: never)
    #[arg(long)]
    pub count: Option<u64>,
    /// Deadline of each request
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The node's client API, host:port
    #[arg(long, env = "DENGINE_ENDPOINT", default_value = "127.0.0.1:2379")]
    pub endpoint: String,
    /// How fresh the reads must be
    #[arg(long, value_enum, default_value_t = Policy::Linearizable)]
    pub policy: Policy,
    /// The keys
    #[arg(required = true)]
    pub keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Policy {
    Linearizable,
    Lease,
    Eventual,
}

impl Policy {
    fn proto(self) -> ReadPolicy {
        match self {
            Policy::Linearizable => ReadPolicy::Linearizable,
            Policy::Lease => ReadPolicy::Lease,
            Policy::Eventual => ReadPolicy::Eventual,
        }
    }
}

pub use dengine_client::duration::parse_duration;

/// A short random id for this process: keys written by a restarted container never collide
/// with its previous incarnation's.
pub fn boot_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed = (nanos ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    format!("{:08x}", mixed >> 32)
}

/// A channel to the node that connects on first use and reconnects after its restarts, each
/// request bounded by `timeout`.
fn channel(endpoint: &str, timeout: Duration) -> anyhow::Result<Channel> {
    let address = EndpointAddr::parse(endpoint)
        .map_err(|reason| anyhow::anyhow!("bad endpoint {endpoint}: {reason}"))?;
    Ok(Dial::new(timeout).connect_lazy(&address)?)
}

fn status_text(status: &tonic::Status) -> String {
    // One line, whatever the server wrote.
    format!(
        "{:?}: {}",
        status.code(),
        status.message().replace('\n', " ")
    )
}

/// What a write loop did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteSummary {
    pub acked: u64,
    pub errors: u64,
    pub reads_ok: u64,
    pub read_failures: u64,
}

/// Writes until `stop` completes or `--count` writes were acknowledged, printing every line to
/// `out`.
pub async fn write_loop(
    args: &WriteArgs,
    out: &mut impl Write,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<WriteSummary> {
    let boot = boot_id();
    let endpoint = args.endpoint.clone();
    let mut kv = KvClient::new(channel(&endpoint, args.request_timeout)?);
    writeln!(
        out,
        "START pod={} boot={boot} endpoint=http://{endpoint}",
        args.pod
    )?;
    out.flush()?;
    let mut summary = WriteSummary::default();
    let mut seq = 0u64;
    let mut errors_in_a_row = 0u64;
    let mut last_acked: Option<(String, String)> = None;
    tokio::pin!(stop);
    loop {
        if args.count.is_some_and(|count| summary.acked >= count) {
            break;
        }
        seq += 1;
        let key = key_for(&args.prefix, &args.pod, &boot, seq);
        let value = value_for(&boot, seq);
        let put = kv.put(PutRequest {
            key: key.clone().into_bytes().into(),
            value: value.clone().into_bytes().into(),
            ttl_ms: 0,
            prev_kv: false,
        });
        let answer = tokio::select! {
            answer = put => answer,
            () = &mut stop => break,
        };
        match answer {
            Ok(response) => {
                errors_in_a_row = 0;
                summary.acked += 1;
                let revision = response.into_inner().header.map(|h| h.revision);
                let ack = Ack {
                    key: key.clone(),
                    value: value.clone(),
                    revision,
                };
                writeln!(out, "{ack}")?;
                last_acked = Some((key, value));
            }
            Err(status) => {
                summary.errors += 1;
                errors_in_a_row += 1;
                // The first of a streak, then one in twenty: a joining node fails for a while.
                if errors_in_a_row == 1 || errors_in_a_row.is_multiple_of(20) {
                    writeln!(
                        out,
                        "ERR put {key} {} (failure {errors_in_a_row} in a row)",
                        status_text(&status)
                    )?;
                }
            }
        }
        if args.read_every > 0 && summary.acked > 0 && summary.acked.is_multiple_of(args.read_every)
        {
            if let Some((key, value)) = last_acked.take() {
                let get = kv.get(GetRequest {
                    key: key.clone().into_bytes().into(),
                    read_policy: ReadPolicy::Linearizable.into(),
                    ..Default::default()
                });
                let answer = tokio::select! {
                    answer = get => answer,
                    () = &mut stop => break,
                };
                match answer {
                    Ok(response) => match response.into_inner().kv {
                        Some(found) if found.value == value.as_bytes() => {
                            summary.reads_ok += 1;
                            writeln!(out, "READ {key} ok")?;
                        }
                        Some(found) => {
                            summary.read_failures += 1;
                            let got = String::from_utf8_lossy(&found.value).replace(' ', "_");
                            writeln!(out, "READ {key} mismatch {got}")?;
                        }
                        None => {
                            summary.read_failures += 1;
                            writeln!(out, "READ {key} missing")?;
                        }
                    },
                    Err(status) => {
                        summary.errors += 1;
                        writeln!(out, "ERR get {key} {}", status_text(&status))?;
                    }
                }
            }
        }
        out.flush()?;
        tokio::select! {
            () = tokio::time::sleep(args.interval) => {}
            () = &mut stop => break,
        }
    }
    writeln!(
        out,
        "STOP acked={} errors={} reads_ok={} read_failures={}",
        summary.acked, summary.errors, summary.reads_ok, summary.read_failures
    )?;
    out.flush()?;
    Ok(summary)
}

/// Reads each key once.
pub async fn read_keys(args: &ReadArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut kv = KvClient::new(channel(&args.endpoint, Duration::from_secs(10))?);
    for key in &args.keys {
        let response = kv
            .get(GetRequest {
                key: key.clone().into_bytes().into(),
                read_policy: args.policy.proto().into(),
                ..Default::default()
            })
            .await
            .map_err(|status| anyhow::anyhow!("get {key}: {}", status_text(&status)))?;
        match response.into_inner().kv {
            Some(found) => writeln!(out, "GOT {key} {}", String::from_utf8_lossy(&found.value))?,
            None => writeln!(out, "ABSENT {key}")?,
        }
    }
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The application's `main`.
pub async fn main(cli: AppCli) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    match cli.command {
        AppCommand::Write(args) => {
            let summary = write_loop(&args, &mut out, shutdown_signal()).await?;
            if summary.read_failures > 0 {
                anyhow::bail!(
                    "{} read-backs did not find what was acknowledged",
                    summary.read_failures
                );
            }
            Ok(())
        }
        AppCommand::Read(args) => read_keys(&args, &mut out).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_ids_are_eight_hex_digits() {
        let id = boot_id();
        assert_eq!(id.len(), 8);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    }

    #[test]
    fn the_command_line_takes_the_pod_name_from_the_environment_flag() {
        let cli = AppCli::try_parse_from([
            "dengine-e2e-app",
            "write",
            "--pod",
            "e2e-1",
            "--interval",
            "50ms",
            "--count",
            "3",
        ])
        .expect("parses");
        let AppCommand::Write(args) = cli.command else {
            panic!("write");
        };
        assert_eq!(args.pod, "e2e-1");
        assert_eq!(args.interval, Duration::from_millis(50));
        assert_eq!(args.count, Some(3));
        assert_eq!(args.endpoint, "127.0.0.1:2379");
        assert!(
            AppCli::try_parse_from(["dengine-e2e-app", "read"]).is_err(),
            "read needs keys"
        );
    }

    #[tokio::test]
    async fn without_a_node_every_write_fails_and_nothing_is_acknowledged() {
        // A port nothing listens on: the loop reports errors and acknowledges nothing.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("an address").port()
        };
        let args = WriteArgs {
            endpoint: format!("127.0.0.1:{port}"),
            prefix: "e2e/".into(),
            pod: "p".into(),
            interval: Duration::from_millis(1),
            read_every: 1,
            count: None,
            request_timeout: Duration::from_millis(500),
        };
        let mut out = Vec::new();
        let summary = write_loop(
            &args,
            &mut out,
            tokio::time::sleep(Duration::from_millis(300)),
        )
        .await
        .expect("the loop ends cleanly");
        let text = String::from_utf8(out).expect("text");
        assert_eq!(summary.acked, 0);
        assert!(summary.errors >= 1, "{text}");
        assert!(text.starts_with("START pod=p boot="), "{text}");
        assert!(text.contains("\nERR put e2e/p/"), "{text}");
        assert!(!text.contains("ACK "), "{text}");
        assert!(text.trim_end().ends_with("read_failures=0"), "{text}");
    }
}
