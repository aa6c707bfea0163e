//! The words of the client API, shared by every layer that serves it: the requests and
//! answers as Rust types (`types.rs`) and why a request failed (`error.rs`, [`ApiError`]).
//! They depend on nothing that serves them, so the layers that do (the API facade, the
//! frontend, the limits) import them without importing each other.

mod error;
mod types;

pub use error::{ApiError, LIMIT_METADATA, LIMIT_NAMES};
pub(crate) use types::{ttl_from_ms, ttl_ms};
pub use types::{
    Compare, CompareAndSwapOptions, CompareAndSwapResponse, DeleteOptions, DeleteResponse,
    EventKind, GetResponse, Header, KeyValue, PutOptions, PutResponse, ReadPolicy, RoleEvent,
    ScanRequest, ScanResponse, WatchEvent, WatchRequest, WatchResponse,
};
