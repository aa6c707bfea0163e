//! Backups of a cluster to object storage, taken by the operator from the leader's admin
//! `Backup` API: when they are due ([`schedule`], [`plan`]), where they go and how many are
//! kept ([`destination`]), where it streams from ([`source`]) and how it is written and
//! checked as it streams in ([`write`]).
//! The controller's side (Secrets, status, Events) is in `kubernetes::backups`.

pub mod destination;
pub mod plan;
pub mod schedule;
pub mod source;
pub mod write;

pub use dengine_client::s3::S3Keys;
pub use destination::Destination;
pub use plan::{due, Trigger};
pub use schedule::Schedule;
pub use source::{BackupSource, ChunkStream};
pub use write::{write_backup, Written};

/// Why a backup did not complete: `reason` is the `BackupFailed` condition's reason and the
/// Event's, `message` says what went wrong in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct BackupFailure {
    pub reason: &'static str,
    pub message: String,
}
