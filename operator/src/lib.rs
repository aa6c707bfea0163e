//! The d-engine operator: turns a `DEngineCluster` resource into a running Raft cluster that
//! grows, shrinks, heals and upgrades one safe step at a time.
//!
//! - [`crd`]: the custom resource a user writes, and [`status`]: what the operator reports;
//! - [`crdgen`]: the CRD manifest (`dengine-operator crd`, committed in `crds/`);
//! - [`observed`]: everything the operator can see of one cluster, in plain structs;
//! - [`decide`]: the pure function from what is observed to the one next step. It keeps no
//!   memory between calls, so an operator killed between any two steps resumes from what it
//!   sees;
//! - [`driver`]: observe, decide, take the step, through two small interfaces: the workload
//!   (pods, volumes, objects) and the membership (the leader's Admin API, [`admin`]);
//! - [`objects`]: the Kubernetes objects a cluster owns, built from its spec;
//! - [`kubernetes`]: the workload as Kubernetes objects, and the controller;
//! - [`backup`]: scheduled backups to object storage, taken from the leader;
//! - [`certificates`]: the CA and certificates the operator issues with `spec.tls.generate`;
//! - [`leader_election`], [`metrics`], [`http`]: the operator process.

pub mod admin;
pub mod backup;
pub mod certificates;
pub mod crd;
pub mod crdgen;
pub mod decide;
pub mod driver;
pub mod error;
pub mod failpoints;
pub mod http;
pub mod kubernetes;
pub mod leader_election;
pub mod metrics;
pub mod objects;
pub mod observed;
pub mod status;

pub use error::Error;

/// The oldest Kubernetes (1.x) the operator and its CRD run on: 1.28, with the
/// `SidecarContainers` feature gate on there, since the node runs as a native sidecar (an init
/// container with `restartPolicy: Always`). What else the project uses is older: the CRD's CEL
/// rules are at the 1.27 library level, Services target ports by number. The chart's
/// `kubeVersion`, docs/operator.md and the e2e runner's check follow this; a test in
/// `e2e/tests/scripts.rs` keeps them in step.
pub const KUBERNETES_FLOOR_MINOR: u32 = 28;

/// From this Kubernetes (1.x) on, native sidecars need no feature gate (beta, on by default).
pub const SIDECARS_ON_BY_DEFAULT_MINOR: u32 = 29;
