//! The reconciler against a mocked Kubernetes API server: the exact objects it applies, the
//! status it writes and the Events it records, for bootstrap, growth, shrink, replacement of a
//! member that lost its volume, a rolling upgrade, a missing admin token, and a settled
//! cluster that it leaves alone.

mod mock;

use dengine_operator::crd::DEngineClusterSpec;
use dengine_operator::driver::MembershipChange;
use dengine_operator::objects;
use dengine_operator::observed::NodeId;
use mock::world::{condition, World, NAME, NS, TOKEN};
use serde_json::{json, Value};

/// Reconciles a one-member cluster from nothing to Running.
async fn bootstrapped(spec: DEngineClusterSpec) -> World {
    let mut world = World::new(spec);
    world.run_until(30, |w| w.running_with(1)).await;
    world
}

/// A cluster founded with one member, then grown to three through learners.
async fn grown_to_three() -> World {
    let mut world = bootstrapped(DEngineClusterSpec::example(1)).await;
    world.set_spec(&DEngineClusterSpec::example(3));
    world.run_until(60, |w| w.running_with(3)).await;
    world
}

/// Whether the cluster's StatefulSet was created.
fn has_stateful_set(world: &World) -> bool {
    let store = world.store.lock().unwrap();
    store.get("statefulsets", NS, NAME).is_some()
}

/// The pods the operator deleted, in order.
fn pod_deletes(world: &World) -> Vec<String> {
    world
        .store
        .lock()
        .unwrap()
        .writes
        .iter()
        .filter(|w| w.kind == "delete" && w.target.starts_with("pods/"))
        .map(|w| w.target.clone())
        .collect()
}

/// The cluster is Degraded for `reason`, with a message that says `words`.
fn assert_degraded(world: &World, reason: &str, words: &str) {
    let status = world.status();
    assert_eq!(status["phase"], "Degraded", "{status}");
    let degraded = condition(&status, "Degraded");
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], reason);
    assert!(
        degraded["message"]
            .as_str()
            .unwrap_or_default()
            .contains(words),
        "the message should say {words}: {degraded}"
    );
}

/// Whether the Secret `name` exists.
fn has_secret(world: &World, name: &str) -> bool {
    world
        .store
        .lock()
        .unwrap()
        .get("secrets", NS, name)
        .is_some()
}

fn object(world: &World, plural: &str, name: &str) -> Value {
    world
        .store
        .lock()
        .unwrap()
        .get(plural, NS, name)
        .cloned()
        .unwrap_or_else(|| panic!("{plural}/{name} exists"))
}

#[tokio::test]
async fn bootstrap_applies_the_owned_objects_and_founds_one_member() {
    let world = bootstrapped(DEngineClusterSpec::example(1)).await;
    let cluster = world.cluster();

    // Exactly what the builders make, owned by the cluster.
    let set = object(&world, "statefulsets", NAME);
    let built = serde_json::to_value(objects::stateful_set(&cluster, 1)).unwrap();
    assert_eq!(set["spec"], built["spec"]);
    assert_eq!(
        set["metadata"]["ownerReferences"][0]["kind"],
        "DEngineCluster"
    );
    let peers = object(&world, "services", "orders-peers");
    assert_eq!(peers["spec"]["clusterIP"], "None");
    assert_eq!(peers["spec"]["publishNotReadyAddresses"], true);
    assert!(world
        .store
        .lock()
        .unwrap()
        .get("services", NS, "orders-client")
        .is_some());
    let budget = object(&world, "poddisruptionbudgets", NAME);
    assert_eq!(budget["spec"]["minAvailable"], 1);
    // Founded: every pod started from now on joins; pod 0's volume is marked.
    let config = object(&world, "configmaps", "orders-config");
    assert_eq!(config["data"]["join"], "true");
    let claim = object(&world, "persistentvolumeclaims", "data-orders-0");
    assert_eq!(claim["metadata"]["annotations"][objects::CLAIM_MARK], "1");

    let status = world.status();
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["leader"], json!({ "nodeId": 1, "pod": "orders-0" }));
    assert_eq!(status["readyMembers"], 1);
    assert_eq!(
        status["members"],
        json!([{ "pod": "orders-0", "nodeId": 1, "role": "voter", "ready": true, "lag": 0 }])
    );
    assert_eq!(status["currentVersion"], "0.1.0");
    assert_eq!(status["targetVersion"], "0.1.0");
    assert_eq!(status["observedGeneration"], 1);
    let condition = |t: &str| condition(&status, t);
    assert_eq!(condition("Available")["status"], "True");
    assert_eq!(condition("Progressing")["status"], "False");
    assert_eq!(condition("Progressing")["reason"], "Settled");
    assert_eq!(condition("Degraded")["status"], "False");

    let events = world.event_reasons();
    let reasons: Vec<&str> = events
        .iter()
        .map(|e| e.split(':').next().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "AppliedObjects",
            "Bootstrapping",
            "ClaimedVolume",
            "Founded"
        ],
        "{events:?}"
    );
    assert_eq!(world.group.lock().unwrap().foundings, 1);
}

#[tokio::test]
async fn growth_adds_one_learner_at_a_time_and_promotes_it_once_caught_up() {
    let world = grown_to_three().await;

    let changes = world.group.lock().unwrap().changes.clone();
    let short: Vec<String> = changes
        .iter()
        .map(|c| match c {
            MembershipChange::AddLearner { id, peer_address } => {
                format!("add {id} {peer_address}")
            }
            MembershipChange::Promote { id } => format!("promote {id}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        short,
        [
            "add 2 orders-1.orders-peers.shop.svc:2380",
            "promote 2",
            "add 3 orders-2.orders-peers.shop.svc:2380",
            "promote 3",
        ]
    );
    // The StatefulSet grew by one only after the previous member was promoted.
    let replicas: Vec<Value> = world
        .store
        .lock()
        .unwrap()
        .writes_to(&format!("statefulsets/{NAME}"))
        .iter()
        .filter(|w| w.kind == "merge")
        .map(|w| w.body["spec"]["replicas"].clone())
        .collect();
    assert_eq!(replicas, [json!(1), json!(2), json!(3)]);
    let events = world.event_reasons();
    let growth: Vec<&str> = events
        .iter()
        .skip(4)
        .map(|e| e.split(':').next().unwrap())
        .collect();
    assert_eq!(
        growth,
        [
            "AppliedObjects",
            "Grew",
            "ClaimedVolume",
            "AddedLearner",
            "PromotedLearner",
            "Grew",
            "ClaimedVolume",
            "AddedLearner",
            "PromotedLearner"
        ],
        "{events:?}"
    );
    let budget = object(&world, "poddisruptionbudgets", NAME);
    assert_eq!(budget["spec"]["minAvailable"], 2);
    assert_eq!(world.group.lock().unwrap().foundings, 1);
    assert!(world.group.lock().unwrap().tokens.contains(TOKEN));
}

#[tokio::test]
async fn shrink_moves_leadership_off_removes_members_then_pods() {
    let mut world = grown_to_three().await;
    // Node 3 leads: it must hand over before it is removed.
    world.group.lock().unwrap().leader = Some(3);
    world.set_spec(&DEngineClusterSpec::example(1));
    world.run_until(60, |w| w.running_with(1)).await;

    let changes = world.group.lock().unwrap().changes.clone();
    let tail = &changes[4..];
    assert!(
        matches!(tail[0], MembershipChange::TransferLeadership { .. }),
        "{tail:?}"
    );
    assert!(tail.contains(&MembershipChange::Remove { id: NodeId(3) }));
    assert!(tail.contains(&MembershipChange::Remove { id: NodeId(2) }));
    let store = world.store.lock().unwrap();
    assert_eq!(
        store.get("statefulsets", NS, NAME).unwrap()["spec"]["replicas"],
        1
    );
    // retainOnScaleDown is false: the removed members' volumes went with their pods.
    assert!(store
        .get("persistentvolumeclaims", NS, "data-orders-2")
        .is_none());
    assert!(store
        .get("persistentvolumeclaims", NS, "data-orders-1")
        .is_none());
}

#[tokio::test]
async fn a_member_that_lost_its_volume_is_removed_and_added_again() {
    let mut world = grown_to_three().await;
    let before = world.group.lock().unwrap().changes.len();
    world.lose_volume(1);
    world.run_until(60, |w| w.running_with(3)).await;

    let changes = world.group.lock().unwrap().changes[before..].to_vec();
    assert_eq!(changes[0], MembershipChange::Remove { id: NodeId(2) });
    assert!(matches!(&changes[1], MembershipChange::AddLearner { id, .. } if *id == NodeId(2)));
    assert_eq!(changes[2], MembershipChange::Promote { id: NodeId(2) });
    assert_eq!(world.events_with("ReplacingMember"), 1);
    let claim = object(&world, "persistentvolumeclaims", "data-orders-1");
    assert_eq!(claim["metadata"]["annotations"][objects::CLAIM_MARK], "2");
    assert_eq!(world.group.lock().unwrap().foundings, 1);
}

#[tokio::test]
async fn a_rolling_upgrade_restarts_one_pod_at_a_time_and_the_leader_last() {
    let mut world = grown_to_three().await;
    world.group.lock().unwrap().leader = Some(2);
    let mut newer = DEngineClusterSpec::example(3);
    newer.version = "0.2.0".into();
    world.set_spec(&newer);
    world
        .run_until(60, |w| {
            w.running_with(3) && w.status()["currentVersion"] == "0.2.0"
        })
        .await;

    // Followers first, highest ordinal first; orders-1 (node 2) led, so it goes last.
    assert_eq!(
        pod_deletes(&world),
        ["pods/orders-2", "pods/orders-0", "pods/orders-1"]
    );
    let transfers = world
        .group
        .lock()
        .unwrap()
        .changes
        .iter()
        .filter(|c| matches!(c, MembershipChange::TransferLeadership { .. }))
        .count();
    assert_eq!(transfers, 1);
    // Every delete named the pod's uid, so a newer pod under the same name is never hit.
    let store = world.store.lock().unwrap();
    assert!(store
        .writes
        .iter()
        .filter(|w| w.kind == "delete" && w.target.starts_with("pods/"))
        .all(|w| w.body["preconditions"]["uid"].is_string()));
    let set = store.get("statefulsets", NS, NAME).unwrap();
    assert!(set["spec"]["template"]
        .to_string()
        .contains("dengine:0.2.0"));
}

#[tokio::test]
async fn a_missing_admin_token_secret_is_made_by_the_operator_and_owned_by_the_cluster() {
    let mut world = World::new(DEngineClusterSpec::example(1));
    world.store.lock().unwrap().remove("secrets", NS, "admin");
    world.run_until(30, |w| w.running_with(1)).await;

    let secret = object(&world, "secrets", "admin");
    let decoded: k8s_openapi::api::core::v1::Secret =
        serde_json::from_value(secret.clone()).expect("a Secret");
    let token = decoded.data.unwrap_or_default()["token"].0.clone();
    let token = String::from_utf8(token).expect("text");
    assert_eq!(token.len(), 64, "256 random bits, hex: {token}");
    assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "DEngineCluster");
    assert_eq!(owner["name"], NAME);
    assert_eq!(world.events_with("CreatedAdminToken"), 1);
    // Membership changes carry the token the operator made.
    world.set_spec(&DEngineClusterSpec::example(3));
    world.run_until(60, |w| w.running_with(3)).await;
    let tokens: Vec<String> = world.group.lock().unwrap().tokens.iter().cloned().collect();
    assert_eq!(tokens, vec![token]);
}

#[tokio::test]
async fn a_user_secret_without_the_token_key_is_reported_and_left_untouched() {
    let mut world = World::new(DEngineClusterSpec::example(1));
    let theirs = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "admin" },
        "data": { "password": "aHVudGVyMg==" },
    });
    {
        let mut store = world.store.lock().unwrap();
        store.remove("secrets", NS, "admin");
        store.create("secrets", NS, theirs);
    }
    let before = object(&world, "secrets", "admin");
    let _ = world.reconcile().await;
    assert_degraded(
        &world,
        "AdminTokenMissing",
        "Secret shop/admin has no key `token`",
    );
    assert!(!has_stateful_set(&world), "no pods without the token");
    assert_eq!(world.events_with("AdminTokenMissing"), 1);
    assert_eq!(
        object(&world, "secrets", "admin"),
        before,
        "their Secret is theirs"
    );
    assert!(world.store.lock().unwrap().writes_to("secrets").is_empty());
}

#[tokio::test]
async fn a_cluster_being_deleted_is_left_to_the_garbage_collector() {
    let mut world = bootstrapped(DEngineClusterSpec::example(1)).await;
    world
        .store
        .lock()
        .unwrap()
        .get_mut("dengineclusters", NS, NAME)
        .expect("the cluster")["metadata"]["deletionTimestamp"] = json!("2026-12-06T10:00:00Z");
    // Even a spec change seen during deletion makes no step.
    let mut spec = DEngineClusterSpec::example(3);
    spec.version = "0.2.0".into();
    world.set_spec(&spec);
    let writes_after_spec = world.store.lock().unwrap().writes.len();
    for _ in 0..3 {
        world.reconcile().await.expect("a reconcile");
    }
    let store = world.store.lock().unwrap();
    let new: Vec<_> = store.writes[writes_after_spec..]
        .iter()
        .map(|w| &w.target)
        .collect();
    assert!(new.is_empty(), "a deleted cluster got writes: {new:?}");
}

#[tokio::test]
async fn a_settled_cluster_is_left_alone_and_its_status_not_rewritten() {
    let mut world = bootstrapped(DEngineClusterSpec::example(1)).await;
    let writes_before = world.store.lock().unwrap().writes.len();
    for _ in 0..5 {
        world.reconcile().await.expect("a reconcile");
    }
    let store = world.store.lock().unwrap();
    let new: Vec<_> = store.writes[writes_before..]
        .iter()
        .map(|w| &w.target)
        .collect();
    assert!(new.is_empty(), "a settled cluster got writes: {new:?}");
}

#[tokio::test]
async fn a_paused_cluster_is_not_touched() {
    let mut spec = DEngineClusterSpec::example(1);
    spec.paused = true;
    let mut world = World::new(spec);
    for _ in 0..3 {
        world.reconcile().await.expect("a reconcile");
    }
    let store = world.store.lock().unwrap();
    assert!(store.get("statefulsets", NS, NAME).is_none());
    assert_eq!(
        store.get("dengineclusters", NS, NAME).unwrap()["status"]["phase"],
        "Paused"
    );
}

#[tokio::test]
async fn a_missing_tls_secret_is_reported_and_nothing_is_applied() {
    let mut spec = DEngineClusterSpec::example(1);
    spec.tls = Some(dengine_operator::crd::Tls {
        secret_name: "orders-tls".into(),
        generate: false,
    });
    let mut world = World::new(spec);
    let _ = world.reconcile().await;
    assert_degraded(
        &world,
        "TlsSecretInvalid",
        "Secret shop/orders-tls does not exist",
    );
    assert!(!has_stateful_set(&world), "no pods without the Secret");
}

fn generated_tls(replicas: i32) -> DEngineClusterSpec {
    let mut spec = DEngineClusterSpec::example(replicas);
    spec.tls = Some(dengine_operator::crd::Tls {
        secret_name: "orders-tls".into(),
        generate: true,
    });
    spec
}

/// With tls.generate the operator issues a CA and a certificate per member, points each node at
/// its own, and renews them before they expire with a rolling restart, the leader last.
#[tokio::test]
async fn generated_certificates_are_issued_and_renewed_with_a_rolling_restart() {
    let mut world = World::new(generated_tls(1));
    world.run_until(30, |w| w.running_with(1)).await;
    world.set_spec(&generated_tls(3));
    world.run_until(60, |w| w.running_with(3)).await;

    let members = object(&world, "secrets", "orders-tls");
    let keys: Vec<String> = members["data"]
        .as_object()
        .expect("data")
        .keys()
        .cloned()
        .collect();
    for ordinal in 0..7 {
        assert!(keys.contains(&format!("orders-{ordinal}.crt")), "{keys:?}");
        assert!(keys.contains(&format!("orders-{ordinal}.key")), "{keys:?}");
    }
    assert!(keys.contains(&"ca.crt".to_string()));
    let ca = object(&world, "secrets", "orders-ca");
    for key in ["ca.crt", "ca.key", "operator.crt", "operator.key"] {
        assert!(ca["data"][key].is_string(), "{key} in the CA Secret");
    }
    for secret in [&members, &ca] {
        assert_eq!(
            secret["metadata"]["ownerReferences"][0]["kind"],
            "DEngineCluster"
        );
    }
    // The CA's certificate, which is no secret, published for clients on its own.
    let bundle = object(&world, "configmaps", "orders-ca.crt");
    assert_eq!(
        Some(
            bundle["data"]["ca.crt"]
                .as_str()
                .unwrap()
                .as_bytes()
                .to_vec()
        ),
        base64_decoded(&ca["data"]["ca.crt"])
    );
    assert_eq!(
        bundle["metadata"]["ownerReferences"][0]["kind"],
        "DEngineCluster"
    );
    let status = world.status();
    let serial = status["certificates"]["serial"].clone();
    assert!(status["certificates"]["expires"].is_string(), "{status}");
    let ca_expires: k8s_openapi::jiff::Timestamp = status["certificates"]["caExpires"]
        .as_str()
        .expect("the CA's expiry in the status")
        .parse()
        .unwrap();
    let issued: k8s_openapi::jiff::Timestamp = status["certificates"]["issued"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ca_expires,
        issued + dengine_operator::certificates::CA_VALIDITY
    );
    let set = object(&world, "statefulsets", NAME);
    let template = &set["spec"]["template"];
    assert_eq!(
        template["metadata"]["annotations"]["dengine.io/certificates-serial"],
        serial
    );
    assert!(template
        .to_string()
        .contains("/etc/dengine/tls/$(POD_NAME).crt"));
    assert_eq!(world.events_with("IssuedCertificates"), 1);
    assert!(
        pod_deletes(&world).is_empty(),
        "no restart at founding or growth"
    );
    // Until a renewal is due, nothing is written: not the Secrets, not the status.
    let writes_before = world.store.lock().unwrap().writes.len();
    for _ in 0..3 {
        world.reconcile().await.expect("a reconcile");
    }
    let writes = world.store.lock().unwrap().writes.len();
    assert_eq!(
        writes, writes_before,
        "a settled cluster with issued certificates is left alone"
    );

    // A renewal is due: the certificates were issued long ago.
    world.group.lock().unwrap().leader = Some(2);
    world
        .store
        .lock()
        .unwrap()
        .get_mut("secrets", NS, "orders-tls")
        .expect("the members' Secret")["metadata"]["annotations"]
        ["dengine.io/certificates-issued"] = json!((k8s_openapi::jiff::Timestamp::now()
        - dengine_operator::certificates::LEAF_VALIDITY)
        .to_string());
    let before = members["data"]["orders-1.crt"].clone();
    world
        .run_until(60, |w| {
            w.running_with(3)
                && pod_deletes(w).len() == 3
                && w.status()["certificates"]["serial"] != serial
        })
        .await;
    let renewed = object(&world, "secrets", "orders-tls");
    assert_ne!(renewed["data"]["orders-1.crt"], before, "a new certificate");
    assert_eq!(
        renewed["data"]["ca.crt"], members["data"]["ca.crt"],
        "the same CA"
    );
    assert_eq!(
        world.status()["certificates"]["caExpires"].as_str(),
        Some(ca_expires.to_string().as_str()),
        "the CA's expiry read back from its Secret"
    );
    assert_eq!(object(&world, "configmaps", "orders-ca.crt"), bundle);
    assert_eq!(world.events_with("RenewedCertificates"), 1);
    // Followers first, the leader (node 2, pod 1) last.
    assert_eq!(
        pod_deletes(&world),
        ["pods/orders-2", "pods/orders-0", "pods/orders-1"]
    );
}

/// A day after an issue of the certificates, a pod still made with an older one (a rollout
/// that stopped) is named in the `CertificatesStale` condition and a Warning, once.
#[tokio::test]
async fn pods_left_on_older_certificates_are_reported() {
    let mut world = World::new(generated_tls(1));
    world.run_until(30, |w| w.running_with(1)).await;
    assert_eq!(
        condition(&world.status(), "CertificatesStale")["status"],
        "False"
    );
    let two_days_ago =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_hours(48);
    {
        let mut store = world.store.lock().unwrap();
        store
            .get_mut("secrets", NS, "orders-tls")
            .expect("the members' Secret")["metadata"]["annotations"]
            ["dengine.io/certificates-issued"] = json!(two_days_ago.to_string());
        store.get_mut("pods", NS, "orders-0").expect("pod 0")["metadata"]["annotations"]
            ["dengine.io/certificates-serial"] = json!("an-older-issue");
    }
    for _ in 0..3 {
        world.reconcile().await.expect("a reconcile");
    }
    let stale = condition(&world.status(), "CertificatesStale");
    assert_eq!(stale["status"], "True", "{stale}");
    assert!(
        stale["message"]
            .as_str()
            .unwrap()
            .starts_with("orders-0 still run the certificates issued before"),
        "{stale}"
    );
    assert_eq!(world.events_with("CertificatesStale"), 1);
}

/// A ConfigMap of the name the CA is published under that the user made is left as it is.
#[tokio::test]
async fn a_users_config_map_is_not_taken_for_the_published_ca() {
    let mut world = World::new(generated_tls(1));
    let theirs = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "orders-ca.crt" },
        "data": { "ca.crt": "their own" },
    });
    world.store.lock().unwrap().create("configmaps", NS, theirs);
    let before = object(&world, "configmaps", "orders-ca.crt");
    world.run_until(30, |w| w.running_with(1)).await;
    assert_eq!(object(&world, "configmaps", "orders-ca.crt"), before);
}

#[tokio::test]
async fn a_users_secret_is_never_taken_over_by_generated_certificates() {
    let mut world = World::new(generated_tls(1));
    let theirs = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": { "name": "orders-tls" },
        "data": { "tls.crt": "eA==" },
    });
    world.store.lock().unwrap().create("secrets", NS, theirs);
    let before = object(&world, "secrets", "orders-tls");
    let _ = world.reconcile().await;
    assert_degraded(&world, "TlsSecretInvalid", "was not made by the operator");
    assert_eq!(object(&world, "secrets", "orders-tls"), before);
    assert!(!has_secret(&world, "orders-ca"));
    assert!(!has_stateful_set(&world));
}

/// Members run with certificates of the cluster's CA: if its Secret is lost, a new CA would not
/// be trusted by members not yet restarted, so the operator refuses to make one.
#[tokio::test]
async fn a_lost_ca_is_not_replaced_under_running_members() {
    let mut world = World::new(generated_tls(1));
    world.run_until(30, |w| w.running_with(1)).await;
    let members = object(&world, "secrets", "orders-tls");
    world
        .store
        .lock()
        .unwrap()
        .remove("secrets", NS, "orders-ca");
    let _ = world.reconcile().await;
    assert_degraded(&world, "TlsSecretInvalid", "CA is gone");
    assert!(!has_secret(&world, "orders-ca"));
    assert_eq!(object(&world, "secrets", "orders-tls"), members);
}

#[tokio::test]
async fn the_ca_secret_cannot_double_as_the_members_secret() {
    let mut spec = generated_tls(1);
    spec.tls.as_mut().unwrap().secret_name = "orders-ca".into();
    let mut world = World::new(spec);
    let _ = world.reconcile().await;
    assert_degraded(&world, "TlsSecretInvalid", "is taken");
    assert!(!has_secret(&world, "orders-ca"));
}

/// A Secret's value as the API holds it (base64), decoded.
fn base64_decoded(value: &Value) -> Option<Vec<u8>> {
    let bytes: k8s_openapi::ByteString = serde_json::from_value(value.clone()).ok()?;
    Some(bytes.0)
}
