//! The cluster's ConfigMap: the founding record (and, for a cluster founded from a backup,
//! where pod 0 finds it until then).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use super::{owned_meta, with_spec_hash, Names, RESTORE_FILE};
use crate::crd::DEngineCluster;

/// The key every node reads as `DENGINE_JOIN` when it starts: `"false"` until the operator has
/// recorded that the cluster was founded, `"true"` for ever after. Pod 0 bootstraps only while
/// it reads `"false"`; any other pod refuses to bootstrap a cluster it is not the founder of.
pub const JOIN_KEY: &str = "join";

/// The key every node reads as `DENGINE_RESTORE_FROM`, on clusters founded from a backup: the
/// backup's path on pod 0's volume until the founding is recorded, empty (no restore, which a
/// joining member must not be asked for) ever after.
pub const RESTORE_KEY: &str = "restore-from";

/// The ConfigMap, carrying the founding record as observed: building it never clears it. The
/// spec hash leaves the record out: recording the founding does not make the object outdated.
pub fn config_map(cluster: &DEngineCluster, founded: bool) -> ConfigMap {
    let mut config = with_spec_hash(build(cluster, false));
    config.data = build(cluster, founded).data;
    config
}

fn build(cluster: &DEngineCluster, founded: bool) -> ConfigMap {
    let names = Names::of(cluster);
    let mut data = BTreeMap::from([(JOIN_KEY.to_string(), founded.to_string())]);
    if cluster.spec.restore_from.is_some() {
        let path = if founded { "" } else { RESTORE_FILE };
        data.insert(RESTORE_KEY.to_string(), path.to_string());
    }
    ConfigMap {
        metadata: owned_meta(cluster, names.config_map()),
        data: Some(data),
        ..ConfigMap::default()
    }
}
