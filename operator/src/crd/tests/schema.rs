//! What the plain schema (not CEL) says: ranges, lengths, patterns, defaults, columns.

use kube::CustomResourceExt;
use serde_json::{json, Value};

use super::open_api_schema;
use crate::crd::{DEngineCluster, DEngineClusterSpec};

fn spec_property(name: &str) -> Value {
    open_api_schema()["properties"]["spec"]["properties"][name].clone()
}

#[test]
fn replicas_are_one_to_seven() {
    let replicas = spec_property("replicas");
    assert_eq!(replicas["minimum"].as_f64(), Some(1.0));
    assert_eq!(replicas["maximum"].as_f64(), Some(7.0));
}

#[test]
fn image_and_version_are_non_empty_and_version_is_a_tag() {
    assert_eq!(spec_property("image")["minLength"], json!(1));
    assert_eq!(spec_property("version")["minLength"], json!(1));
    assert_eq!(
        spec_property("version")["pattern"],
        json!("^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    );
    assert_eq!(
        spec_property("image")["pattern"],
        json!(r"^([^/@\s]+/)*[^/:@\s]+$")
    );
}

#[test]
fn required_fields_are_the_ones_without_a_sensible_default() {
    let required = open_api_schema()["properties"]["spec"]["required"].clone();
    let mut required: Vec<String> = serde_json::from_value(required).expect("a list of names");
    required.sort();
    assert_eq!(
        required,
        ["auth", "image", "replicas", "storage", "version"]
    );
}

#[test]
fn defaults_are_in_the_schema() {
    assert_eq!(
        spec_property("ports")["properties"]["client"]["default"],
        json!(2379)
    );
    assert_eq!(
        spec_property("ports")["properties"]["peer"]["default"],
        json!(2380)
    );
    assert_eq!(
        spec_property("ports")["properties"]["metrics"]["default"],
        json!(2381)
    );
    assert_eq!(
        spec_property("defaultReadPolicy")["default"],
        json!("linearizable")
    );
    assert_eq!(
        spec_property("defaultReadPolicy")["enum"],
        json!(["linearizable", "lease", "eventual"])
    );
    assert_eq!(
        spec_property("scheduling")["properties"]["spreadAcrossNodes"]["default"],
        json!(true)
    );
    assert_eq!(spec_property("paused")["default"], json!(false));
    assert_eq!(
        spec_property("storage")["properties"]["retainOnDelete"]["default"],
        json!(true)
    );
    assert_eq!(
        spec_property("storage")["properties"]["retainOnScaleDown"]["default"],
        json!(false)
    );
}

#[test]
fn a_manifest_with_only_the_required_fields_reads_with_the_defaults() {
    let spec: DEngineClusterSpec =
        serde_json::from_value(super::manifest()["spec"].clone()).expect("the manifest reads");
    assert_eq!(spec.ports.client, 2379);
    assert!(spec.scheduling.spread_across_nodes);
    assert!(spec.storage.retain_on_delete);
    assert!(!spec.storage.retain_on_scale_down);
    assert!(!spec.paused);
    assert_eq!(spec.auth.admin_token_secret.key, "token");
    assert_eq!(spec.node_image(), "ghcr.io/d-engine/dengine:0.1.0");
}

#[test]
fn the_app_template_keeps_every_pod_field() {
    let app = &spec_property("app");
    assert_eq!(
        app["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"],
        json!(true)
    );
    let manifest = super::with(
        super::manifest(),
        "spec/app",
        json!({ "spec": { "containers": [{ "name": "orders", "image": "shop/orders:1" }], "hostNetwork": false } }),
    );
    let spec: DEngineClusterSpec =
        serde_json::from_value(manifest["spec"].clone()).expect("the manifest reads");
    let pod = spec.app.expect("an app").0.spec.expect("a pod spec");
    assert_eq!(pod.containers[0].image.as_deref(), Some("shop/orders:1"));
    assert_eq!(pod.host_network, Some(false));
}

#[test]
fn names_scope_and_printer_columns() {
    let crd = DEngineCluster::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("dengineclusters.dengine.io")
    );
    assert_eq!(crd.spec.group, "dengine.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "DEngineCluster");
    assert_eq!(crd.spec.names.short_names, Some(vec!["dec".to_string()]));
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    let columns: Vec<(String, String)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| (c.name.clone(), c.json_path.clone()))
        .collect();
    let expected = [
        ("Desired", ".spec.replicas"),
        ("Ready", ".status.readyMembers"),
        ("Leader", ".status.leader.pod"),
        ("Version", ".status.currentVersion"),
        ("Phase", ".status.phase"),
        ("Age", ".metadata.creationTimestamp"),
    ];
    assert_eq!(
        columns,
        expected.map(|(n, p)| (n.to_string(), p.to_string()))
    );
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some(),
        "status is a subresource, so spec writers cannot overwrite it"
    );
}

#[test]
fn status_lists_merge_by_key() {
    let status = &open_api_schema()["properties"]["status"]["properties"];
    assert_eq!(status["conditions"]["x-kubernetes-list-type"], json!("map"));
    assert_eq!(
        status["conditions"]["x-kubernetes-list-map-keys"],
        json!(["type"])
    );
    assert_eq!(
        status["members"]["x-kubernetes-list-map-keys"],
        json!(["nodeId"])
    );
    assert_eq!(
        status["phase"]["enum"],
        json!([
            "Pending",
            "Bootstrapping",
            "Scaling",
            "Upgrading",
            "Running",
            "Degraded",
            "Paused"
        ])
    );
}
