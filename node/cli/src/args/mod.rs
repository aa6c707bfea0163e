//! The command line, declared with clap's derive API. Every flag and subcommand carries the
//! help line `--help` prints.

use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};

use crate::proto::ReadPolicy;
use dengine_client::duration::{parse_timeout, parse_ttl};
use dengine_client::EndpointAddr;

const ABOUT: &str = "Command-line client for a d-engine cluster, in the style of etcdctl";

const AFTER_HELP: &str = "\
Keys and values are taken from the command line as UTF-8 text. When printed (as text or in
JSON), a key or value that is valid UTF-8 is printed as is; any other is printed as 0x followed
by lowercase hex digits, e.g. 0xff00.

Exit status: 0 on success, 1 on an error (printed as one line `Error: <reason>` on stderr,
`Error: <CODE>: <message>` for an error from the server), 2 when a `cas` comparison failed.";

/// `dengine [GLOBAL FLAGS] <COMMAND>`.
#[derive(Debug, Parser)]
#[command(name = "dengine", version, about = ABOUT, after_help = AFTER_HELP)]
pub struct Cli {
    /// Flags that apply to every command; accepted before or after the command name.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Flags shared by every command.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Comma-separated endpoints (host:port, http:// optional, port 2379 if omitted), tried in
    /// order; the first that connects is used
    #[arg(
        long,
        global = true,
        env = "DENGINE_ENDPOINTS",
        value_delimiter = ',',
        default_value = "127.0.0.1:2379",
        value_parser = EndpointAddr::parse,
        value_name = "ENDPOINTS"
    )]
    pub endpoints: Vec<EndpointAddr>,

    /// Output format
    #[arg(
        long,
        short = 'o',
        global = true,
        env = "DENGINE_OUTPUT",
        value_enum,
        default_value_t = OutputFormat::Table
    )]
    pub output: OutputFormat,

    /// Time to wait for a connection and for each request, e.g. 5s, 500ms, 1m
    #[arg(long, global = true, default_value = "5s", value_parser = parse_timeout, value_name = "DURATION")]
    pub timeout: Duration,

    /// How fresh a read (get, scan) must be; the server's default when omitted
    #[arg(long, global = true, value_enum)]
    pub consistency: Option<Consistency>,

    /// File holding the admin token, for member add/promote/remove, move-leader and snapshot
    /// save (a node's loopback listener does not ask for it)
    #[arg(
        long,
        global = true,
        env = "DENGINE_ADMIN_TOKEN_FILE",
        value_name = "FILE"
    )]
    pub admin_token_file: Option<std::path::PathBuf>,

    /// Connect over TLS, trusting the CA in this file (PEM); `https://` endpoints need it
    #[arg(long, global = true, env = "DENGINE_CACERT", value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,

    /// Client certificate (PEM) to present over TLS: needed on a peer listener, which asks
    /// for one (member and leader commands reach the leader there)
    // Own ids: `key` and `cert` are also the names of commands' positional arguments.
    #[arg(
        long = "cert",
        id = "tls_cert",
        global = true,
        env = "DENGINE_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub cert: Option<std::path::PathBuf>,

    /// The private key of --cert (PEM)
    #[arg(
        long = "key",
        id = "tls_key",
        global = true,
        env = "DENGINE_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub key: Option<std::path::PathBuf>,
}

impl GlobalArgs {
    /// How to dial a node: the timeout, the admin token of `--admin-token-file`, and TLS when
    /// `--cacert` is given (reading the files named by `--cacert` and `--cert`/`--key`).
    pub fn dial(&self) -> Result<dengine_client::Dial, crate::error::CliError> {
        use crate::error::invalid;
        let read = |flag: &str, path: &std::path::Path| {
            std::fs::read(path)
                .map_err(|e| invalid(format!("cannot read {flag} {}: {e}", path.display())))
        };
        let token = match &self.admin_token_file {
            None => None,
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        invalid(format!(
                            "cannot read the admin token file {}: {e}",
                            path.display()
                        ))
                    })?
                    .trim()
                    .to_string(),
            ),
        };
        let dial = dengine_client::Dial::new(self.timeout).with_token(token.as_deref())?;
        let identity = self.cert.as_deref().zip(self.key.as_deref());
        match &self.cacert {
            None if identity.is_some() => Err(invalid(
                "--cert and --key need --cacert: the CA that signed the server's certificate",
            )),
            None => Ok(dial),
            Some(ca) => {
                let identity = match identity {
                    Some((cert, key)) => Some((read("--cert", cert)?, read("--key", key)?)),
                    None => None,
                };
                Ok(dial.with_tls(read("--cacert", ca)?, identity))
            }
        }
    }

    /// The read policy sent with reads: unspecified lets the server apply its default.
    pub fn read_policy(&self) -> ReadPolicy {
        match self.consistency {
            None => ReadPolicy::Unspecified,
            Some(Consistency::Linearizable) => ReadPolicy::Linearizable,
            Some(Consistency::Lease) => ReadPolicy::Lease,
            Some(Consistency::Eventual) => ReadPolicy::Eventual,
        }
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Plain text like etcdctl: key and value lines, aligned columns for tables
    Table,
    /// One compact JSON object per result (one per line for `watch`)
    Json,
}

/// `--consistency`: the read policies of the KV API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Sees every write acknowledged before the read started (one quorum round)
    Linearizable,
    /// Served by the leader under its lease; assumes bounded clock drift
    Lease,
    /// Served by the node reached, possibly stale; cheapest
    Eventual,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a key; prints OK and the revision of the write
    Put(PutArgs),
    /// Read a key; prints the key and value lines, or nothing (exit status 0) when absent
    Get(GetArgs),
    /// Delete a key; prints the number of keys deleted, 1 or 0
    #[command(visible_alias = "delete")]
    Del(DelArgs),
    /// Compare-and-swap: write a key only if its current state matches; exit status 2 when the
    /// comparison fails
    Cas(CasArgs),
    /// List keys under a prefix, in key order
    Scan(ScanArgs),
    /// Stream changes to a key or prefix until interrupted (Ctrl-C)
    Watch(WatchArgs),
    /// Cluster membership
    #[command(subcommand)]
    Member(MemberCommand),
    /// The endpoints themselves
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Hand leadership to another voter (the most up-to-date one when no ID is given)
    MoveLeader(MoveLeaderArgs),
    /// Backups: save one from a node, inspect one, restore one into a new data directory
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

/// `snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Stream a consistent snapshot of the endpoint's state into FILE (ask the leader for the
    /// freshest)
    Save {
        /// Where to write the backup
        file: std::path::PathBuf,
    },
    /// Print what a backup file holds, after checking it is complete and undamaged
    Status {
        /// The backup file
        file: std::path::PathBuf,
    },
    /// Stream a backup from the endpoint into a file of its own in DIR, named
    /// `<namespace>.<cluster>-<UTC time>.dengine-backup`, and delete the cluster's oldest there
    /// beyond --keep: scheduled backups into a volume (the operator's backup Jobs run this)
    SaveInto(SaveIntoArgs),
    /// Copy a backup from S3 or an S3-compatible store (s3://BUCKET/KEY), or from a file, into
    /// FILE; it takes that name only once checked complete and undamaged. S3 credentials:
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or the environment's
    /// role
    Fetch(FetchArgs),
}

/// `snapshot save-into DIR --cluster NAMESPACE/CLUSTER`.
#[derive(Debug, Args)]
pub struct SaveIntoArgs {
    /// The directory backups are kept in, which must exist (a mounted volume)
    pub dir: std::path::PathBuf,
    /// The cluster the backups are of, as NAMESPACE/CLUSTER: file names start with
    /// `<namespace>.<cluster>-`, and only such files are counted for --keep
    #[arg(long, value_name = "NAMESPACE/CLUSTER", value_parser = parse_cluster)]
    pub cluster: (String, String),
    /// A subdirectory of DIR to keep them in (made if missing), e.g. shop/orders/
    #[arg(long, default_value = "", value_parser = parse_prefix)]
    pub prefix: String,
    /// After the backup is written, delete the cluster's oldest backups beyond this many
    /// (the new one counts); none are deleted when omitted
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,
    /// Also write the result (or the failure), as one JSON object, to this file (the
    /// operator reads it from /dev/termination-log)
    #[arg(long)]
    pub report_to: Option<std::path::PathBuf>,
}

fn parse_cluster(text: &str) -> Result<(String, String), String> {
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
    };
    match text.split_once('/') {
        Some((namespace, cluster)) if valid(namespace) && valid(cluster) => {
            Ok((namespace.to_string(), cluster.to_string()))
        }
        _ => Err(
            "expected NAMESPACE/CLUSTER, both Kubernetes names (lower-case letters, digits, - and .)"
                .to_string(),
        ),
    }
}

fn parse_prefix(text: &str) -> Result<String, String> {
    let segments: Vec<&str> = text.trim_end_matches('/').split('/').collect();
    let fine = text.is_empty()
        || segments.iter().all(|segment| {
            !segment.is_empty()
                && *segment != "."
                && *segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        });
    match fine {
        true => Ok(text.to_string()),
        false => Err(
            "a prefix is path segments of letters, digits, ., _ and - (not . or ..) separated by single slashes"
                .to_string(),
        ),
    }
}

/// `snapshot fetch LOCATION FILE`.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Where the backup is: s3://BUCKET/KEY (as the operator's status.backup reports it), or
    /// a file's path
    pub location: String,
    /// Where to write it
    pub file: std::path::PathBuf,
    /// The store's URL, for a store other than AWS S3 (e.g. http://minio:9000)
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint: Option<String>,
    /// The bucket's region
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Address the bucket as BUCKET.HOST instead of HOST/BUCKET
    #[arg(long)]
    pub virtual_hosted_style: bool,
    /// This member joins a founded cluster, so there is nothing to restore: fetch nothing and
    /// remove FILE if a founding left it (how the operator's restore init container runs)
    #[arg(long, env = "DENGINE_JOIN")]
    pub joining: bool,
    /// Also write the result, as one JSON object, to this file (the operator reads it from
    /// /dev/termination-log)
    #[arg(long)]
    pub report_to: Option<std::path::PathBuf>,
}

/// `move-leader [ID]`.
#[derive(Debug, Args)]
pub struct MoveLeaderArgs {
    /// The voter to lead next
    #[arg(value_parser = clap::value_parser!(u64).range(1..))]
    pub id: Option<u64>,
}

/// `put KEY VALUE`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key
    pub key: String,
    /// The value
    pub value: String,
    /// Delete the key this long after the write, e.g. 30s, 10m; no expiry when omitted
    #[arg(long, value_parser = parse_ttl, value_name = "DURATION")]
    pub ttl: Option<Duration>,
    /// Also print the key's previous value, if any
    #[arg(long)]
    pub prev_kv: bool,
}

/// `get KEY`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key
    pub key: String,
}

/// `del KEY`.
#[derive(Debug, Args)]
pub struct DelArgs {
    /// The key
    pub key: String,
    /// Also print the deleted key and value
    #[arg(long)]
    pub prev_kv: bool,
}

/// `cas KEY NEW_VALUE` with exactly one expectation.
#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("expectation").required(true).multiple(false)
        .args(["expect_value", "expect_mod_revision", "expect_absent"])),
    after_help = "Prints OK and the revision of the write (exit status 0), or FAILED followed by \
                  the key's current value (exit status 2)."
)]
pub struct CasArgs {
    /// The key
    pub key: String,
    /// The value to write when the comparison holds
    pub new_value: String,
    /// Swap only if the current value equals this
    #[arg(long, value_name = "VALUE")]
    pub expect_value: Option<String>,
    /// Swap only if the key's last write had this revision
    #[arg(long, value_name = "REVISION", value_parser = clap::value_parser!(i64).range(1..))]
    pub expect_mod_revision: Option<i64>,
    /// Swap only if the key does not exist
    #[arg(long)]
    pub expect_absent: bool,
    /// Delete the key this long after the write, e.g. 30s, 10m; no expiry when omitted
    #[arg(long, value_parser = parse_ttl, value_name = "DURATION")]
    pub ttl: Option<Duration>,
}

/// The condition `cas` checks, one of the three flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expectation {
    /// `--expect-value`.
    Value(String),
    /// `--expect-mod-revision`.
    ModRevision(i64),
    /// `--expect-absent`.
    Absent,
}

impl CasArgs {
    /// The expectation the user gave; clap's required, exclusive group guarantees exactly one.
    pub fn expectation(&self) -> Expectation {
        if let Some(value) = &self.expect_value {
            Expectation::Value(value.clone())
        } else if let Some(revision) = self.expect_mod_revision {
            Expectation::ModRevision(revision)
        } else {
            Expectation::Absent
        }
    }
}

/// `scan PREFIX`.
#[derive(Debug, Args)]
#[command(
    after_help = "Without --limit every page is fetched. With --limit N alone, at most N \
                        keys are printed; with --limit N --all, N is the page size and every \
                        page is fetched."
)]
pub struct ScanArgs {
    /// Only keys starting with this; "" for every key
    pub prefix: String,
    /// Keys per page; alone, also the most keys printed (see below)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Print only the keys
    #[arg(long)]
    pub keys_only: bool,
    /// Fetch every page, following the continuation token (the default without --limit)
    #[arg(long)]
    pub all: bool,
}

impl ScanArgs {
    /// Whether to follow continuation tokens past the first page.
    pub fn fetch_all_pages(&self) -> bool {
        self.all || self.limit.is_none()
    }
}

/// `watch KEY`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The key, or with --prefix the prefix
    pub key: String,
    /// Watch every key starting with KEY
    #[arg(long)]
    pub prefix: bool,
    /// Replay events from this revision on (inclusive) before streaming new ones; fails with
    /// OUT_OF_RANGE if that history is no longer retained
    #[arg(long, value_name = "REVISION", value_parser = clap::value_parser!(i64).range(1..))]
    pub rev: Option<i64>,
}

/// `member ...`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List the members: ID, ROLE (voter/learner), PEER ADDRESS, IS LEADER
    List,
    /// Add a node (started with --join) as a learner: it receives the log but does not vote
    Add {
        /// The new node's id (never reused)
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        /// Where peers reach it, host:port
        peer_address: String,
    },
    /// Make a caught-up learner a voter
    Promote {
        /// The learner's id
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        /// Entries it may lag behind the commit index; the server's default when omitted
        #[arg(long)]
        max_lag: Option<u64>,
    },
    /// Remove a member; refused if the healthy voters left would be fewer than a quorum
    Remove {
        /// The member's id
        #[arg(value_parser = clap::value_parser!(u64).range(1..))]
        id: u64,
        /// Remove even if it leaves fewer healthy voters than a quorum
        #[arg(long)]
        force: bool,
    },
}

/// `endpoint ...`.
#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Ask every endpoint for its status; exit status 1 if any endpoint failed
    Status,
}

#[cfg(test)]
mod tests;
