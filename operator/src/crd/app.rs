//! The application's part of each pod.
//!
//! The Rust type is the full `PodTemplateSpec`, but the schema declares only what the operator
//! and its validation rules read (container names) and keeps everything else as written
//! (`x-kubernetes-preserve-unknown-fields`). Embedding the whole pod schema would make the CRD
//! several hundred kilobytes, too large for client-side `kubectl apply`; the API server still
//! validates every field when the operator puts the template into the StatefulSet.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// The name of the node's container in every pod; the application may not use it.
pub const NODE_CONTAINER_NAME: &str = "dengine";

/// The most containers (or init containers) the application may bring, which also bounds the
/// cost the API server estimates for the rules that look at each of them.
const MAX_CONTAINERS: u32 = 32;

/// The application's pod template: its labels, annotations and pod spec are merged into the
/// StatefulSet's pods, and its containers run beside the node sidecar.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(transparent)]
pub struct AppTemplate(pub PodTemplateSpec);

impl JsonSchema for AppTemplate {
    fn schema_name() -> Cow<'static, str> {
        "AppTemplate".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let string_map = json_schema!({
            "type": "object",
            "additionalProperties": { "type": "string" }
        });
        let containers = json_schema!({
            "type": "array",
            "maxItems": MAX_CONTAINERS,
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {
                    "name": { "type": "string", "minLength": 1, "maxLength": 63 }
                },
                "x-kubernetes-preserve-unknown-fields": true
            }
        });
        json_schema!({
            "description": "The application's pod template (a PodTemplateSpec): its labels, annotations and pod spec are merged into the cluster's pods, and its containers run beside the node sidecar.",
            "type": "object",
            "properties": {
                "metadata": {
                    "description": "Labels and annotations added to every pod.",
                    "type": "object",
                    "properties": {
                        "labels": string_map,
                        "annotations": string_map
                    }
                },
                "spec": {
                    "description": "A PodSpec; every field is passed on to the pods as written.",
                    "type": "object",
                    "required": ["containers"],
                    "properties": {
                        "containers": containers,
                        "initContainers": containers
                    },
                    "x-kubernetes-preserve-unknown-fields": true,
                    "x-kubernetes-validations": [
                        {
                            "rule": format!(
                                "self.containers.all(c, c.name != '{NODE_CONTAINER_NAME}') && \
                                 (!has(self.initContainers) || self.initContainers.all(c, c.name != '{NODE_CONTAINER_NAME}'))"
                            ),
                            "message": format!("the container name {NODE_CONTAINER_NAME} is taken by the node sidecar")
                        }
                    ]
                }
            },
            "required": ["spec"]
        })
    }
}
