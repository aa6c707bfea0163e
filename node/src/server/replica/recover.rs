//! What a replica starts from: the Raft core rebuilt from storage, and what the replica tracks
//! beside it (the configuration as of the applied index, where the stored log ends, whether
//! this node still waits to be admitted).

use crate::kv::KvStore;

use crate::raft::{Config, LogIndex, Membership, Raft};
use crate::server::raft_store::RaftStore;
use crate::storage::StorageError;

pub struct Recovered {
    pub raft: Raft,
    /// The configuration as of the state machine's applied index.
    pub applied_membership: Membership,
    /// The last log index on disk.
    pub last_stored: LogIndex,
    /// Storage marks this node as waiting to be admitted.
    pub awaiting_admission: bool,
    /// The commit index on disk: the node has replayed its log once applied reaches it.
    pub stored_commit: LogIndex,
}

/// Rebuilds the core from `store` and `kv` (which share one engine), with `config` for its
/// tuning and `seed` for its randomness.
pub fn recover(
    store: &RaftStore,
    kv: &KvStore,
    mut config: Config,
    seed: u64,
) -> Result<Recovered, StorageError> {
    let state = store.load()?;
    let stored_commit = state.hard_state.commit;
    let last_stored = state.snapshot.index + state.entries.len() as u64;
    // Membership as of the applied index: the snapshot's, then changes up to `applied`.
    let (applied_membership, _) = Membership::replay(
        &state.snapshot,
        state
            .entries
            .iter()
            .filter(|e| e.index <= kv.applied_index()),
    );
    let awaiting_admission = store.awaiting_admission()?;
    config.awaiting_admission = awaiting_admission;
    let raft = Raft::new(
        config,
        state.hard_state,
        state.snapshot,
        state.entries,
        kv.applied_index(),
        seed,
    );
    Ok(Recovered {
        raft,
        applied_membership,
        last_stored,
        awaiting_admission,
        stored_commit,
    })
}
