//! d-engine's formats, compiled once for every crate of the project.
//!
//! - [`v1`]: the `dengine.v1` package (`dengine/v1/*.proto`): the client KV API, the Admin
//!   API, and the Raft messages and log entries peers exchange and disks keep. With the
//!   `client` and `server` features, the gRPC stubs of its services too.
//! - [`backup`]: the backup file format (`dengine snapshot save` writes it, the node restores
//!   from it).

pub mod backup;

/// The `dengine.v1` package.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/dengine.v1.rs"));

    /// The encoded descriptor set of every service, for gRPC server reflection.
    #[cfg(feature = "server")]
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/dengine_descriptor.bin"));
}
