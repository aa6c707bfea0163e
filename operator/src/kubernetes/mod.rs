//! The operator on Kubernetes: the [`Workload`](crate::driver::Workload) made of the objects a
//! DEngineCluster owns, the controller that runs one driver step per reconcile, the Events it
//! records and the status it writes.

mod backup_jobs;
mod backups;
mod certificates;
mod controller;
mod events;
mod observe;
mod restore;
mod token;
mod workload;

pub use backups::{s3_destinations, DestinationFactory};
pub use controller::{
    action_name, reconcile, reconcile_with, requeue_after, run_controller, Context,
    ControllerConfig,
};
pub use events::event_for;
pub use observe::{pod_state, pod_version};
pub use token::{admin_tls, admin_token, ensure_admin_token};
pub use workload::KubeWorkload;

/// `bytes` bytes of the operating system's randomness, hex-encoded: tokens and serials the
/// operator makes.
fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer)?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}
