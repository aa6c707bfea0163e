//! Leader election among operator replicas through a coordination.k8s.io Lease
//! (kube-lease-manager), so that one replica reconciles and the others stand by.
//!
//! A replica that loses the Lease stops: the process exits and Kubernetes restarts it as a
//! standby. Two replicas acting at once for a moment (a holder that cannot renew while its
//! lease runs out) is survivable by design: every step is decided afresh from what is observed
//! and targets absolute values (`replicas: 3`, not `+1`), a pod is deleted only under the uid
//! it was observed with, and the nodes refuse a membership change that is not safe.

use kube::Client;
use kube_lease_manager::{LeaseManagerBuilder, LeaseManagerError};
use tokio::sync::watch;

/// How long a Lease stays valid after its last renewal, in seconds.
const LEASE_SECONDS: u64 = 15;
/// How long before expiry the holder renews, in seconds.
const GRACE_SECONDS: u64 = 5;

/// Starts competing for Lease `name` in `namespace` as `identity`. The receiver turns true
/// when this replica becomes the leader and false when it loses the Lease.
pub async fn campaign(
    client: Client,
    namespace: &str,
    name: &str,
    identity: &str,
) -> Result<watch::Receiver<bool>, LeaseManagerError> {
    let manager = LeaseManagerBuilder::new(client, name)
        .with_namespace(namespace)
        .with_identity(identity)
        .with_duration(LEASE_SECONDS)
        .with_grace(GRACE_SECONDS)
        .with_field_manager(format!("{}-lease", crate::objects::MANAGER))
        .build()
        .await?;
    let (leading, _task) = manager.watch().await;
    Ok(leading)
}
