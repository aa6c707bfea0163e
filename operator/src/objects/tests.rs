//! The built objects: what a user relies on in each.

use k8s_openapi::api::core::v1::{Container, PodSpec, TopologySpreadConstraint};
use kube::api::ObjectMeta;

use super::*;
use crate::crd::{AppTemplate, DEngineCluster, DEngineClusterSpec};

fn cluster(spec: DEngineClusterSpec) -> DEngineCluster {
    let mut cluster = DEngineCluster::new("orders", spec);
    cluster.metadata = ObjectMeta {
        name: Some("orders".into()),
        namespace: Some("shop".into()),
        uid: Some("uid-1".into()),
        ..ObjectMeta::default()
    };
    cluster
}

fn with_app(mut spec: DEngineClusterSpec) -> DEngineClusterSpec {
    spec.app = Some(AppTemplate(k8s_openapi::api::core::v1::PodTemplateSpec {
        metadata: None,
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                image: Some("example/app:1".into()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
    }));
    spec
}

fn env<'a>(container: &'a Container, name: &str) -> Option<&'a k8s_openapi::api::core::v1::EnvVar> {
    container.env.as_ref()?.iter().find(|e| e.name == name)
}

#[test]
fn with_an_app_the_node_is_a_native_sidecar_listening_on_loopback() {
    let set = stateful_set(&cluster(with_app(DEngineClusterSpec::example(3))), 1);
    let pod = pod_spec(&set).expect("a pod spec");
    assert_eq!(pod.containers.len(), 1);
    assert_eq!(pod.containers[0].name, "app");
    let init = pod.init_containers.as_ref().expect("init containers");
    let node = &init[0];
    assert_eq!(node.name, "dengine");
    assert_eq!(node.restart_policy.as_deref(), Some("Always"));
    assert_eq!(
        env(node, "DENGINE_CLIENT_LISTEN").and_then(|e| e.value.as_deref()),
        Some("127.0.0.1:2379")
    );
    assert!(client_service(&cluster(with_app(DEngineClusterSpec::example(3)))).is_none());
}

#[test]
fn without_an_app_the_node_runs_alone_behind_a_client_service() {
    let c = cluster(DEngineClusterSpec::example(3));
    let set = stateful_set(&c, 1);
    let pod = pod_spec(&set).expect("a pod spec");
    assert_eq!(pod.containers.len(), 1);
    assert_eq!(pod.containers[0].name, "dengine");
    assert_eq!(pod.containers[0].restart_policy, None);
    assert_eq!(
        env(&pod.containers[0], "DENGINE_CLIENT_LISTEN").and_then(|e| e.value.as_deref()),
        Some("0.0.0.0:2379")
    );
    let service = client_service(&c).expect("a client service");
    assert_eq!(service.metadata.name.as_deref(), Some("orders-client"));
}

#[test]
fn pods_are_restarted_only_by_the_operator_and_start_together() {
    let set = stateful_set(&cluster(DEngineClusterSpec::example(3)), 2);
    let spec = set.spec.as_ref().expect("spec");
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(
        spec.update_strategy
            .as_ref()
            .and_then(|s| s.type_.as_deref()),
        Some("OnDelete")
    );
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    assert_eq!(spec.service_name.as_deref(), Some("orders-peers"));
}

#[test]
fn the_node_learns_founding_from_the_config_map_and_its_address_from_its_pod_name() {
    let set = stateful_set(&cluster(DEngineClusterSpec::example(3)), 1);
    let node = &pod_spec(&set).expect("pod").containers[0];
    let join = env(node, "DENGINE_JOIN")
        .and_then(|e| e.value_from.as_ref())
        .and_then(|v| v.config_map_key_ref.as_ref())
        .expect("DENGINE_JOIN from the ConfigMap");
    assert_eq!(join.name, "orders-config");
    assert_eq!(join.key, JOIN_KEY);
    assert_eq!(
        env(node, "DENGINE_ADVERTISE_PEER").and_then(|e| e.value.as_deref()),
        Some("$(POD_NAME).orders-peers.shop.svc:2380")
    );
    assert_eq!(
        env(node, "DENGINE_INITIAL_CLUSTER").and_then(|e| e.value.as_deref()),
        Some("1=orders-0.orders-peers.shop.svc:2380")
    );
    assert_eq!(
        env(node, "DENGINE_CLUSTER_TOKEN").and_then(|e| e.value.as_deref()),
        Some("shop/orders")
    );
    let config = config_map(&cluster(DEngineClusterSpec::example(3)), false);
    assert_eq!(
        config
            .data
            .as_ref()
            .and_then(|d| d.get(JOIN_KEY))
            .map(String::as_str),
        Some("false")
    );
}

#[test]
fn the_disruption_budget_keeps_a_quorum() {
    for (replicas, quorum) in [(1, 1), (3, 2), (5, 3), (7, 4)] {
        let budget = disruption_budget(&cluster(DEngineClusterSpec::example(replicas)));
        let min = budget.spec.and_then(|s| s.min_available);
        assert_eq!(
            min,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(quorum)),
            "{replicas} replicas"
        );
    }
}

#[test]
fn members_are_spread_across_nodes_unless_turned_off() {
    let spread = stateful_set(&cluster(DEngineClusterSpec::example(3)), 1);
    let anti = pod_spec(&spread)
        .and_then(|p| p.affinity.as_ref())
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .expect("a required anti-affinity");
    assert_eq!(anti[0].topology_key, "kubernetes.io/hostname");

    let mut spec = DEngineClusterSpec::example(3);
    spec.scheduling.spread_across_nodes = false;
    let packed = stateful_set(&cluster(spec), 1);
    assert!(pod_spec(&packed)
        .and_then(|p| p.affinity.as_ref())
        .is_none());
}

#[test]
fn members_are_spread_across_zones_where_the_scheduler_can_unless_told_otherwise() {
    let zone_spread = |spread| {
        let mut spec = DEngineClusterSpec::example(3);
        spec.scheduling.spread_across_zones = spread;
        let set = stateful_set(&cluster(spec), 1);
        pod_spec(&set)
            .and_then(|p| p.topology_spread_constraints.clone())
            .unwrap_or_default()
    };
    let preferred = zone_spread(crate::crd::ZoneSpread::Preferred);
    assert_eq!(preferred.len(), 1);
    assert_eq!(preferred[0].topology_key, "topology.kubernetes.io/zone");
    assert_eq!(preferred[0].when_unsatisfiable, "ScheduleAnyway");
    assert_eq!(preferred[0].max_skew, 1);
    assert_eq!(
        preferred[0]
            .label_selector
            .as_ref()
            .and_then(|s| s.match_labels.clone()),
        Some(selector_labels(&cluster(DEngineClusterSpec::example(3))))
    );
    assert_eq!(
        zone_spread(crate::crd::ZoneSpread::Required)[0].when_unsatisfiable,
        "DoNotSchedule"
    );
    assert!(zone_spread(crate::crd::ZoneSpread::Off).is_empty());

    // The user's own constraints are kept beside it.
    let mut spec = DEngineClusterSpec::example(3);
    spec.scheduling.topology_spread_constraints = vec![TopologySpreadConstraint {
        max_skew: 2,
        topology_key: "example.com/rack".into(),
        when_unsatisfiable: "DoNotSchedule".into(),
        ..TopologySpreadConstraint::default()
    }];
    let set = stateful_set(&cluster(spec), 1);
    let keys: Vec<_> = pod_spec(&set)
        .and_then(|p| p.topology_spread_constraints.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.topology_key)
        .collect();
    assert_eq!(keys, ["example.com/rack", "topology.kubernetes.io/zone"]);

    // A zone constraint of the user's own replaces the generated one.
    let mut spec = DEngineClusterSpec::example(3);
    spec.scheduling.topology_spread_constraints = vec![TopologySpreadConstraint {
        max_skew: 1,
        topology_key: "topology.kubernetes.io/zone".into(),
        when_unsatisfiable: "ScheduleAnyway".into(),
        ..TopologySpreadConstraint::default()
    }];
    let set = stateful_set(&cluster(spec.clone()), 1);
    let constraints = pod_spec(&set)
        .and_then(|p| p.topology_spread_constraints.clone())
        .unwrap_or_default();
    assert_eq!(constraints, spec.scheduling.topology_spread_constraints);
}

/// The node runs as a native sidecar (an init container); the Endpoints controller of
/// Kubernetes 1.28 resolves named target ports against regular containers only, so a named
/// target left the peers' Endpoints empty there.
#[test]
fn services_target_the_node_ports_by_number() {
    let mut spec = with_app(DEngineClusterSpec::example(3));
    spec.ports.peer = 12380;
    let peers = peer_service(&cluster(spec));
    for port in peers.spec.and_then(|s| s.ports).expect("ports") {
        assert_eq!(
            port.target_port,
            Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port.port)),
            "{:?}",
            port.name
        );
    }
    let client =
        client_service(&cluster(DEngineClusterSpec::example(3))).expect("a client service");
    let ports = client.spec.and_then(|s| s.ports).expect("ports");
    assert_eq!(
        ports[0].target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(2379))
    );
}

#[test]
fn the_image_pull_policy_is_the_specs_or_kubernetes_default() {
    let node = |spec: &DEngineClusterSpec| {
        let set = stateful_set(&cluster(spec.clone()), 1);
        pod_spec(&set).expect("a pod spec").containers[0]
            .image_pull_policy
            .clone()
    };
    let mut spec = DEngineClusterSpec::example(3);
    assert_eq!(node(&spec), None, "unset: Kubernetes decides by the tag");
    spec.image_pull_policy = Some(crate::crd::ImagePullPolicy::Never);
    assert_eq!(node(&spec).as_deref(), Some("Never"));
}

#[test]
fn every_object_is_owned_by_the_cluster() {
    let c = cluster(DEngineClusterSpec::example(3));
    let metas = [
        stateful_set(&c, 1).metadata,
        config_map(&c, true).metadata,
        peer_service(&c).metadata,
        disruption_budget(&c).metadata,
    ];
    for meta in metas {
        let owner = &meta.owner_references.expect("an owner reference")[0];
        assert_eq!(owner.uid, "uid-1");
        assert_eq!(owner.kind, "DEngineCluster");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(meta.namespace.as_deref(), Some("shop"));
    }
}

#[test]
fn the_hash_tells_a_new_version_but_not_new_replicas() {
    let c = cluster(DEngineClusterSpec::example(3));
    let hash = |s: &k8s_openapi::api::apps::v1::StatefulSet| {
        s.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(SPEC_HASH))
            .cloned()
    };
    assert_eq!(hash(&stateful_set(&c, 1)), hash(&stateful_set(&c, 3)));
    let mut newer = DEngineClusterSpec::example(3);
    newer.version = "0.2.0".into();
    assert_ne!(
        hash(&stateful_set(&c, 1)),
        hash(&stateful_set(&cluster(newer), 1))
    );
}

#[test]
fn tls_mounts_the_secret_and_turns_on_mutual_tls() {
    let mut spec = DEngineClusterSpec::example(3);
    spec.tls = Some(crate::crd::Tls {
        secret_name: "orders-tls".into(),
        generate: false,
    });
    let alone = stateful_set(&cluster(spec.clone()), 1);
    let pod = pod_spec(&alone).expect("pod");
    let node = &pod.containers[0];
    assert_eq!(
        env(node, "DENGINE_TLS_CA_FILE").and_then(|e| e.value.as_deref()),
        Some("/etc/dengine/tls/ca.crt")
    );
    // Alone, the node serves clients on the pod network: over TLS too.
    assert_eq!(
        env(node, "DENGINE_CLIENT_TLS").and_then(|e| e.value.as_deref()),
        Some("true")
    );
    let volume = pod
        .volumes
        .as_ref()
        .and_then(|v| v.iter().find(|v| v.name == "tls"))
        .and_then(|v| v.secret.as_ref())
        .expect("the TLS Secret as a volume");
    assert_eq!(volume.secret_name.as_deref(), Some("orders-tls"));

    // Beside an application the client listener stays on loopback, without TLS.
    let beside = stateful_set(&cluster(with_app(spec)), 1);
    let node = &pod_spec(&beside)
        .expect("pod")
        .init_containers
        .as_ref()
        .expect("init")[0];
    assert!(env(node, "DENGINE_TLS_CERT_FILE").is_some());
    assert!(env(node, "DENGINE_CLIENT_TLS").is_none());

    let plain = stateful_set(&cluster(DEngineClusterSpec::example(3)), 1);
    let node = &pod_spec(&plain).expect("pod").containers[0];
    assert!(env(node, "DENGINE_TLS_CERT_FILE").is_none());
}

fn restoring(spec: DEngineClusterSpec) -> DEngineClusterSpec {
    DEngineClusterSpec {
        restore_from: Some(crate::crd::RestoreFrom {
            location: "s3://backups/shop/orders/o.dengine-backup".into(),
            access: crate::crd::S3Access {
                endpoint: None,
                region: "eu-west-1".into(),
                virtual_hosted_style: true,
                credentials_secret: Some("backup-s3".into()),
            },
        }),
        ..spec
    }
}

#[test]
fn a_cluster_founded_from_a_backup_fetches_it_before_the_node_starts() {
    for spec in [
        restoring(DEngineClusterSpec::example(3)),
        restoring(with_app(DEngineClusterSpec::example(3))),
    ] {
        let c = cluster(spec);
        let set = stateful_set(&c, 1);
        let pod = pod_spec(&set).expect("a pod spec");
        let init = pod.init_containers.as_ref().expect("init containers");
        let restore = &init[0];
        assert_eq!(
            restore.name, RESTORE_CONTAINER_NAME,
            "first, before the node"
        );
        assert_eq!(
            restore.image.as_deref(),
            Some("ghcr.io/d-engine/dengine:0.1.0")
        );
        let args = restore.args.clone().unwrap_or_default();
        assert_eq!(
            args[..4],
            [
                "snapshot",
                "fetch",
                "s3://backups/shop/orders/o.dengine-backup",
                RESTORE_FILE
            ]
        );
        assert!(args.contains(&"--virtual-hosted-style".to_string()));
        assert_eq!(
            env(restore, "AWS_REGION").and_then(|e| e.value.as_deref()),
            Some("eu-west-1")
        );
        let key = env(restore, "AWS_SECRET_ACCESS_KEY")
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.secret_key_ref.as_ref())
            .expect("credentials from the Secret");
        assert_eq!(key.name, "backup-s3");
        assert_eq!(
            restore.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        // The node reads the backup's path from the founding record (empty once founded).
        let node = pod
            .containers
            .iter()
            .chain(init)
            .find(|c| c.name == "dengine")
            .expect("the node");
        let path = env(node, "DENGINE_RESTORE_FROM")
            .and_then(|e| e.value_from.as_ref())
            .and_then(|v| v.config_map_key_ref.as_ref())
            .expect("from the ConfigMap");
        assert_eq!(path.key, RESTORE_KEY);
        assert_eq!(
            config_map(&c, false).data.unwrap()[RESTORE_KEY],
            RESTORE_FILE
        );
        assert_eq!(config_map(&c, true).data.unwrap()[RESTORE_KEY], "");
    }
    // Without restoreFrom, none of it.
    let plain = cluster(DEngineClusterSpec::example(3));
    let set = stateful_set(&plain, 1);
    let pod = pod_spec(&set).expect("a pod spec");
    assert!(pod.init_containers.is_none());
    assert!(env(&pod.containers[0], "DENGINE_RESTORE_FROM").is_none());
    assert!(!config_map(&plain, false)
        .data
        .unwrap()
        .contains_key(RESTORE_KEY));
}

mod backup_jobs {
    use super::*;
    use crate::crd::{Tls, VolumeDestination};

    fn claim() -> VolumeDestination {
        VolumeDestination {
            claim_name: "orders-backups".into(),
            prefix: Some(String::new()),
        }
    }

    fn secret_volume(job: &k8s_openapi::api::batch::v1::Job) -> (String, Vec<String>) {
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        let secret = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == "tls")
            .and_then(|v| v.secret.clone())
            .expect("the TLS volume");
        let keys = secret.items.unwrap().into_iter().map(|i| i.key).collect();
        (secret.secret_name.unwrap(), keys)
    }

    #[test]
    fn with_issued_certificates_the_job_presents_the_operators_and_never_sees_the_ca_key() {
        let mut spec = DEngineClusterSpec::example(3);
        spec.tls = Some(Tls {
            secret_name: "orders-tls".into(),
            generate: true,
        });
        let job = backup_job(&cluster(spec), "orders-backup-1", &claim(), 2, 5);
        let (secret, keys) = secret_volume(&job);
        assert_eq!(secret, "orders-ca");
        assert_eq!(keys, ["ca.crt", "operator.crt", "operator.key"]);
        let container = &job
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let args = container.args.clone().unwrap();
        assert_eq!(args[1], "https://orders-2.orders-peers.shop.svc:2380");
        assert!(
            !args.contains(&"--prefix".to_string()),
            "an empty prefix: {args:?}"
        );
        assert_eq!(
            env(container, "DENGINE_CERT").and_then(|e| e.value.clone()),
            Some("/etc/dengine/tls/tls.crt".into())
        );

        let mut spec = DEngineClusterSpec::example(3);
        spec.tls = Some(Tls {
            secret_name: "orders-tls".into(),
            generate: false,
        });
        let job = backup_job(&cluster(spec), "orders-backup-1", &claim(), 0, 5);
        assert_eq!(
            secret_volume(&job),
            (
                "orders-tls".into(),
                vec!["ca.crt".into(), "tls.crt".into(), "tls.key".into()]
            )
        );
    }

    #[test]
    fn job_names_stay_valid_label_values_and_never_shared_by_two_clusters() {
        assert_eq!(
            backup_job_name("orders", "uid-1", 1_765_000_000),
            "orders-backup-1765000000"
        );
        let long = |end: &str| format!("{}-{end}", "a".repeat(60));
        let one = backup_job_name(&long("x"), "5f1c2e9a-aaaa", 1_765_000_000);
        let other = backup_job_name(&long("y"), "77d0b3c1-bbbb", 1_765_000_000);
        for name in [&one, &other] {
            assert!(name.len() <= 63, "{name}");
            assert!(name.ends_with("-backup-1765000000"), "{name}");
            assert!(!name.contains("--"), "{name}");
        }
        assert_ne!(one, other, "names that start alike, told apart by the uid");
    }
}
