//! A node's data directory over its life: opened (RocksDB, the Raft store and the state
//! machine over one engine), given an identity the first time (founding a cluster, joining
//! one, or restoring a backup) and checked against the configuration every time after.
//!
//! Everything here blocks on the disk: the node calls it off the async runtime.

use std::sync::Arc;

use super::config::NodeConfig;
use super::node::NodeError;
use super::raft_store::{Identity, RaftStore};
use crate::kv::KvStore;
use crate::proto::HardState;
use crate::raft::Raft;
use crate::storage::{Durability, Engine, RocksEngine, WriteBatch};

/// The storage of an open data directory: one engine, seen as the Raft log and state, and as
/// the state machine.
pub struct Storage {
    pub engine: Arc<dyn Engine>,
    pub store: RaftStore,
    pub kv: KvStore,
}

/// Opens (creating it if needed) the data directory `config` names.
pub fn open(config: &NodeConfig) -> Result<Storage, NodeError> {
    let data_dir = config.data_dir();
    let unusable = |message: String| NodeError::DataDir {
        path: data_dir.display().to_string(),
        message,
    };
    std::fs::create_dir_all(&data_dir).map_err(|e| unusable(e.to_string()))?;
    let engine: Arc<dyn Engine> =
        Arc::new(RocksEngine::open(&data_dir).map_err(|e| unusable(e.to_string()))?);
    let store = RaftStore::new(engine.clone());
    let kv = KvStore::open(engine.clone(), config.history_retention)?;
    Ok(Storage { engine, store, kv })
}

/// Checks the data directory's identity against the configuration, initialising a new one.
/// Returns the cluster id (0 for a joining node that has not been contacted yet).
pub fn establish_identity(
    config: &NodeConfig,
    store: &RaftStore,
    kv: &mut KvStore,
) -> Result<u64, NodeError> {
    let data_dir = config.data_dir().display().to_string();
    match store.identity()? {
        Some(identity) => {
            if identity.node_id != config.id {
                return Err(NodeError::Identity(format!(
                    "data directory {data_dir} belongs to node {}, but this node is configured as node {}; \
                     use that node's id or another data directory",
                    identity.node_id, config.id
                )));
            }
            if !config.join && identity.cluster_id != 0 {
                let configured = config.new_cluster_id()?;
                if configured != identity.cluster_id {
                    return Err(NodeError::Identity(format!(
                        "data directory {data_dir} belongs to cluster {:x}, but initial_cluster and cluster_token \
                         describe cluster {configured:x}; refusing to mix two clusters' data \
                         (start with --join to keep serving the existing cluster, or use a new data directory)",
                        identity.cluster_id
                    )));
                }
            }
            Ok(identity.cluster_id)
        }
        None if config.join => {
            store.record_awaiting_admission()?;
            store.record_identity(Identity {
                cluster_id: 0,
                node_id: config.id,
            })?;
            Ok(0)
        }
        None if config.restore_from.is_some() => restore(config, store, kv),
        None => {
            let cluster_id = config.new_cluster_id()?;
            let members: Vec<(u64, String)> = config.founding_members()?.into_iter().collect();
            let entries = Raft::bootstrap_entries(&members);
            let hard_state = HardState {
                term: 1,
                vote: 0,
                commit: entries.len() as u64,
            };
            store.initialise(
                Identity {
                    cluster_id,
                    node_id: config.id,
                },
                hard_state,
                &entries,
            )?;
            tracing::info!(
                cluster_id = format!("{cluster_id:x}"),
                members = members.len(),
                "bootstrapped a new cluster"
            );
            Ok(cluster_id)
        }
    }
}

/// Founds a new cluster whose state is a backup's: every founding member restores the same
/// file, so they start identical, at the backup's index, with the new membership.
fn restore(config: &NodeConfig, store: &RaftStore, kv: &mut KvStore) -> Result<u64, NodeError> {
    let path = config
        .restore_from
        .as_deref()
        .expect("checked by the caller");
    let (header, data) =
        dengine_proto::backup::read(path).map_err(|e| NodeError::Identity(e.to_string()))?;
    let backup = header.metadata.unwrap_or_default();
    let members = config.founding_members()?;
    let meta = crate::proto::SnapshotMetadata {
        index: backup.index,
        term: backup.term,
        conf_state: Some(crate::proto::ConfState {
            voters: members.keys().copied().collect(),
            learners: Vec::new(),
        }),
        addresses: members.clone().into_iter().collect(),
    };
    let cluster_id = config.new_cluster_id()?;
    // The state machine and Raft's founding state in one write: a crash leaves an empty data
    // directory or a restored one, never half of each.
    let mut batch = WriteBatch::new();
    let staged = kv
        .stage_restore(&mut batch, &data, meta.index)
        .map_err(|e| NodeError::Identity(format!("restoring {}: {e}", path.display())))?;
    store.stage_initialise_from_snapshot(
        &mut batch,
        Identity {
            cluster_id,
            node_id: config.id,
        },
        HardState {
            term: meta.term.max(1),
            vote: 0,
            commit: meta.index,
        },
        &meta,
    );
    store.write(batch, Durability::Sync)?;
    kv.finish_restore(staged);
    tracing::info!(
        backup = %path.display(),
        index = meta.index,
        revision = kv.revision(),
        cluster_id = format!("{cluster_id:x}"),
        "founded a new cluster from a backup"
    );
    Ok(cluster_id)
}

/// Founds a data directory from a backup without starting a node (`node restore`): the
/// node started on it later serves the restored state. Returns the cluster id.
pub fn restore_data_dir(config: &NodeConfig) -> Result<u64, NodeError> {
    config.validate()?;
    if config.restore_from.is_none() {
        return Err(NodeError::Identity("no backup file given".into()));
    }
    let data_dir = config.data_dir();
    let occupied = std::fs::read_dir(&data_dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return Err(NodeError::DataDir {
            path: data_dir.display().to_string(),
            message: "it is not empty; restore founds a new member and needs an empty directory"
                .into(),
        });
    }
    let mut storage = open(config)?;
    restore(config, &storage.store, &mut storage.kv)
}
