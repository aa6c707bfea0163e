//! Backups through the reconciler, against the mocked Kubernetes API and an in-memory bucket:
//! a backup asked for with the annotation is written whole, checked and reported (status,
//! condition, Event); retention keeps the newest; a broken stream, missing credentials, a
//! request without a destination and a bad schedule each leave nothing behind and say why.
//! And a cluster founded from a backup: pod 0's restore container, the ConfigMap that points
//! the founding node at the file and no later member, and the status of the fetch.

mod mock;

use dengine_operator::crd::{
    BackupSpec, DEngineClusterSpec, RestoreFrom, S3Access, S3Destination, VolumeDestination,
};
use dengine_operator::objects::RESTORE_FILE;
use futures::TryStreamExt;
use mock::raft::{simulated_revision, simulated_state};
use mock::world::{condition, World, NAME, NS};
use object_store::path::Path;
use object_store::{ObjectStore, PutPayload};
use serde_json::{json, Value};

fn backed_up(schedule: &str, keep: u32) -> DEngineClusterSpec {
    let mut spec = DEngineClusterSpec::example(1);
    spec.backup = Some(BackupSpec {
        schedule: schedule.into(),
        keep,
        s3: Some(S3Destination {
            bucket: "backups".into(),
            prefix: None,
            access: S3Access {
                endpoint: Some("http://127.0.0.1:9".into()),
                credentials_secret: Some("s3".into()),
                ..S3Access::default()
            },
        }),
        persistent_volume_claim: None,
    });
    spec
}

/// A founded cluster with the credentials Secret its backups name.
async fn running(spec: DEngineClusterSpec) -> World {
    let mut world = World::new(spec);
    world.store.lock().unwrap().create(
        "secrets",
        NS,
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": { "name": "s3" },
            "data": {
                "AWS_ACCESS_KEY_ID": "a2V5",
                "AWS_SECRET_ACCESS_KEY": "c2VjcmV0",
            },
        }),
    );
    world.run_until(30, |w| w.running_with(1)).await;
    world
}

/// A user asks for a backup now.
fn request_backup(world: &World, value: &str) {
    world
        .store
        .lock()
        .unwrap()
        .get_mut("dengineclusters", NS, NAME)
        .expect("the cluster")["metadata"]["annotations"]["dengine.io/backup-requested"] =
        json!(value);
}

/// Reconciles, letting the backup task run between reconciles, until `done` holds.
async fn reconcile_until(world: &mut World, done: impl Fn(&Value) -> bool) {
    for _ in 0..50 {
        let _ = world.reconcile().await;
        if done(&world.status()) {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!(
        "not done after 50 reconciles; events: {:?}; status: {}",
        world.event_reasons(),
        serde_json::to_string_pretty(&world.status()).unwrap()
    );
}

async fn objects(world: &World) -> Vec<String> {
    let mut names: Vec<String> = world
        .backups
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}

#[tokio::test]
async fn a_requested_backup_is_written_whole_checked_and_reported() {
    let mut world = running(backed_up("0 0 1 1 *", 7)).await;
    request_backup(&world, "first");
    reconcile_until(&mut world, |s| !s["backup"]["lastSuccessful"].is_null()).await;

    let status = world.status();
    let last = &status["backup"]["lastSuccessful"];
    let stored = objects(&world).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        stored[0].starts_with("shop/orders/shop.orders-") && stored[0].ends_with(".dengine-backup"),
        "{stored:?}"
    );
    assert_eq!(last["location"], format!("s3://backups/{}", stored[0]));
    let commit = world.group.lock().unwrap().commit;
    assert_eq!(last["revision"], json!(simulated_revision(commit)));
    assert_eq!(last["index"], json!(commit));
    assert_eq!(status["backup"]["lastRequest"], "first");
    assert!(status["backup"]["running"].is_null());
    let ok = condition(&status, "BackupFailed");
    assert_eq!(ok["status"], "False");
    assert_eq!(ok["reason"], "BackupSucceeded");
    assert_eq!(world.events_with("BackupSucceeded"), 1);

    // The object is the file `dengine snapshot save` writes: every restore path reads it.
    let bytes = world
        .backups
        .get(&Path::from(stored[0].as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(last["sizeBytes"], json!(bytes.len()));
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &bytes).unwrap();
    let (_, data) = dengine_proto::backup::read(file.path()).expect("a valid backup");
    assert_eq!(data, simulated_state(commit));
    assert_eq!(
        world.group.lock().unwrap().backups_from,
        vec![1],
        "from the leader"
    );

    // The request is served once.
    for _ in 0..3 {
        world.reconcile().await.expect("a reconcile");
    }
    assert_eq!(world.group.lock().unwrap().backups_from.len(), 1);
}

/// The outcome of a backup is written until a status holding it lands: a failed status write
/// and a reconcile reading a status from before it (a cache behind) neither lose it nor take
/// the backup for one interrupted.
#[tokio::test]
async fn an_outcome_survives_a_failed_status_write_and_a_stale_read() {
    let mut world = running(backed_up("0 0 1 1 *", 7)).await;
    request_backup(&world, "1");
    reconcile_until(&mut world, |s| !s["backup"]["running"].is_null()).await;
    let from_before = world.status();
    world.store.lock().unwrap().refuse_status_writes = 1;
    reconcile_until(&mut world, |s| !s["backup"]["lastSuccessful"].is_null()).await;
    assert!(
        world.results.iter().any(|r| r.is_err()),
        "a status write was refused"
    );
    let written = world.status()["backup"]["lastSuccessful"].clone();

    world
        .store
        .lock()
        .unwrap()
        .get_mut("dengineclusters", NS, NAME)
        .expect("the cluster")["status"] = from_before;
    world.reconcile().await.expect("a reconcile");
    let status = world.status();
    assert_eq!(status["backup"]["lastSuccessful"], written);
    assert!(status["backup"]["running"].is_null());
    assert!(status["backup"]["lastFailed"].is_null(), "{status}");
    assert_eq!(world.events_with("BackupSucceeded"), 1, "announced once");
    assert_eq!(world.events_with("BackupFailed"), 0);
}

#[tokio::test]
async fn retention_keeps_the_newest_backups_of_this_cluster() {
    let mut world = running(backed_up("0 0 1 1 *", 2)).await;
    let old = [
        "shop/orders/shop.orders-20250101T000000.000Z.dengine-backup",
        "shop/orders/shop.orders-20250102T000000.000Z.dengine-backup",
        "shop/orders/shop.orders-20250103T000000.000Z.dengine-backup",
    ];
    let theirs = "shop/orders/notes.txt";
    for name in old.iter().chain([&theirs]) {
        world
            .backups
            .put(&Path::from(*name), PutPayload::from_static(b"old"))
            .await
            .unwrap();
    }
    request_backup(&world, "now");
    reconcile_until(&mut world, |s| !s["backup"]["lastSuccessful"].is_null()).await;

    let stored = objects(&world).await;
    let location = world.status()["backup"]["lastSuccessful"]["location"]
        .as_str()
        .unwrap()
        .trim_start_matches("s3://backups/")
        .to_string();
    let mut expected = vec![theirs.to_string(), old[2].to_string(), location];
    expected.sort();
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn a_broken_backup_stream_fails_and_leaves_nothing_behind() {
    let mut world = running(backed_up("0 0 1 1 *", 7)).await;
    world.group.lock().unwrap().backups_break = true;
    request_backup(&world, "1");
    reconcile_until(&mut world, |s| !s["backup"]["lastFailed"].is_null()).await;

    let status = world.status();
    assert_eq!(status["backup"]["lastFailed"]["reason"], "BackupCorrupt");
    let failed = condition(&status, "BackupFailed");
    assert_eq!(failed["status"], "True");
    assert_eq!(failed["reason"], "BackupCorrupt");
    assert!(failed["message"].as_str().unwrap().contains("ended after"));
    assert_eq!(world.events_with("BackupFailed"), 1);
    assert!(objects(&world).await.is_empty());

    // The next one that works clears the condition.
    world.group.lock().unwrap().backups_break = false;
    request_backup(&world, "2");
    reconcile_until(&mut world, |s| !s["backup"]["lastSuccessful"].is_null()).await;
    assert_eq!(
        condition(&world.status(), "BackupFailed")["status"],
        "False"
    );
}

#[tokio::test]
async fn missing_credentials_are_reported_and_nothing_is_taken() {
    let mut world = running(backed_up("0 0 1 1 *", 7)).await;
    world.store.lock().unwrap().remove("secrets", NS, "s3");
    request_backup(&world, "1");
    reconcile_until(&mut world, |s| !s["backup"]["lastFailed"].is_null()).await;
    let failed = condition(&world.status(), "BackupFailed");
    assert_eq!(failed["reason"], "CredentialsInvalid");
    assert!(failed["message"]
        .as_str()
        .unwrap()
        .contains("Secret shop/s3 does not exist"));
    assert!(world.group.lock().unwrap().backups_from.is_empty());
}

#[tokio::test]
async fn a_request_without_a_destination_says_so() {
    let mut world = running(DEngineClusterSpec::example(1)).await;
    request_backup(&world, "1");
    reconcile_until(&mut world, |s| !s["backup"]["lastFailed"].is_null()).await;
    let failed = condition(&world.status(), "BackupFailed");
    assert_eq!(failed["reason"], "NotConfigured");
    assert!(failed["message"].as_str().unwrap().contains("spec.backup"));
    assert_eq!(world.events_with("BackupFailed"), 1);
}

#[tokio::test]
async fn a_schedule_that_does_not_parse_is_reported_once() {
    let mut world = running(backed_up("61 * * * *", 7)).await;
    reconcile_until(&mut world, |s| {
        s["conditions"]
            .as_array()
            .is_some_and(|all| all.iter().any(|c| c["reason"] == "InvalidSchedule"))
    })
    .await;
    for _ in 0..3 {
        world.reconcile().await.expect("a reconcile");
    }
    let failed = condition(&world.status(), "BackupFailed");
    assert_eq!(failed["status"], "True");
    assert!(failed["message"]
        .as_str()
        .unwrap()
        .contains("not a cron expression of five fields"));
    assert_eq!(world.events_with("BackupFailed"), 1);
    assert!(world.group.lock().unwrap().backups_from.is_empty());
}

const BACKUP: &str = "s3://backups/shop/orders/orders-20261206T120003.412Z.dengine-backup";

fn restoring() -> DEngineClusterSpec {
    let mut spec = DEngineClusterSpec::example(1);
    spec.restore_from = Some(RestoreFrom {
        location: BACKUP.into(),
        access: S3Access {
            endpoint: Some("http://minio.storage:9000".into()),
            credentials_secret: Some("s3".into()),
            ..S3Access::default()
        },
    });
    spec
}

fn pod_exists(world: &World) -> bool {
    world
        .store
        .lock()
        .unwrap()
        .get("pods", NS, "orders-0")
        .is_some()
}

/// What the kubelet reports of pod 0's restore container.
fn restore_container_status(world: &World, state: Value, last_state: Value) {
    let mut store = world.store.lock().unwrap();
    let pod = store.get_mut("pods", NS, "orders-0").expect("pod 0");
    pod["status"]["initContainerStatuses"] = json!([{
        "name": "restore", "image": "ghcr.io/d-engine/dengine:0.1.0", "imageID": "",
        "ready": false, "restartCount": 1, "state": state, "lastState": last_state,
    }]);
}

fn restore_key(world: &World) -> Value {
    world
        .store
        .lock()
        .unwrap()
        .get("configmaps", NS, "orders-config")
        .expect("the ConfigMap")["data"]["restore-from"]
        .clone()
}

#[tokio::test]
async fn a_cluster_founded_from_a_backup_fetches_it_in_pod_0_then_never_again() {
    let mut world = World::new(restoring());
    world.run_until(10, pod_exists).await;
    // Until the founding is recorded the founding node is pointed at the file.
    assert_eq!(restore_key(&world), json!(RESTORE_FILE));
    let report = json!({
        "location": BACKUP, "fetched": true, "file": RESTORE_FILE, "cluster_id": "2a",
        "index": 96330, "term": 4, "revision": 48211, "bytes": 7340000, "file_bytes": 7340211,
    });
    restore_container_status(
        &world,
        json!({ "terminated": {
            "exitCode": 0, "reason": "Completed", "message": report.to_string(),
            "finishedAt": "2026-12-06T12:10:00Z",
        } }),
        json!({}),
    );
    world.run_until(30, |w| w.running_with(1)).await;
    let status = world.status();
    let restore = &status["restore"];
    assert_eq!(restore["location"], BACKUP);
    assert_eq!(restore["fetched"], "2026-12-06T12:10:00Z");
    assert_eq!(restore["revision"], 48211);
    assert_eq!(restore["index"], 96330);
    assert_eq!(restore["sizeBytes"], 7340211);
    let restored = condition(&status, "RestoreFailed");
    assert_eq!(restored["status"], "False");
    assert_eq!(restored["reason"], "Restored");
    assert_eq!(world.events_with("RestoreFetched"), 1);
    // Founded: members added from now on join, and none restores.
    assert_eq!(restore_key(&world), json!(""));
    let set = world
        .store
        .lock()
        .unwrap()
        .get("statefulsets", NS, NAME)
        .cloned()
        .expect("the StatefulSet");
    let init = set["spec"]["template"]["spec"]["initContainers"][0].clone();
    assert_eq!(init["name"], "restore");
    assert!(init["args"].to_string().contains(BACKUP));
}

#[tokio::test]
async fn a_backup_pod_0_cannot_fetch_is_reported_once_with_its_error() {
    let mut world = World::new(restoring());
    world.run_until(10, pod_exists).await;
    let error = "Error: fetching s3://backups/x: Object at location x not found: NoSuchKey";
    restore_container_status(
        &world,
        json!({ "waiting": { "reason": "CrashLoopBackOff" } }),
        json!({ "terminated": { "exitCode": 1, "reason": "Error", "message": error } }),
    );
    for _ in 0..3 {
        let _ = world.reconcile().await;
    }
    let status = world.status();
    let failed = condition(&status, "RestoreFailed");
    assert_eq!(failed["status"], "True");
    assert_eq!(failed["reason"], "FetchFailed");
    assert!(
        failed["message"].as_str().unwrap().contains("NoSuchKey"),
        "{failed}"
    );
    assert!(status["restore"]["fetched"].is_null());
    assert_eq!(world.events_with("RestoreFailed"), 1);
}

const BACKUP_IN_CLAIM: &str =
    "pvc://orders-backups/shop/orders/shop.orders-20261206T120003.412Z.dengine-backup";

fn template_of(world: &World) -> Value {
    world
        .store
        .lock()
        .unwrap()
        .get("statefulsets", NS, NAME)
        .expect("the StatefulSet")["spec"]["template"]
        .clone()
}

fn mounts_backup_claim(template: &Value) -> bool {
    template["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|v| v["persistentVolumeClaim"]["claimName"] == "orders-backups")
}

/// A backup in a claim: pod 0 mounts the claim read-only until the founding is recorded; then
/// the claim leaves the template, pod 0 restarts once (its own upgrade), and the members added
/// after never mount it, so a ReadWriteOnce claim never keeps them from scheduling.
#[tokio::test]
async fn a_cluster_founded_from_a_backup_in_a_claim_lets_go_of_the_claim_once_founded() {
    let mut spec = DEngineClusterSpec::example(3);
    spec.restore_from = Some(RestoreFrom {
        location: BACKUP_IN_CLAIM.into(),
        access: S3Access::default(),
    });
    let mut world = World::new(spec);
    world.run_until(10, pod_exists).await;
    let template = template_of(&world);
    assert!(mounts_backup_claim(&template), "{template}");
    let restore = &template["spec"]["initContainers"][0];
    assert_eq!(restore["name"], "restore");
    assert!(
        restore["args"].to_string().contains(
            "/var/lib/dengine-restore-source/shop/orders/shop.orders-20261206T120003.412Z.dengine-backup"
        ),
        "{restore}"
    );
    assert!(
        !restore["env"].to_string().contains("AWS_"),
        "no S3 settings for a claim: {restore}"
    );
    let first_pod_0 = world
        .store
        .lock()
        .unwrap()
        .get("pods", NS, "orders-0")
        .unwrap()["metadata"]["uid"]
        .clone();
    let report = json!({ "location": "/var/lib/dengine-restore-source/x", "fetched": true,
                         "revision": 7, "index": 9, "file_bytes": 100 });
    restore_container_status(
        &world,
        json!({ "terminated": { "exitCode": 0, "message": report.to_string() } }),
        json!({}),
    );
    world.run_until(60, |w| w.running_with(3)).await;
    let status = world.status();
    assert_eq!(status["restore"]["location"], BACKUP_IN_CLAIM);
    assert_eq!(status["restore"]["revision"], 7);
    assert!(!mounts_backup_claim(&template_of(&world)));
    let pods: Vec<Value> = world
        .store
        .lock()
        .unwrap()
        .list("pods", NS)
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(pods.len(), 3);
    for pod in &pods {
        assert!(!mounts_backup_claim(pod), "{}", pod["metadata"]["name"]);
    }
    let pod_0 = pods
        .iter()
        .find(|p| p["metadata"]["name"] == "orders-0")
        .unwrap();
    assert_ne!(
        pod_0["metadata"]["uid"], first_pod_0,
        "pod 0 restarted once"
    );
}

// Backups into a PersistentVolumeClaim: the operator runs a Job per backup. The tests play the
// Job controller and the kubelet: they finish the Job and leave the container's termination
// message, as `dengine snapshot save-into --report-to /dev/termination-log` would.

fn backed_up_into_claim() -> DEngineClusterSpec {
    let mut spec = DEngineClusterSpec::example(1);
    spec.backup = Some(BackupSpec {
        schedule: "0 0 1 1 *".into(),
        keep: 3,
        s3: None,
        persistent_volume_claim: Some(VolumeDestination {
            claim_name: "backups".into(),
            prefix: None,
        }),
    });
    spec
}

/// A founded cluster, with the claim its backups go to if `claim_exists`.
async fn running_with_claim(claim_exists: bool) -> World {
    let mut world = World::new(backed_up_into_claim());
    if claim_exists {
        world.store.lock().unwrap().create(
            "persistentvolumeclaims",
            NS,
            json!({ "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": { "name": "backups" } }),
        );
    }
    world.run_until(30, |w| w.running_with(1)).await;
    world
}

fn backup_jobs(world: &World) -> Vec<Value> {
    world
        .store
        .lock()
        .unwrap()
        .list("jobs", NS)
        .into_iter()
        .cloned()
        .collect()
}

/// Ends Job `name` as the Job controller and kubelet would: `succeeded` or failed, the
/// container's termination message `message`.
fn finish_job(world: &World, name: &str, succeeded: bool, exit_code: i32, message: &str) {
    let mut store = world.store.lock().unwrap();
    store.create(
        "pods",
        NS,
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": format!("{name}-x7k2p"),
                          "labels": { "dengine.io/backup-job": name } },
            "status": { "phase": if succeeded { "Succeeded" } else { "Failed" },
                        "containerStatuses": [{
                            "name": "backup", "image": "dengine", "imageID": "", "ready": false,
                            "restartCount": 0,
                            "state": { "terminated": { "exitCode": exit_code, "message": message } },
                        }] },
        }),
    );
    let job = store.get_mut("jobs", NS, name).expect("the Job");
    job["status"] = match succeeded {
        true => json!({ "succeeded": 1 }),
        false => json!({ "failed": 1 }),
    };
}

/// A cluster backing up into its claim, a backup asked for and its Job made: the world and
/// the Job's name.
async fn a_backup_job_running() -> (World, String) {
    let mut world = running_with_claim(true).await;
    request_backup(&world, "1");
    reconcile_with_time_until(&mut world, |s| !s["backup"]["running"].is_null()).await;
    let name = backup_jobs(&world)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    (world, name)
}

/// Reconciles, giving the Job's watcher real time between reconciles, until `done` holds.
async fn reconcile_with_time_until(world: &mut World, done: impl Fn(&Value) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let _ = world.reconcile().await;
        if done(&world.status()) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!(
        "not done in 30 s; events: {:?}; status: {}",
        world.event_reasons(),
        serde_json::to_string_pretty(&world.status()).unwrap()
    );
}

#[tokio::test]
async fn a_backup_into_a_claim_is_a_job_whose_report_lands_in_the_status() {
    let mut world = running_with_claim(true).await;
    request_backup(&world, "1");
    reconcile_with_time_until(&mut world, |s| !s["backup"]["running"].is_null()).await;

    let jobs = backup_jobs(&world);
    assert_eq!(jobs.len(), 1, "one Job per backup");
    let job = &jobs[0];
    let name = job["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("orders-backup-"), "{name}");
    assert_eq!(
        job["metadata"]["ownerReferences"][0]["kind"],
        "DEngineCluster"
    );
    let pod = &job["spec"]["template"];
    // Never selected as a member by the Services, the budget or the StatefulSet.
    assert_ne!(
        pod["metadata"]["labels"]["app.kubernetes.io/name"],
        "dengine"
    );
    assert_eq!(
        pod["metadata"]["labels"]["dengine.io/backup-job"],
        json!(name)
    );
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    assert!(volumes
        .iter()
        .any(|v| v["persistentVolumeClaim"]["claimName"] == "backups"));
    let args: Vec<&str> = pod["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let after = |flag: &str| args[args.iter().position(|a| *a == flag).unwrap() + 1];
    let leader = world.group.lock().unwrap().leader.expect("a leader");
    assert_eq!(
        after("--endpoints"),
        format!("http://orders-{}.orders-peers.shop.svc:2380", leader - 1),
        "the leader's stable name"
    );
    assert_eq!(after("--cluster"), "shop/orders");
    assert_eq!(after("--keep"), "3");
    assert!(args.contains(&"--prefix=shop/orders/"), "{args:?}");
    assert!(args.contains(&"save-into"), "{args:?}");
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(job["spec"]["backoffLimit"], 0);

    let object = "shop/orders/shop.orders-20261206T120000.000Z.dengine-backup";
    finish_job(
        &world,
        &name,
        true,
        0,
        &format!(
            r#"{{"ok":true,"object":"{object}","revision":41,"index":57,"size_bytes":4242,"deleted":["shop/orders/shop.orders-20261201T000000.000Z.dengine-backup"]}}"#
        ),
    );
    reconcile_with_time_until(&mut world, |s| !s["backup"]["lastSuccessful"].is_null()).await;
    let status = world.status();
    let last = &status["backup"]["lastSuccessful"];
    assert_eq!(last["location"], format!("pvc://backups/{object}"));
    assert_eq!(last["revision"], 41);
    assert_eq!(last["index"], 57);
    assert_eq!(last["sizeBytes"], 4242);
    assert_eq!(condition(&status, "BackupFailed")["status"], "False");
    assert_eq!(world.events_with("BackupSucceeded"), 1);
    assert!(
        backup_jobs(&world).is_empty(),
        "a Job that succeeded is deleted"
    );
}

#[tokio::test]
async fn a_backup_job_that_fails_says_why_and_is_kept_for_its_logs() {
    let (mut world, name) = a_backup_job_running().await;
    finish_job(
        &world,
        &name,
        false,
        1,
        r#"{"ok":false,"reason":"SourceFailed","message":"asking for a backup: the node refused the admin token"}"#,
    );
    reconcile_with_time_until(&mut world, |s| !s["backup"]["lastFailed"].is_null()).await;
    let status = world.status();
    let failed = condition(&status, "BackupFailed");
    assert_eq!(failed["status"], "True");
    assert_eq!(failed["reason"], "SourceFailed");
    assert!(failed["message"]
        .as_str()
        .unwrap()
        .contains("refused the admin token"));
    assert_eq!(world.events_with("BackupFailed"), 1);
    assert_eq!(backup_jobs(&world).len(), 1, "kept for kubectl logs");
    assert!(status["backup"]["lastSuccessful"].is_null());
}

#[tokio::test]
async fn a_missing_claim_is_reported_and_no_job_is_made() {
    let mut world = running_with_claim(false).await;
    request_backup(&world, "1");
    reconcile_with_time_until(&mut world, |s| !s["backup"]["lastFailed"].is_null()).await;
    let failed = condition(&world.status(), "BackupFailed");
    assert_eq!(failed["reason"], "DestinationInvalid");
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("PersistentVolumeClaim shop/backups does not exist"),
        "{failed}"
    );
    assert!(backup_jobs(&world).is_empty());
}

/// An operator that stops while a backup Job runs: the Job goes on by itself, and the next
/// operator waits for it again and reports what it wrote, instead of calling it interrupted
/// and starting a second Job on the same claim.
#[tokio::test]
async fn a_new_operator_waits_for_the_backup_job_the_last_one_started() {
    let (mut world, name) = a_backup_job_running().await;

    world.ctx = World::operator_for(&world);
    let object = "shop/orders/shop.orders-20261206T120000.000Z.dengine-backup";
    finish_job(
        &world,
        &name,
        true,
        0,
        &format!(r#"{{"ok":true,"object":"{object}","revision":5,"index":6,"size_bytes":70}}"#),
    );
    reconcile_with_time_until(&mut world, |s| !s["backup"]["lastSuccessful"].is_null()).await;
    let status = world.status();
    assert_eq!(
        status["backup"]["lastSuccessful"]["location"],
        format!("pvc://backups/{object}")
    );
    assert!(status["backup"]["lastFailed"].is_null(), "{status}");
    assert_eq!(world.events_with("BackupFailed"), 0);
    assert!(
        backup_jobs(&world).is_empty(),
        "one Job only, deleted once read"
    );
}
