//! The node's Admin API as the operator uses it: find the leader, read its view of the
//! members, and ask it for one membership change at a time.

mod channels;
mod grpc;
mod view;

pub use channels::AdminChannels;
pub use grpc::{AdminTls, GrpcMembership};
pub use view::cluster_view;

/// The node's API (`proto/dengine/v1/admin.proto`), with its gRPC clients.
pub use dengine_proto::v1 as proto;
