use serde_json::json;

use super::{broken_rules, manifest, with, without};

fn assert_refused(broken: Vec<String>, field: &str, words: &str) {
    assert!(
        broken
            .iter()
            .any(|b| b.starts_with(field) && b.contains(words)),
        "expected a broken rule at {field} saying {words:?}, got {broken:?}"
    );
}

#[test]
fn a_plain_manifest_passes_every_rule() {
    assert_eq!(broken_rules(&manifest(), None), Vec::<String>::new());
}

#[test]
fn a_manifest_with_every_field_passes_every_rule() {
    let full = with(
        manifest(),
        "spec/app",
        json!({
            "metadata": { "labels": { "app": "orders" } },
            "spec": {
                "containers": [{ "name": "orders", "image": "shop/orders:1", "ports": [{ "containerPort": 8080 }] }],
                "initContainers": [{ "name": "migrate", "image": "shop/orders:1" }],
                "serviceAccountName": "orders"
            }
        }),
    );
    let full = with(
        full,
        "spec/ports",
        json!({ "client": 3379, "peer": 3380, "metrics": 3381 }),
    );
    let full = with(full, "spec/defaultReadPolicy", json!("lease"));
    let full = with(full, "spec/paused", json!(true));
    let full = with(
        full,
        "spec/scheduling",
        json!({ "spreadAcrossNodes": false, "tolerations": [{ "key": "dedicated", "operator": "Exists" }] }),
    );
    assert_eq!(broken_rules(&full, None), Vec::<String>::new());
}

#[test]
fn ports_must_differ() {
    let clash = with(
        manifest(),
        "spec/ports",
        json!({ "client": 2380, "peer": 2380 }),
    );
    assert_refused(broken_rules(&clash, None), "spec.ports", "must all differ");
}

#[test]
fn a_default_port_clashes_too() {
    // Defaults apply before the rules, as in the API server: metrics defaults to 2381.
    let clash = with(manifest(), "spec/ports", json!({ "client": 2381 }));
    assert_refused(broken_rules(&clash, None), "spec.ports", "must all differ");
}

#[test]
fn the_node_container_name_is_reserved() {
    let app = json!({ "spec": { "containers": [{ "name": "dengine", "image": "x" }] } });
    assert_refused(
        broken_rules(&with(manifest(), "spec/app", app), None),
        "spec.app.spec",
        "taken by the node sidecar",
    );

    let init = json!({ "spec": {
        "containers": [{ "name": "orders", "image": "x" }],
        "initContainers": [{ "name": "dengine", "image": "x" }]
    } });
    assert_refused(
        broken_rules(&with(manifest(), "spec/app", init), None),
        "spec.app.spec",
        "taken by the node sidecar",
    );
}

#[test]
fn storage_size_must_be_a_positive_quantity() {
    for bad in ["ten gigabytes", "0", "0Gi", "-1Gi", "10gi", "1.Gi", "10 Gi"] {
        let manifest = with(manifest(), "spec/storage/size", json!(bad));
        assert_refused(
            broken_rules(&manifest, None),
            "spec.storage.size",
            "positive size",
        );
    }
    for good in ["10Gi", "500M", "1", "0.5Gi", "1.5T", "2048Ki"] {
        let manifest = with(manifest(), "spec/storage/size", json!(good));
        assert_eq!(
            broken_rules(&manifest, None),
            Vec::<String>::new(),
            "{good}"
        );
    }
}

#[test]
fn storage_class_cannot_change_after_creation() {
    let old = manifest();
    let changed = with(manifest(), "spec/storage/storageClassName", json!("slow"));
    assert_refused(
        broken_rules(&changed, Some(&old)),
        "spec.storage.storageClassName",
        "cannot change after creation",
    );

    let dropped = without(manifest(), "spec/storage/storageClassName");
    assert_refused(
        broken_rules(&dropped, Some(&old)),
        "spec.storage.storageClassName",
        "cannot change",
    );

    let added = manifest();
    assert_refused(
        broken_rules(&added, Some(&dropped)),
        "spec.storage.storageClassName",
        "cannot change",
    );
}

#[test]
fn storage_class_may_be_anything_at_creation_and_unchanged_later() {
    let chosen = with(manifest(), "spec/storage/storageClassName", json!("slow"));
    assert_eq!(broken_rules(&chosen, None), Vec::<String>::new());
    assert_eq!(broken_rules(&chosen, Some(&chosen)), Vec::<String>::new());

    let default_class = without(manifest(), "spec/storage/storageClassName");
    assert_eq!(
        broken_rules(&default_class, Some(&default_class)),
        Vec::<String>::new()
    );
}

#[test]
fn storage_size_cannot_change_after_creation() {
    let old = manifest();
    let grown = with(manifest(), "spec/storage/size", json!("20Gi"));
    assert_refused(
        broken_rules(&grown, Some(&old)),
        "spec.storage.size",
        "cannot change after creation",
    );
}

#[test]
fn other_fields_may_change() {
    let old = manifest();
    let new = with(manifest(), "spec/replicas", json!(5));
    let new = with(new, "spec/version", json!("0.2.0"));
    let new = with(new, "spec/storage/retainOnScaleDown", json!(true));
    assert_eq!(broken_rules(&new, Some(&old)), Vec::<String>::new());
}

#[test]
fn tls_is_chosen_at_creation_and_cannot_be_turned_on_or_off() {
    let secured = with(
        manifest(),
        "spec/tls",
        json!({ "secretName": "orders-tls" }),
    );
    assert_eq!(broken_rules(&secured, None), Vec::<String>::new());
    // Another Secret (a renewed certificate) is fine.
    let renewed = with(
        manifest(),
        "spec/tls",
        json!({ "secretName": "orders-tls-2" }),
    );
    assert_eq!(broken_rules(&renewed, Some(&secured)), Vec::<String>::new());

    let plain = manifest();
    assert_refused(
        broken_rules(&secured, Some(&plain)),
        "spec.tls",
        "cannot be turned on or off",
    );
    assert_refused(
        broken_rules(&plain, Some(&secured)),
        "spec.tls",
        "cannot be turned on or off",
    );
}

#[test]
fn restore_from_is_fixed_at_creation() {
    let restoring = with(
        manifest(),
        "spec/restoreFrom",
        json!({
            "location": "s3://backups/shop/orders/orders-20261206T120003.412Z.dengine-backup",
            "endpoint": "http://minio.storage:9000",
            "credentialsSecret": "backup-s3"
        }),
    );
    assert_eq!(broken_rules(&restoring, None), Vec::<String>::new());
    assert_eq!(
        broken_rules(&restoring, Some(&restoring)),
        Vec::<String>::new()
    );
    let other = with(
        restoring.clone(),
        "spec/restoreFrom/location",
        json!("s3://backups/shop/orders/orders-20261207T000000.000Z.dengine-backup"),
    );
    let plain = manifest();
    for (new, old) in [
        (&other, &restoring),
        (&plain, &restoring),
        (&restoring, &plain),
    ] {
        assert_refused(
            broken_rules(new, Some(old)),
            "spec.restoreFrom",
            "fixed at creation",
        );
    }
}

#[test]
fn backup_and_restore_endpoints_are_urls() {
    let backed_up = with(
        manifest(),
        "spec/backup",
        json!({ "schedule": "0 * * * *", "s3": { "bucket": "backups", "endpoint": "minio:9000" } }),
    );
    assert_refused(
        broken_rules(&backed_up, None),
        "spec.backup.s3.endpoint",
        "must be a URL",
    );
    let restoring = with(
        manifest(),
        "spec/restoreFrom",
        json!({ "location": "s3://backups/x.dengine-backup", "endpoint": "minio:9000" }),
    );
    assert_refused(
        broken_rules(&restoring, None),
        "spec.restoreFrom.endpoint",
        "must be a URL",
    );
}

#[test]
fn generated_certificates_are_chosen_at_creation() {
    let generated = with(
        manifest(),
        "spec/tls",
        json!({ "secretName": "orders-tls", "generate": true }),
    );
    let provided = with(
        manifest(),
        "spec/tls",
        json!({ "secretName": "orders-tls" }),
    );
    assert_eq!(
        broken_rules(&generated, Some(&generated)),
        Vec::<String>::new()
    );
    assert_refused(
        broken_rules(&generated, Some(&provided)),
        "spec.tls.generate",
        "fixed at creation",
    );
    assert_refused(
        broken_rules(&provided, Some(&generated)),
        "spec.tls.generate",
        "fixed at creation",
    );
    let moved = with(
        generated.clone(),
        "spec/tls/secretName",
        json!("orders-tls-2"),
    );
    assert_refused(
        broken_rules(&moved, Some(&generated)),
        "spec.tls.secretName",
        "fixed when the operator generates",
    );
    // A user's Secret may be renamed (a renewed certificate under a new name).
    let renamed = with(
        provided.clone(),
        "spec/tls/secretName",
        json!("orders-tls-2"),
    );
    assert_eq!(
        broken_rules(&renamed, Some(&provided)),
        Vec::<String>::new()
    );
}

#[test]
fn backups_go_to_exactly_one_destination() {
    let into_claim = with(
        manifest(),
        "spec/backup",
        json!({ "schedule": "0 * * * *", "persistentVolumeClaim": { "claimName": "orders-backups" } }),
    );
    assert_eq!(broken_rules(&into_claim, None), Vec::<String>::new());
    let both = with(
        into_claim.clone(),
        "spec/backup/s3",
        json!({ "bucket": "backups" }),
    );
    let neither = without(into_claim, "spec/backup/persistentVolumeClaim");
    for manifest in [both, neither] {
        assert_refused(
            broken_rules(&manifest, None),
            "spec.backup",
            "exactly one of s3 and persistentVolumeClaim",
        );
    }
}

#[test]
fn a_restore_reads_a_claim_without_s3_settings_or_dot_segments() {
    let from_claim = with(
        manifest(),
        "spec/restoreFrom",
        json!({ "location": "pvc://orders-backups/shop/orders/shop.orders-20261206T120003.412Z.dengine-backup" }),
    );
    assert_eq!(broken_rules(&from_claim, None), Vec::<String>::new());
    let with_credentials = with(
        from_claim.clone(),
        "spec/restoreFrom/credentialsSecret",
        json!("backup-s3"),
    );
    assert_refused(
        broken_rules(&with_credentials, None),
        "spec.restoreFrom.location",
        "endpoint and credentialsSecret are for s3://",
    );
    for escaping in [
        "pvc://orders-backups/../etc/passwd",
        "pvc://orders-backups/a/./b",
        "pvc://orders-backups/a/..",
    ] {
        let manifest = with(
            from_claim.clone(),
            "spec/restoreFrom/location",
            json!(escaping),
        );
        assert_refused(
            broken_rules(&manifest, None),
            "spec.restoreFrom.location",
            "must not hold . or .. path segments",
        );
    }
}

#[test]
fn backup_prefixes_hold_no_dot_segments() {
    for (destination, value) in [
        (
            "persistentVolumeClaim",
            json!({ "claimName": "orders-backups", "prefix": "shop/../x/" }),
        ),
        ("s3", json!({ "bucket": "backups", "prefix": "./x" })),
    ] {
        let manifest = with(
            manifest(),
            "spec/backup",
            json!({ "schedule": "0 * * * *", destination: value }),
        );
        assert_refused(
            broken_rules(&manifest, None),
            &format!("spec.backup.{destination}.prefix"),
            "must not hold . or .. path segments",
        );
    }
}
