//! Talking to d-engine nodes over gRPC, for every program of the project that does: the
//! `dengine` CLI, the operator's admin client, the e2e writer application and the benchmark.
//!
//! - [`EndpointAddr`]: a node's address as a user writes it (`host`, `host:port`,
//!   `http(s)://host:port`), checked before anything is dialled.
//! - [`Dial`]: how to dial: timeouts, TLS (a CA, a client identity, the name to check the
//!   server's certificate against), the admin token sent as a bearer token.
//! - [`Connection`]: an open channel to one node, with its Kv and Admin clients and calls
//!   bounded by the timeout.
//! - [`ClientError`], [`status_line`], [`is_retryable`]: what went wrong, said on one line, and
//!   whether sending the same request again may succeed.
//! - [`backups`] and [`s3`] (feature `backups`): backups in object storage, how they are named,
//!   written and kept; buckets of S3 and S3-compatible stores.
//! - [`duration`]: durations as people write them (`5s`, `500ms`, `1m30s`), for timeouts and
//!   TTLs on command lines.

#[cfg(feature = "backups")]
pub mod backups;
mod connection;
mod dial;
pub mod duration;
mod endpoint;
mod error;
#[cfg(feature = "backups")]
pub mod s3;

pub use connection::Connection;
pub use dial::Dial;
pub use endpoint::{EndpointAddr, DEFAULT_CLIENT_PORT};
pub use error::{
    code_name, error_chain, is_connection_failure, is_retryable, status_line, ClientError,
    ConnectFailure,
};

/// The node's API (`dengine.v1`) with its gRPC clients.
pub use dengine_proto::v1 as proto;
