//! Every DEngineCluster the scenarios send, validated locally against the committed CRD as the
//! API server would: the OpenAPI schema (types, required fields, ranges, lengths, patterns,
//! enums, unknown fields) by the small checker below, and the CEL rules by kube's `cel`
//! feature. Scenario 7's bad inputs must be refused by the same checks, at the field and with
//! the words the scenario expects from the real API server.

use serde_json::{json, Value};

use super::*;

const CRD_YAML: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../crds/dengineclusters.dengine.io.yaml"
));

/// The `openAPIV3Schema` of the committed CRD.
fn schema() -> Value {
    let crd: Value = serde_yaml_ng::from_str(CRD_YAML).expect("the CRD is YAML");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

/// Numbers as the API server prints them (`7`, not `7.0`).
fn number(value: &Value) -> String {
    match value.as_f64() {
        Some(f) if f.fract() == 0.0 => format!("{}", f as i64),
        _ => value.to_string(),
    }
}

/// The errors the API server's schema validation reports for `value` at `path`, in its words
/// (`<path>: Invalid value: <v>: <path> in body should be less than or equal to 7`). Covers the
/// keywords the DEngineCluster schema uses.
fn schema_errors(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let invalid = |errors: &mut Vec<String>, what: String| {
        errors.push(format!(
            "{path}: Invalid value: {value}: {path} in body {what}"
        ));
    };
    if value.is_null() {
        if schema["nullable"] != json!(true) {
            errors.push(format!(
                "{path}: Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                schema["type"].as_str().unwrap_or("object")
            ));
        }
        return;
    }
    if schema["x-kubernetes-int-or-string"] == json!(true) {
        if !(value.is_i64() || value.is_u64() || value.is_string()) {
            invalid(errors, "must be an integer or a string".to_string());
        }
        return;
    }
    let type_ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !type_ok {
        invalid(
            errors,
            format!("must be of type {}", schema["type"].as_str().unwrap_or("?")),
        );
        return;
    }
    if let Some(enumeration) = schema["enum"].as_array() {
        if !enumeration.contains(value) {
            let supported: Vec<String> = enumeration.iter().map(Value::to_string).collect();
            errors.push(format!(
                "{path}: Unsupported value: {value}: supported values: {}",
                supported.join(", ")
            ));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema["minimum"].as_f64() {
            if n < min {
                invalid(
                    errors,
                    format!(
                        "should be greater than or equal to {}",
                        number(&schema["minimum"])
                    ),
                );
            }
        }
        if let Some(max) = schema["maximum"].as_f64() {
            if n > max {
                invalid(
                    errors,
                    format!(
                        "should be less than or equal to {}",
                        number(&schema["maximum"])
                    ),
                );
            }
        }
    }
    if let Some(s) = value.as_str() {
        let chars = s.chars().count() as u64;
        if let Some(min) = schema["minLength"].as_u64() {
            if chars < min {
                invalid(errors, format!("should be at least {min} chars long"));
            }
        }
        if let Some(max) = schema["maxLength"].as_u64() {
            if chars > max {
                errors.push(format!(
                    "{path}: Too long: may not be more than {max} bytes"
                ));
            }
        }
        if let Some(pattern) = schema["pattern"].as_str() {
            let re = regex::Regex::new(pattern).expect("the CRD's patterns compile");
            if !re.is_match(s) {
                invalid(errors, format!("should match '{pattern}'"));
            }
        }
    }
    if let Some(items) = value.as_array() {
        if let Some(max) = schema["maxItems"].as_u64() {
            if items.len() as u64 > max {
                errors.push(format!(
                    "{path}: Too many: {}: must have at most {max} items",
                    items.len()
                ));
            }
        }
        for (i, item) in items.iter().enumerate() {
            schema_errors(&schema["items"], item, &format!("{path}[{i}]"), errors);
        }
    }
    if let Some(object) = value.as_object() {
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().expect("required names are strings");
            if !object.contains_key(name) {
                let child = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                errors.push(format!("{child}: Required value"));
            }
        }
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == json!(true);
        for (name, field) in object {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if let Some(property) = schema["properties"].get(name) {
                schema_errors(property, field, &child, errors);
            } else if schema["additionalProperties"].is_object() {
                schema_errors(&schema["additionalProperties"], field, &child, errors);
            } else {
                let envelope =
                    path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&name.as_str());
                if !preserve && !envelope {
                    // The API server would drop it without a word: a field the runner sets that
                    // silently vanishes is a bug in the runner.
                    errors.push(format!(
                        "{child}: unknown field (the API server would prune it)"
                    ));
                }
            }
        }
    }
}

/// The CEL rules `object` breaks, on creation or as an update of `old`.
fn cel_errors(object: &Value, old: Option<&Value>) -> Vec<String> {
    match kube::core::cel::Validator::new().validate(&schema(), object, old) {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.field_path, e.message))
            .collect(),
    }
}

/// Everything the API server would refuse `object` for.
fn refusals(object: &Value, old: Option<&Value>) -> Vec<String> {
    let mut errors = Vec::new();
    schema_errors(&schema(), object, "", &mut errors);
    errors.extend(cel_errors(object, old));
    errors
}

fn options_variants() -> Vec<SpecOptions> {
    let mut laptop = SpecOptions::example();
    laptop.spread_across_nodes = false;
    laptop.storage_class = Some("standard".to_string());
    laptop.storage_size = "1Gi".to_string();
    let mut registry = SpecOptions::example();
    registry.node_image = "registry.example.com:5000/team/dengine".to_string();
    registry.node_tag = "e2e-next".to_string();
    registry.app_image = "registry.example.com:5000/team/dengine-e2e-app:e2e".to_string();
    vec![SpecOptions::example(), laptop, registry]
}

#[test]
fn every_cluster_the_scenarios_create_is_valid() {
    for options in options_variants() {
        for replicas in [1, 3] {
            let object = to_json(&cluster(&options, replicas));
            assert_eq!(refusals(&object, None), Vec::<String>::new(), "{object:#}");
        }
        let paused = to_json(&paused_cluster(&options, "e2e-bad-storage"));
        assert_eq!(refusals(&paused, None), Vec::<String>::new(), "{paused:#}");
    }
}

#[test]
fn every_change_the_scenarios_make_is_valid() {
    let options = SpecOptions::example();
    let one = to_json(&cluster(&options, 1));
    let three = to_json(&cluster(&options, 3));
    let mut upgraded = three.clone();
    upgraded["spec"]["version"] = json!("e2e-next");
    for (old, new) in [(&one, &three), (&three, &upgraded), (&upgraded, &one)] {
        assert_eq!(refusals(new, Some(old)), Vec::<String>::new(), "{new:#}");
    }
}

#[test]
fn the_backup_and_restore_scenarios_send_valid_objects() {
    let options = SpecOptions::example();
    let three = to_json(&cluster(&options, 3));
    let mut backed_up = three.clone();
    backed_up["spec"]["backup"] = backups_into_claim();
    assert_eq!(
        refusals(&backed_up, Some(&three)),
        Vec::<String>::new(),
        "{backed_up:#}"
    );
    let location = "pvc://e2e-backups/dengine-e2e-test/e2e/dengine-e2e-test.e2e-20261206T120000.000Z.dengine-backup";
    for options in options_variants() {
        let restored = to_json(&restored_cluster(&options, location));
        assert_eq!(
            refusals(&restored, None),
            Vec::<String>::new(),
            "{restored:#}"
        );
    }
}

#[test]
fn the_scenario_clusters_read_back_as_sent() {
    for options in options_variants() {
        let sent = cluster(&options, 3);
        let read: DEngineCluster =
            serde_json::from_value(to_json(&sent)).expect("the JSON reads back");
        assert_eq!(read.spec, sent.spec);
        let app = read.spec.app.expect("an app").0.spec.expect("a pod spec");
        assert_eq!(app.containers[0].name, APP_CONTAINER);
        assert!(!read.spec.storage.retain_on_scale_down);
        assert!(read.spec.storage.retain_on_delete);
        assert_eq!(read.spec.auth.admin_token_secret.name, ADMIN_SECRET);
    }
}

#[test]
fn each_bad_input_is_refused_at_its_field_with_its_words() {
    for bad in bad_inputs(&SpecOptions::example()) {
        let refused = refusals(&bad.object, bad.old.as_ref());
        assert!(
            refused
                .iter()
                .any(|r| r.starts_with(bad.field) && r.contains(bad.words)),
            "{}: expected a refusal at {} saying {:?}, got {refused:?}",
            bad.what,
            bad.field,
            bad.words
        );
        // Only for that reason: the rest of the object is valid.
        assert!(
            refused.iter().all(|r| r.starts_with(bad.field)),
            "{}: refused for something else too: {refused:?}",
            bad.what
        );
        if let Some(old) = &bad.old {
            assert_eq!(
                refusals(old, None),
                Vec::<String>::new(),
                "{}: the stored object is valid",
                bad.what
            );
        }
    }
}

#[test]
fn the_expected_words_are_the_crds_own() {
    // The CEL messages are in the committed CRD as written; the replicas bound is its maximum.
    for bad in bad_inputs(&SpecOptions::example()) {
        if bad.field == "spec.replicas" {
            assert_eq!(
                schema()["properties"]["spec"]["properties"]["replicas"]["maximum"].as_f64(),
                Some(7.0)
            );
        } else {
            assert!(
                CRD_YAML.contains(bad.words),
                "{:?} is not in the CRD",
                bad.words
            );
        }
    }
}

#[test]
fn the_local_schema_checker_refuses_what_it_should() {
    // The checker itself, on mistakes the bad inputs do not cover.
    let options = SpecOptions::example();
    let good = to_json(&cluster(&options, 1));
    let cases = [
        (
            "spec/replicas",
            json!(0),
            "spec.replicas",
            "greater than or equal to 1",
        ),
        (
            "spec/replicas",
            json!("3"),
            "spec.replicas",
            "must be of type integer",
        ),
        (
            "spec/version",
            json!("1.0 beta"),
            "spec.version",
            "should match",
        ),
        (
            "spec/image",
            json!("repo/image:tag"),
            "spec.image",
            "should match",
        ),
        (
            "spec/defaultReadPolicy",
            json!("fast"),
            "spec.defaultReadPolicy",
            "Unsupported value",
        ),
        (
            "spec/storage/colour",
            json!("blue"),
            "spec.storage.colour",
            "unknown field",
        ),
    ];
    for (pointer, value, field, words) in cases {
        let mut bad = good.clone();
        let (parent, name) = pointer.rsplit_once('/').expect("a nested pointer");
        bad.pointer_mut(&format!("/{parent}"))
            .and_then(Value::as_object_mut)
            .expect("the parent exists")
            .insert(name.to_string(), value);
        let refused = refusals(&bad, None);
        assert!(
            refused
                .iter()
                .any(|r| r.starts_with(field) && r.contains(words)),
            "{pointer}: expected {words:?} at {field}, got {refused:?}"
        );
    }
    let mut missing = good.clone();
    missing["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("auth");
    assert!(refusals(&missing, None).contains(&"spec.auth: Required value".to_string()));
}
