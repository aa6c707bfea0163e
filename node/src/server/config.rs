//! The node's configuration: one typed struct, read once at start from a TOML file, then
//! environment variables, then flags (each overriding the one before).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use serde::{Deserialize, Serialize};

use crate::raft::NodeId;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The read policy used when a request does not name one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DefaultReadPolicy {
    Linearizable,
    Lease,
    Eventual,
}

/// Every setting of a node, with its default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's id, unique in the cluster and never reused. 0 means: take it from the
    /// StatefulSet ordinal in `POD_NAME` (ordinal + 1), else 1.
    pub id: NodeId,
    /// Where the node keeps its data. Default: `./dengine-data/node-<id>`.
    pub data_dir: Option<PathBuf>,
    /// The client API address. Loopback by default: the application beside the node talks to
    /// it; binding elsewhere exposes the data to the network and logs a warning.
    pub client_listen: SocketAddr,
    /// Where peers reach this node's Raft and admin API.
    pub peer_listen: SocketAddr,
    /// Probes (`/livez`, `/readyz`, `/startupz`) and Prometheus `/metrics`, over HTTP.
    pub metrics_listen: SocketAddr,
    /// The address peers should use for this node (a DNS name in Kubernetes). Default: the
    /// peer listen address.
    pub advertise_peer: Option<String>,
    /// The founding members, `id=host:port` separated by commas. Default: this node alone.
    /// Every founding member must be given the same list.
    pub initial_cluster: Option<String>,
    /// Start without bootstrapping: wait until a leader adds this node as a learner.
    pub join: bool,
    /// Found the new cluster from this backup (`dengine snapshot save`) instead of an empty
    /// state. Only used on an empty data directory; every founding member gets the same file.
    pub restore_from: Option<PathBuf>,
    /// A name that makes the cluster id of a new cluster unique; founding members must agree.
    pub cluster_token: String,
    /// Length of one Raft tick in milliseconds.
    pub tick_ms: u64,
    /// Ticks without a leader before a follower starts an election (randomized up to twice).
    pub election_ticks: u64,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: u64,
    /// Compact the log every this many applied entries (the state machine, stored beside the
    /// log, covers what is dropped; nothing is copied).
    pub snapshot_every: u64,
    /// Log entries kept behind the compaction point, so slightly slow followers catch up
    /// without a snapshot.
    pub snapshot_keep_entries: u64,
    /// Revisions of watch history kept; a watch from an older revision fails.
    pub history_retention: u64,
    /// Watch history kept in time, in milliseconds: the leader compacts to the revision of
    /// this long ago, as etcd's `--auto-compaction-mode=periodic`; 0 for no such compaction
    /// (then `history_retention` alone bounds the history, as it always does).
    pub history_retention_ms: u64,
    /// Largest key, in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Largest client request, in bytes.
    pub max_request_bytes: usize,
    /// Largest page a scan returns.
    pub max_scan_limit: u32,
    /// Most operations in one etcd Txn branch (etcd's `--max-txn-ops`).
    pub max_txn_ops: usize,
    /// How often an etcd watcher that asked for progress notifications gets one when it had
    /// no events (etcd's `--experimental-watch-progress-notify-interval`), in milliseconds.
    pub watch_progress_notify_ms: u64,
    /// The read policy for requests that do not name one.
    pub default_read_policy: DefaultReadPolicy,
    /// A lease read is served only if a quorum answered within this many ticks; keep it below
    /// `election_ticks` by a margin for clock drift between nodes.
    pub lease_ticks: u64,
    /// A file holding the admin token (a mounted Kubernetes Secret). Membership changes need
    /// it as `authorization: Bearer <token>`; without it they are accepted on a loopback
    /// client listener only.
    pub admin_token_file: Option<PathBuf>,
    /// How many entries behind the commit index a learner may be and still be promoted.
    pub promote_max_lag: u64,
    /// This node's certificate (PEM, with its chain). With `tls_key_file` and `tls_ca_file`
    /// it turns on mutual TLS between peers: the peer listener (Raft and admin API) accepts
    /// only clients whose certificate the CA signed, and this node presents its certificate
    /// when it connects to peers. Peer addresses must be names (or IPs) in the certificates.
    pub tls_cert_file: Option<PathBuf>,
    /// The private key of `tls_cert_file` (PEM).
    pub tls_key_file: Option<PathBuf>,
    /// The CA certificate(s) that signed every member's certificate (PEM).
    pub tls_ca_file: Option<PathBuf>,
    /// Serve the client listener over TLS too, with the same certificate (clients are not
    /// asked for one). Off by default: in a pod the client listener is on loopback.
    pub client_tls: bool,
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `dengine=debug`.
    pub log_level: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            id: 0,
            data_dir: None,
            client_listen: "127.0.0.1:2379".parse().expect("valid literal"),
            peer_listen: "127.0.0.1:2380".parse().expect("valid literal"),
            metrics_listen: "127.0.0.1:2381".parse().expect("valid literal"),
            advertise_peer: None,
            initial_cluster: None,
            join: false,
            restore_from: None,
            cluster_token: "dengine".to_string(),
            tick_ms: 100,
            election_ticks: 10,
            heartbeat_ticks: 1,
            snapshot_every: 10_000,
            snapshot_keep_entries: 1_000,
            history_retention: 10_000,
            history_retention_ms: 0,
            max_key_bytes: 4 * 1024,
            max_value_bytes: 1024 * 1024,
            max_request_bytes: 1536 * 1024,
            max_scan_limit: 10_000,
            max_txn_ops: 128,
            watch_progress_notify_ms: 600_000,
            default_read_policy: DefaultReadPolicy::Linearizable,
            lease_ticks: 8,
            admin_token_file: None,
            promote_max_lag: 1_000,
            tls_cert_file: None,
            tls_key_file: None,
            tls_ca_file: None,
            client_tls: false,
            log_format: LogFormat::Text,
            log_level: "info".to_string(),
        }
    }
}

/// Command-line flags; every one can also be set by the environment variable it names.
///
/// Every setting of [`NodeConfig`] has a flag of the same name (a test holds them to that),
/// and flags are layered onto the file's settings by name, through serde: what is given here
/// overrides the file, and nothing maps one to the other by hand.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct NodeFlags {
    /// A TOML file with any of the settings below (snake_case names).
    #[arg(long, env = "DENGINE_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// This node's id (0: from the StatefulSet ordinal in POD_NAME, else 1).
    #[arg(long, env = "DENGINE_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<NodeId>,
    /// Data directory [default: ./dengine-data/node-ID, ID being this node's id].
    #[arg(long, env = "DENGINE_DATA_DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Client API address [default: 127.0.0.1:2379].
    #[arg(long, env = "DENGINE_CLIENT_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_listen: Option<SocketAddr>,
    /// Peer (Raft and admin) address [default: 127.0.0.1:2380].
    #[arg(long, env = "DENGINE_PEER_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_listen: Option<SocketAddr>,
    /// Probes and metrics over HTTP [default: 127.0.0.1:2381].
    #[arg(long, env = "DENGINE_METRICS_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<SocketAddr>,
    /// The address peers use for this node [default: the peer listen address].
    #[arg(long, env = "DENGINE_ADVERTISE_PEER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_peer: Option<String>,
    /// Founding members, `id=host:port,...` [default: this node alone].
    #[arg(long, env = "DENGINE_INITIAL_CLUSTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_cluster: Option<String>,
    /// Join an existing cluster instead of founding one.
    #[arg(long, env = "DENGINE_JOIN")]
    #[serde(skip_serializing_if = "is_false")]
    pub join: bool,
    /// Found the new cluster from a backup file (only on an empty data directory). An empty
    /// value means none, so that a ConfigMap can turn it off once the cluster is founded.
    #[arg(long, env = "DENGINE_RESTORE_FROM", value_parser = path_or_empty)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<PathBuf>,
    /// Makes a new cluster's id unique [default: dengine].
    #[arg(long, env = "DENGINE_CLUSTER_TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster_token: Option<String>,
    /// Raft tick in milliseconds [default: 100].
    #[arg(long, env = "DENGINE_TICK_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tick_ms: Option<u64>,
    /// Election timeout in ticks [default: 10].
    #[arg(long, env = "DENGINE_ELECTION_TICKS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub election_ticks: Option<u64>,
    /// Heartbeat interval in ticks [default: 1].
    #[arg(long, env = "DENGINE_HEARTBEAT_TICKS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_ticks: Option<u64>,
    /// Compact the log every N applied entries [default: 10000].
    #[arg(long, env = "DENGINE_SNAPSHOT_EVERY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_every: Option<u64>,
    /// Watch history kept, in revisions [default: 10000].
    #[arg(long, env = "DENGINE_HISTORY_RETENTION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_retention: Option<u64>,
    /// Watch history kept in time, in ms: the leader compacts to the revision of this long
    /// ago, as etcd's --auto-compaction-mode=periodic; 0 for none [default: 0].
    #[arg(long, env = "DENGINE_HISTORY_RETENTION_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_retention_ms: Option<u64>,
    /// Largest key in bytes [default: 4096].
    #[arg(long, env = "DENGINE_MAX_KEY_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_key_bytes: Option<usize>,
    /// Largest value in bytes [default: 1048576].
    #[arg(long, env = "DENGINE_MAX_VALUE_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_value_bytes: Option<usize>,
    /// Largest request in bytes [default: 1572864].
    #[arg(long, env = "DENGINE_MAX_REQUEST_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_request_bytes: Option<usize>,
    /// Read policy when a request names none [default: linearizable].
    #[arg(long, env = "DENGINE_DEFAULT_READ_POLICY", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_read_policy: Option<DefaultReadPolicy>,
    /// Log entries kept behind the compaction point [default: 1000].
    #[arg(long, env = "DENGINE_SNAPSHOT_KEEP_ENTRIES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot_keep_entries: Option<u64>,
    /// Largest page a scan returns [default: 10000].
    #[arg(long, env = "DENGINE_MAX_SCAN_LIMIT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_scan_limit: Option<u32>,
    /// Most operations in one etcd Txn branch, as etcd's --max-txn-ops [default: 128].
    #[arg(long, env = "DENGINE_MAX_TXN_OPS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_txn_ops: Option<usize>,
    /// How often an etcd watcher asking for progress notifications gets one when it had no
    /// events, in ms, as etcd's --experimental-watch-progress-notify-interval [default: 600000].
    #[arg(long, env = "DENGINE_WATCH_PROGRESS_NOTIFY_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch_progress_notify_ms: Option<u64>,
    /// Lease reads need a quorum heard within this many ticks; below election ticks
    /// [default: 8].
    #[arg(long, env = "DENGINE_LEASE_TICKS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_ticks: Option<u64>,
    /// Entries behind the commit index a learner may be and still be promoted [default: 1000].
    #[arg(long, env = "DENGINE_PROMOTE_MAX_LAG")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promote_max_lag: Option<u64>,
    /// File with the admin token for membership changes.
    #[arg(long, env = "DENGINE_ADMIN_TOKEN_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token_file: Option<PathBuf>,

    /// This node's TLS certificate (PEM); with --tls-key-file and --tls-ca-file, mutual TLS
    /// between peers
    #[arg(long, env = "DENGINE_TLS_CERT_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,

    /// The private key of --tls-cert-file (PEM)
    #[arg(long, env = "DENGINE_TLS_KEY_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,

    /// The CA that signed every member's certificate (PEM)
    #[arg(long, env = "DENGINE_TLS_CA_FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,

    /// Serve the client listener over TLS too
    #[arg(long, env = "DENGINE_CLIENT_TLS")]
    #[serde(skip_serializing_if = "is_false")]
    pub client_tls: bool,
    /// Log format [default: text].
    #[arg(long, env = "DENGINE_LOG_FORMAT", value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. info or dengine=debug [default: info].
    #[arg(long, env = "DENGINE_LOG_LEVEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
}

/// A configuration that cannot be used, with what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid setting {setting}: {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

/// A path, or the empty string (which the settings then read as none).
fn path_or_empty(value: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(value))
}

fn is_false(value: &bool) -> bool {
    !value
}

fn invalid(setting: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        message: message.into(),
    }
}

impl NodeConfig {
    /// Reads the TOML file (if any), lays the flags and environment variables given over it,
    /// fills derived defaults and validates the result.
    pub fn load(flags: &NodeFlags) -> Result<Self, ConfigError> {
        let (mut settings, origin) = match &flags.config {
            Some(path) => {
                let file = Self::read_table(path)?;
                // The file must hold up by itself: a setting of the wrong type is refused
                // even when a flag overrides it, not left for the next start to trip on.
                Self::from_table(file.clone(), path)?;
                (file, path.clone())
            }
            None => (toml::Table::new(), PathBuf::from("(no config file)")),
        };
        let given = toml::Table::try_from(flags).map_err(|e| ConfigError::Parse {
            path: PathBuf::from("(flags)"),
            message: e.to_string(),
        })?;
        settings.extend(given);
        let mut config = Self::from_table(settings, &origin)?;
        config.restore_from = config
            .restore_from
            .take()
            .filter(|path| !path.as_os_str().is_empty());
        config.resolve_id(std::env::var("POD_NAME").ok().as_deref());
        config.validate()?;
        Ok(config)
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        Self::from_table(Self::read_table(path)?, path)
    }

    fn read_table(path: &Path) -> Result<toml::Table, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        text.parse::<toml::Table>().map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// The settings of `table`, the defaults for the rest; unknown names are refused.
    fn from_table(table: toml::Table, origin: &Path) -> Result<Self, ConfigError> {
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Parse {
                path: origin.to_path_buf(),
                message: e.to_string(),
            })
    }

    /// Id 0 means "derive it": from a StatefulSet pod name `<name>-<ordinal>` it is the
    /// ordinal plus one (ids are never 0), otherwise 1.
    pub fn resolve_id(&mut self, pod_name: Option<&str>) {
        if self.id != 0 {
            return;
        }
        let ordinal = pod_name
            .and_then(|name| name.rsplit_once('-'))
            .and_then(|(_, ordinal)| ordinal.parse::<u64>().ok());
        self.id = ordinal.map_or(1, |o| o + 1);
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(invalid("id", "must be at least 1"));
        }
        let tls_files = [&self.tls_cert_file, &self.tls_key_file, &self.tls_ca_file];
        let given = tls_files.iter().filter(|f| f.is_some()).count();
        if given != 0 && given != 3 {
            return Err(invalid(
                "tls_cert_file",
                "tls_cert_file, tls_key_file and tls_ca_file go together: give all three or none",
            ));
        }
        if self.client_tls && given == 0 {
            return Err(invalid(
                "client_tls",
                "needs tls_cert_file, tls_key_file and tls_ca_file",
            ));
        }
        if self.tick_ms == 0 {
            return Err(invalid("tick_ms", "must be at least 1"));
        }
        if self.max_txn_ops == 0 {
            return Err(invalid("max_txn_ops", "must be at least 1"));
        }
        if self.watch_progress_notify_ms == 0 {
            return Err(invalid("watch_progress_notify_ms", "must be at least 1"));
        }
        if self.heartbeat_ticks == 0 || self.heartbeat_ticks >= self.election_ticks {
            return Err(invalid(
                "heartbeat_ticks",
                format!(
                    "must be at least 1 and below election_ticks ({}), got {}",
                    self.election_ticks, self.heartbeat_ticks
                ),
            ));
        }
        if self.lease_ticks >= self.election_ticks {
            return Err(invalid(
                "lease_ticks",
                "must be below election_ticks, leaving a margin for clock drift",
            ));
        }
        if self.max_key_bytes == 0 || self.max_value_bytes == 0 {
            return Err(invalid("max_key_bytes", "limits must be above 0"));
        }
        if self.max_request_bytes < self.max_key_bytes {
            return Err(invalid(
                "max_request_bytes",
                "must be at least max_key_bytes",
            ));
        }
        if self.snapshot_every == 0 {
            return Err(invalid("snapshot_every", "must be at least 1"));
        }
        if self.history_retention == 0 {
            return Err(invalid("history_retention", "must be at least 1"));
        }
        if self.join && self.restore_from.is_some() {
            return Err(invalid(
                "restore_from",
                "founds a new cluster, so it cannot be combined with join",
            ));
        }
        let members = self.founding_members()?;
        if !self.join && !members.contains_key(&self.id) {
            return Err(invalid(
                "initial_cluster",
                format!("does not list this node's id {}", self.id),
            ));
        }
        Ok(())
    }

    /// Reads the admin token, if one is configured.
    pub fn admin_token(&self) -> Result<Option<String>, ConfigError> {
        let Some(path) = &self.admin_token_file else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let token = token.trim().to_string();
        if token.is_empty() {
            return Err(invalid(
                "admin_token_file",
                format!("{} is empty", path.display()),
            ));
        }
        Ok(Some(token))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("dengine-data/node-{}", self.id)))
    }

    pub fn advertise_peer(&self) -> String {
        self.advertise_peer
            .clone()
            .unwrap_or_else(|| self.peer_listen.to_string())
    }

    /// The founding members, by id.
    pub fn founding_members(&self) -> Result<BTreeMap<NodeId, String>, ConfigError> {
        let Some(list) = &self.initial_cluster else {
            return Ok(BTreeMap::from([(self.id, self.advertise_peer())]));
        };
        let mut members = BTreeMap::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, address) = item.split_once('=').ok_or_else(|| {
                invalid(
                    "initial_cluster",
                    format!("`{item}` is not of the form id=host:port"),
                )
            })?;
            let id: NodeId = id.trim().parse().map_err(|_| {
                invalid(
                    "initial_cluster",
                    format!("`{id}` in `{item}` is not a node id"),
                )
            })?;
            if id == 0 {
                return Err(invalid("initial_cluster", "node id 0 is reserved"));
            }
            if members.insert(id, address.trim().to_string()).is_some() {
                return Err(invalid(
                    "initial_cluster",
                    format!("node id {id} is listed twice"),
                ));
            }
        }
        if members.is_empty() {
            return Err(invalid("initial_cluster", "lists no members"));
        }
        Ok(members)
    }

    /// The id of a cluster founded by this configuration: the same on every founding member,
    /// different for a different token or member list.
    pub fn new_cluster_id(&self) -> Result<u64, ConfigError> {
        let members = self.founding_members()?;
        let mut text = self.cluster_token.clone();
        for (id, address) in &members {
            text.push_str(&format!("|{id}={address}"));
        }
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in text.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Ok(hash.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_valid_single_node_on_loopback() {
        let mut config = NodeConfig::default();
        config.resolve_id(None);
        config.validate().unwrap();
        assert_eq!(config.id, 1);
        assert!(config.client_listen.ip().is_loopback());
        assert_eq!(config.data_dir(), PathBuf::from("dengine-data/node-1"));
        assert_eq!(config.founding_members().unwrap().len(), 1);
    }

    #[test]
    fn id_comes_from_the_statefulset_ordinal() {
        let mut config = NodeConfig::default();
        config.resolve_id(Some("orders-dengine-2"));
        assert_eq!(config.id, 3);
    }

    #[test]
    fn toml_unknown_keys_and_bad_values_are_rejected_with_the_setting_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "id = 2\ntick_ms = 50\n").unwrap();
        let config = NodeConfig::from_file(&path).unwrap();
        assert_eq!((config.id, config.tick_ms), (2, 50));

        std::fs::write(&path, "idd = 2\n").unwrap();
        let err = NodeConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("idd"), "{err}");

        let mut config = NodeConfig {
            id: 1,
            heartbeat_ticks: 20,
            ..Default::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("heartbeat_ticks"), "{err}");
        config.heartbeat_ticks = 1;
        config.initial_cluster = Some("1=a:1,x=b:2".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.contains("initial_cluster") && err.contains("`x`"),
            "{err}"
        );
        config.initial_cluster = Some("2=a:1,3=b:2".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("does not list this node's id 1"), "{err}");
    }

    #[test]
    fn founding_members_agree_on_the_cluster_id() {
        let list = "1=a:2380,2=b:2380,3=c:2380".to_string();
        let a = NodeConfig {
            id: 1,
            initial_cluster: Some(list.clone()),
            ..Default::default()
        };
        let b = NodeConfig {
            id: 3,
            initial_cluster: Some(list),
            ..Default::default()
        };
        assert_eq!(a.new_cluster_id().unwrap(), b.new_cluster_id().unwrap());
        let c = NodeConfig {
            cluster_token: "other".into(),
            ..a.clone()
        };
        assert_ne!(a.new_cluster_id().unwrap(), c.new_cluster_id().unwrap());
    }

    /// The names of every setting, from serde's own list (what an unknown key is told).
    fn setting_names() -> Vec<String> {
        let error = toml::from_str::<NodeConfig>("no_such_setting = 1")
            .unwrap_err()
            .to_string();
        let expected = error
            .split_once("expected one of")
            .expect("serde lists the fields")
            .1;
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn every_setting_has_a_flag_and_an_environment_variable_of_its_name() {
        use clap::CommandFactory;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            flags: NodeFlags,
        }
        let command = Cli::command();
        let flags: BTreeMap<String, Option<String>> = command
            .get_arguments()
            .map(|a| {
                (
                    a.get_id().to_string(),
                    a.get_env().map(|e| e.to_string_lossy().into_owned()),
                )
            })
            .filter(|(id, _)| id != "config")
            .collect();
        let settings = setting_names();
        assert!(settings.len() > 20, "{settings:?}");
        for setting in &settings {
            let env = flags
                .get(setting)
                .unwrap_or_else(|| panic!("setting {setting} has no flag"));
            assert_eq!(
                env.as_deref(),
                Some(format!("DENGINE_{}", setting.to_uppercase()).as_str()),
                "the environment variable of {setting}"
            );
        }
        for flag in flags.keys() {
            assert!(settings.contains(flag), "flag --{flag} sets no setting");
        }
    }

    #[test]
    fn flags_override_the_file_and_the_rest_of_the_file_stays() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            flags: NodeFlags,
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "id = 2\ntick_ms = 50\nlease_ticks = 5\njoin = true\n",
        )
        .unwrap();
        let path_text = path.display().to_string();
        let cli = Cli::try_parse_from([
            "node",
            "--config",
            &path_text,
            "--lease-ticks",
            "6",
            "--max-scan-limit",
            "77",
            "--client-tls",
        ])
        .unwrap();
        let table = toml::Table::try_from(&cli.flags).unwrap();
        // Flags not given are not layered over the file (a default would hide its setting).
        assert_eq!(
            table.keys().collect::<Vec<_>>(),
            vec!["client_tls", "lease_ticks", "max_scan_limit"]
        );
        let mut settings = NodeConfig::read_table(&path).unwrap();
        settings.extend(table);
        let config = NodeConfig::from_table(settings, &path).unwrap();
        assert_eq!((config.id, config.tick_ms), (2, 50));
        assert_eq!((config.lease_ticks, config.max_scan_limit), (6, 77));
        assert!(config.join && config.client_tls);
    }

    /// In Kubernetes the operator points `DENGINE_RESTORE_FROM` at a ConfigMap key that holds
    /// the backup's path until the cluster is founded and is empty after: the members that
    /// join then start with an empty value, which is no restore (and no conflict with join).
    #[test]
    fn an_empty_restore_from_is_no_restore_and_may_join() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            flags: NodeFlags,
        }
        let parse = |restore: &str, join: bool| {
            let mut args = vec!["node", "--id", "2", "--restore-from", restore];
            if join {
                args.push("--join");
            }
            let cli = Cli::try_parse_from(args).unwrap();
            NodeConfig::load(&cli.flags)
        };
        let joining = parse("", true).expect("an empty restore_from with join is accepted");
        assert_eq!(joining.restore_from, None);
        let error = parse("/var/lib/dengine/restore.dengine-backup", true)
            .expect_err("a real restore cannot join");
        assert!(error.to_string().contains("restore_from"), "{error}");
    }
}
