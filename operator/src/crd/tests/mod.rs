//! The CRD's schema and its CEL rules, evaluated locally as the API server would (kube's
//! `cel` feature), on objects written as a user would write them.

mod cel_rules;
mod schema;

use kube::CustomResourceExt;
use serde_json::{json, Value};

use super::DEngineCluster;

/// The CRD's `openAPIV3Schema`, as JSON.
fn open_api_schema() -> Value {
    let crd = DEngineCluster::crd();
    let schema = crd.spec.versions[0]
        .schema
        .as_ref()
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .expect("the derived CRD has a schema");
    serde_json::to_value(schema).expect("a schema serializes")
}

/// A small valid DEngineCluster, as a user would write it.
fn manifest() -> Value {
    json!({
        "apiVersion": "dengine.io/v1alpha1",
        "kind": "DEngineCluster",
        "metadata": { "name": "orders", "namespace": "shop" },
        "spec": {
            "replicas": 3,
            "image": "ghcr.io/d-engine/dengine",
            "version": "0.1.0",
            "storage": { "size": "10Gi", "storageClassName": "fast" },
            "auth": { "adminTokenSecret": { "name": "orders-admin" } }
        }
    })
}

/// Sets `value` at a `/`-separated path under the manifest root, creating objects on the way.
fn with(mut manifest: Value, path: &str, value: Value) -> Value {
    let mut at = &mut manifest;
    let mut parts = path.split('/').peekable();
    while let Some(part) = parts.next() {
        let object = at.as_object_mut().expect("the path runs through objects");
        if parts.peek().is_none() {
            object.insert(part.to_string(), value);
            return manifest;
        }
        at = object.entry(part.to_string()).or_insert_with(|| json!({}));
    }
    manifest
}

/// Removes the field at a `/`-separated path.
fn without(mut manifest: Value, path: &str) -> Value {
    let (parent, field) = path.rsplit_once('/').expect("a nested path");
    let pointer = format!("/{parent}");
    manifest
        .pointer_mut(&pointer)
        .and_then(Value::as_object_mut)
        .expect("the parent exists")
        .remove(field);
    manifest
}

/// The messages of the CEL rules `manifest` breaks, on creation (`old` is `None`) or on an
/// update from `old`.
fn broken_rules(manifest: &Value, old: Option<&Value>) -> Vec<String> {
    match kube::core::cel::Validator::new().validate(&open_api_schema(), manifest, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.field_path, e.message))
            .collect(),
    }
}
