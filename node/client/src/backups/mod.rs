//! Backups kept in object storage (an S3 bucket, or a directory through the same interface):
//! where one goes and what it is named, how many are kept ([`destination`]), and how one is
//! written as it streams in from a node, checked against the node's checksum before it takes
//! its name ([`write`]). The operator writes scheduled backups to S3 with it, and the `dengine`
//! CLI writes them into a volume (the operator's backup Jobs): one naming scheme and one check
//! on both paths, so retention and restore read what either wrote.

pub mod destination;
pub mod write;

pub use destination::{is_unfinished_backup, Destination};
pub use write::{write_backup, Written};

/// Why a backup did not complete: `reason` is a word for machines (the operator's
/// `BackupFailed` condition reason), `message` says what went wrong in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct BackupFailure {
    pub reason: &'static str,
    pub message: String,
}
