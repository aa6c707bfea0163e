//! d-engine's formats, compiled once for every crate of the project.
//!
//! - [`v1`]: the `dengine.v1` package (`dengine/v1/*.proto`): the client KV API, the Admin
//!   API, and the Raft messages and log entries peers exchange and disks keep. With the
//!   `client` and `server` features, the gRPC stubs of its services too.
//! - [`etcd`]: etcd's v3 API (`third_party/etcd`), which the node serves on its client port
//!   beside `dengine.v1` and the benchmark drives etcd through.
//! - [`backup`]: the backup file format (`dengine snapshot save` writes it, the node restores
//!   from it).

pub mod backup;

/// etcd's v3 API, packages as etcd names them (see `third_party/README.md`).
#[allow(clippy::all, missing_docs)]
pub mod etcd {
    pub mod etcdserverpb {
        include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
    }
    pub mod mvccpb {
        include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
    }
    pub mod authpb {
        include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
    }
    pub mod v3lockpb {
        include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
    }
    pub mod v3electionpb {
        include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
    }
}

/// The `dengine.v1` package.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/dengine.v1.rs"));

    /// The encoded descriptor set of every service, for gRPC server reflection.
    #[cfg(feature = "server")]
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        include_bytes!(concat!(env!("OUT_DIR"), "/dengine_descriptor.bin"));
}
