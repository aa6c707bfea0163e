//! Failpoints at the places where a crash or an I/O error matters most, for fault tests.
//!
//! Built only with the `failpoints` feature; configured through the `FAILPOINTS` environment
//! variable (see the `fail` crate), e.g. `FAILPOINTS='apply=3*off->return(crash)'`:
//! - `return(crash)` aborts the process right there, as `kill -9` would;
//! - `return` (or any other argument) fails the operation as a failing disk would.
//!
//! Names: `log_append` (before the log is written and fsynced), `after_log_append` (after the
//! fsync, before acknowledgements are sent), `apply` (before committed entries are applied),
//! `snapshot_install` (before a snapshot from the leader is installed), `snapshot_take`
//! (before a snapshot is written and the log compacted), `snapshot_encode` (before the state
//! machine is encoded for a follower or a backup), `watch_history_read` (before a page of a
//! watch's retained history is read).
//!
//! Test builds also take failpoints at run time: `PUT /debug/failpoints/{name}` on the
//! metrics listener (see `probes.rs`), e.g. `pause` to stall a node where the test chooses.

use crate::storage::StorageError;

/// What an enabled failpoint does: abort the process, or return the error a failing disk
/// would.
pub fn trigger(name: &str, argument: Option<String>) -> StorageError {
    if argument.as_deref() == Some("crash") {
        eprintln!("failpoint {name}: crashing");
        std::process::abort();
    }
    StorageError::Engine(format!("failpoint {name} injected an I/O error"))
}

/// Evaluates failpoint `$name` inside a function returning `Result<_, StorageError>`.
macro_rules! failpoint {
    ($name:literal) => {
        fail::fail_point!($name, |argument| Err($crate::server::failpoints::trigger(
            $name, argument
        )))
    };
}

pub(crate) use failpoint;
