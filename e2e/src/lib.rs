//! d-engine's end-to-end suite on Kubernetes.
//!
//! - [`runner`] and [`scenarios`]: `dengine-e2e`, which drives a `DEngineCluster` through the
//!   scenarios against the cluster of the current kubeconfig (kind, or any other), in a fresh
//!   namespace, and reports each as PASS or FAIL with what it checked;
//! - [`app`]: `dengine-e2e-app`, the application container run beside every node, writing
//!   unique keys through its node on 127.0.0.1 and printing each acknowledged write;
//! - the pure parts the runner's verdicts rest on, unit-tested here: [`acks`] (the
//!   application's lines and the book of acknowledged writes), [`timeline`] (pods never more than
//!   one not ready at a time, restart order, how long a condition was false), [`events`] (the
//!   operator's steps in order) and [`specs`] (the objects the scenarios send, validated against
//!   the CRD in the tests).

pub mod acks;
pub mod app;
pub mod events;
pub mod runner;
pub mod scenarios;
pub mod specs;
pub mod timeline;

/// The node's client KV API, with its gRPC clients.
pub use dengine_proto::v1 as proto;
