//! The Services: a headless one through which peers find each other, and a client one when the
//! pods run the node alone.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{owned_meta, selector_labels, with_spec_hash, Names};
use crate::crd::DEngineCluster;

/// A Service port whose target is the container port by number, not by name: the node runs as a
/// native sidecar (an init container), and the Endpoints controller of Kubernetes 1.28 resolves
/// named target ports against regular containers only, leaving the Endpoints object empty.
fn port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// The headless peer Service: each pod gets `<pod>.<cluster>-peers.<namespace>.svc`. Addresses
/// are published before pods are ready, because a node in join mode is not ready until the
/// leader has reached it at that address.
pub fn peer_service(cluster: &DEngineCluster) -> Service {
    with_spec_hash(Service {
        metadata: owned_meta(cluster, Names::of(cluster).peer_service()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_string()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(cluster)),
            ports: Some(vec![
                port("peer", cluster.spec.ports.peer),
                port("metrics", cluster.spec.ports.metrics),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// The client Service, only when the pods run the node alone (no application containers):
/// then the node listens for clients on the pod network, and ready members serve them.
pub fn client_service(cluster: &DEngineCluster) -> Option<Service> {
    if cluster.spec.app.is_some() {
        return None;
    }
    Some(with_spec_hash(Service {
        metadata: owned_meta(cluster, Names::of(cluster).client_service()),
        spec: Some(ServiceSpec {
            selector: Some(selector_labels(cluster)),
            ports: Some(vec![port("client", cluster.spec.ports.client)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }))
}
