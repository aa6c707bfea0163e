//! The node's Admin API as the operator uses it: find the leader, read its view of the
//! members, and ask it for one membership change at a time.

mod grpc;
mod view;

pub use grpc::{AdminTls, GrpcMembership};
pub use view::cluster_view;

/// The generated Admin API client (`proto/dengine/v1/admin.proto`).
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("dengine.v1");
}
