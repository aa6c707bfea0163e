//! The d-engine operator: turns a `DEngineCluster` resource into a running Raft cluster that
//! grows, shrinks, heals and upgrades one safe step at a time.
//!
//! - [`crd`]: the custom resource a user writes, and [`status`]: what the operator reports;
//! - [`crdgen`]: the CRD manifest (`dengine-operator crd`, committed in `crds/`);
//! - [`observed`]: everything the operator can see of one cluster, in plain structs;
//! - [`decide`]: the pure function from what is observed to the one next step. It keeps no
//!   memory between calls, so an operator killed between any two steps resumes from what it
//!   sees.

pub mod crd;
pub mod crdgen;
pub mod decide;
pub mod error;
pub mod observed;
pub mod status;

pub use error::Error;
