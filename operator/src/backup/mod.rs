//! Backups of a cluster, taken by the operator from the leader's admin `Backup` API: when they
//! are due ([`schedule`], [`plan`]), where they stream from ([`source`]) and where they go: an
//! S3 bucket the operator writes itself ([`s3`]) or a PersistentVolumeClaim a Job of the node
//! image writes into ([`volume`]). How a backup is named, written, checked and kept is
//! `dengine_client::backups`, which the CLI those Jobs run shares.
//! The controller's side (Secrets, Jobs, status, Events) is in `kubernetes::backups`.

pub mod plan;
pub mod s3;
pub mod schedule;
pub mod source;
pub mod volume;

pub use dengine_client::backups::{write_backup, BackupFailure, Destination, Written};
pub use dengine_client::s3::S3Keys;
pub use plan::{due, Trigger};
pub use schedule::Schedule;
pub use source::{BackupSource, ChunkStream};
