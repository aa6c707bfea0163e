//! The operator's backups against a real S3-compatible server (moto's server mode on loopback,
//! with IAM checks on, from `.venv-s3`, installed by scripts/setup) and a real node: a backup
//! streamed from the node's admin `Backup` API into the bucket, read back and restored into a
//! new cluster holding the same keys; retention over real listings and deletes; and the bad
//! inputs a user meets (wrong credentials, a bucket that does not exist, a store nobody
//! answers at), each a failure that says why.
//!
//! And the way back, as a DEngineCluster's `spec.restoreFrom` runs it: `dengine snapshot fetch`
//! (pod 0's restore container) downloads and checks the backup, then the node founds a cluster
//! from it; a missing or damaged object is refused and leaves no file to restore from.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{dengine_with_env, get, put, Cluster};
use dengine::proto::kv_client::KvClient;
use dengine::proto::ReadPolicy;
use dengine_operator::admin::GrpcMembership;
use dengine_operator::backup::s3::s3_destination;
use dengine_operator::backup::{write_backup, BackupSource, Destination, S3Keys};
use dengine_operator::crd::{S3Access, S3Destination};
use dengine_operator::observed::NodeId;
use futures::TryStreamExt;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use object_store::{ObjectStore, PutPayload};
use tonic::transport::Channel;

/// A moto server running for as long as this lives.
struct S3Server {
    child: Child,
    endpoint: String,
    bucket: String,
    credentials: S3Keys,
}

impl S3Server {
    fn start() -> S3Server {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let python = root.join(".venv-s3/bin/python");
        assert!(
            python.exists(),
            "{} is missing: run scripts/setup (it installs moto)",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3/moto_s3.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("moto says where it serves");
        let answer: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        let text = |key: &str| answer[key].as_str().expect(key).to_string();
        S3Server {
            endpoint: text("endpoint"),
            bucket: text("bucket"),
            credentials: S3Keys {
                access_key_id: text("access_key_id"),
                secret_access_key: text("secret_access_key"),
                session_token: None,
            },
            child,
        }
    }

    fn spec(&self) -> S3Destination {
        S3Destination {
            bucket: self.bucket.clone(),
            prefix: None,
            access: S3Access {
                endpoint: Some(self.endpoint.clone()),
                credentials_secret: Some("unused: the test gives the credentials".into()),
                ..S3Access::default()
            },
        }
    }

    fn destination(&self) -> Destination {
        s3_destination(
            &self.spec(),
            "shop/orders/".into(),
            Some(self.credentials.clone()),
        )
        .expect("a client for the bucket")
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        // Closing its standard input stops it; kill in case it does not.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `<prefix>/00` .. `<prefix>/<count - 1>`, each with `value(i)`; returns the last
/// revision.
async fn put_numbered(
    kv: &mut KvClient<Channel>,
    prefix: &str,
    count: usize,
    value: impl Fn(usize) -> String,
) -> i64 {
    let mut revision = 0;
    for i in 0..count {
        revision = put(kv, &format!("{prefix}/{i:02}"), &value(i))
            .await
            .header
            .expect("a header")
            .revision;
    }
    revision
}

async fn objects(destination: &Destination) -> Vec<String> {
    let mut names: Vec<String> = destination
        .store()
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .expect("a listing");
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_in_s3_restores_a_cluster_and_retention_keeps_the_newest() {
    let s3 = S3Server::start();
    let source = Cluster::start(1, &[]).await;
    let mut kv = source.nodes[0].kv();
    put_numbered(&mut kv, "app", 50, |i| format!("v{i}")).await;
    // Over 10 MB of state: the upload is multipart (8 MiB parts; S3 wants 5 MiB at least).
    let large = "x".repeat(200 * 1024);
    let revision = put_numbered(&mut kv, "blob", 52, |_| large.clone()).await;
    let admin = GrpcMembership::new(None, std::time::Duration::from_secs(5));
    let endpoint = source.nodes[0].spec.peer_endpoint();
    let destination = s3.destination();

    // Three backups a minute apart; two are kept.
    let start = Timestamp::now();
    let mut written = Vec::new();
    for minute in 0..3 {
        let chunks = admin
            .open(NodeId(1), &endpoint)
            .await
            .expect("the node streams a backup");
        let path =
            destination.object_for("shop", "orders", start + SignedDuration::from_mins(minute));
        written.push(
            write_backup(chunks, &destination, path)
                .await
                .expect("written to S3"),
        );
        let newest = &written.last().expect("written").path;
        destination
            .prune("shop", "orders", 2, newest)
            .await
            .expect("retention");
    }
    let kept: Vec<String> = written[1..].iter().map(|w| w.path.to_string()).collect();
    assert_eq!(objects(&destination).await, kept);
    let newest = written.last().expect("three backups");
    assert_eq!(newest.header.revision, revision);

    // What is in the bucket founds a new cluster holding the same keys.
    let bytes = destination
        .store()
        .get(&newest.path)
        .await
        .expect("the object")
        .bytes()
        .await
        .expect("its bytes");
    assert_eq!(bytes.len() as u64, newest.size_bytes);
    assert!(newest.size_bytes > 10 << 20, "{} bytes", newest.size_bytes);
    let file = source.dir().join("from-s3.backup");
    std::fs::write(&file, &bytes).expect("saved");
    let restored = Cluster::start(1, &["--restore-from", &file.display().to_string()]).await;
    let mut kv = restored.nodes[0].kv();
    let found = get(&mut kv, "app/42", ReadPolicy::Linearizable).await;
    assert_eq!(found.kv.expect("app/42").value.as_ref(), b"v42");
    let next = put(&mut kv, "app/new", "x").await.header.expect("a header");
    assert_eq!(
        next.revision,
        revision + 1,
        "revisions carry on from the backup's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_a_missing_bucket_and_an_unreachable_store_fail_clearly() {
    let s3 = S3Server::start();
    let source = Cluster::start(1, &[]).await;
    let admin = GrpcMembership::new(None, std::time::Duration::from_secs(5));
    let endpoint = source.nodes[0].spec.peer_endpoint();

    let wrong_key = s3_destination(
        &s3.spec(),
        "shop/orders/".into(),
        Some(S3Keys {
            secret_access_key: "not-the-secret".into(),
            ..s3.credentials.clone()
        }),
    )
    .unwrap();
    let mut missing_bucket_spec = s3.spec();
    missing_bucket_spec.bucket = "no-such-bucket".into();
    let missing_bucket = s3_destination(
        &missing_bucket_spec,
        String::new(),
        Some(s3.credentials.clone()),
    )
    .unwrap();
    // A port nothing listens on: the listener is closed before the store is asked.
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut unreachable_spec = s3.spec();
    unreachable_spec.access.endpoint = Some(format!("http://127.0.0.1:{closed_port}"));
    let unreachable = s3_destination(
        &unreachable_spec,
        String::new(),
        Some(s3.credentials.clone()),
    )
    .unwrap();

    for (what, destination, expected) in [
        ("wrong credentials", &wrong_key, "SignatureDoesNotMatch"),
        ("a missing bucket", &missing_bucket, "NoSuchBucket"),
        ("an unreachable store", &unreachable, "onnect"),
    ] {
        let chunks = admin.open(NodeId(1), &endpoint).await.expect("a stream");
        let path = destination.object_for("shop", "orders", Timestamp::now());
        let failure = write_backup(chunks, destination, path)
            .await
            .expect_err(what);
        assert_eq!(failure.reason, "UploadFailed", "{what}: {failure:?}");
        assert!(
            failure.message.contains(expected),
            "{what}: the message should say {expected}: {}",
            failure.message
        );
    }
    assert!(
        objects(&s3.destination()).await.is_empty(),
        "nothing was left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_container_fetches_a_backup_a_new_cluster_is_founded_from() {
    let s3 = S3Server::start();
    let source = Cluster::start(1, &[]).await;
    let mut kv = source.nodes[0].kv();
    let revision = put_numbered(&mut kv, "orders", 20, |i| format!("o{i}")).await;
    let admin = GrpcMembership::new(None, std::time::Duration::from_secs(5));
    let destination = s3.destination();
    let chunks = admin
        .open(NodeId(1), &source.nodes[0].spec.peer_endpoint())
        .await
        .expect("a stream");
    let path = destination.object_for("shop", "orders", Timestamp::now());
    let written = write_backup(chunks, &destination, path)
        .await
        .expect("backed up");
    let location = destination.location(&written.path);
    // A damaged copy beside it: the data's last byte flipped.
    let mut damaged = destination
        .store()
        .get(&written.path)
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    *damaged.last_mut().unwrap() ^= 1;
    let damaged_path = object_store::path::Path::from("shop/orders/damaged.dengine-backup");
    destination
        .store()
        .put(&damaged_path, PutPayload::from(damaged))
        .await
        .unwrap();

    // The restore container's environment, as the operator builds it.
    let env = |join: &'static str| {
        vec![
            ("AWS_ACCESS_KEY_ID", s3.credentials.access_key_id.clone()),
            (
                "AWS_SECRET_ACCESS_KEY",
                s3.credentials.secret_access_key.clone(),
            ),
            ("AWS_ENDPOINT_URL", s3.endpoint.clone()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("DENGINE_JOIN", join.to_string()),
        ]
    };
    let fetch = |location: String, file: std::path::PathBuf, join: &'static str| {
        let env = env(join);
        async move {
            let report = file.with_extension("report");
            let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let run = dengine_with_env(
                &[
                    "snapshot",
                    "fetch",
                    &location,
                    &file.display().to_string(),
                    "--report-to",
                    &report.display().to_string(),
                ],
                &env,
            )
            .await;
            (run, std::fs::read_to_string(report).unwrap_or_default())
        }
    };
    let dir = source.dir().to_path_buf();

    // Founding: fetched, checked, reported.
    let file = dir.join("restore.dengine-backup");
    let (run, report) = fetch(location.clone(), file.clone(), "false").await;
    run.expect_success("fetch");
    let report: serde_json::Value = serde_json::from_str(&report).expect("a JSON report");
    assert_eq!(report["fetched"], true);
    assert_eq!(report["revision"], revision);
    assert_eq!(report["file_bytes"], written.size_bytes);

    // A key that is not there, and a damaged object: refused, nothing left to restore from.
    let missing = format!("s3://{}/shop/orders/no-such.dengine-backup", s3.bucket);
    let bad = dir.join("bad.dengine-backup");
    for (what, location, expected) in [
        ("a missing object", missing, "not found"),
        (
            "a damaged object",
            destination.location(&damaged_path),
            "checksum",
        ),
    ] {
        let (run, _) = fetch(location, bad.clone(), "false").await;
        run.expect_code(1, what);
        assert!(run.stderr.contains(expected), "{what}: {}", run.stderr);
        assert!(!bad.exists(), "{what}: no file");
        assert!(
            !dir.join("bad.dengine-backup.partial").exists(),
            "{what}: no partial file"
        );
    }

    // The node founds a cluster from the fetched file, with the backup's keys and revisions.
    let restored = Cluster::start(1, &["--restore-from", &file.display().to_string()]).await;
    let mut kv = restored.nodes[0].kv();
    let found = get(&mut kv, "orders/13", ReadPolicy::Linearizable).await;
    assert_eq!(found.kv.expect("orders/13").value.as_ref(), b"o13");
    let next = put(&mut kv, "orders/new", "x")
        .await
        .header
        .expect("a header");
    assert_eq!(next.revision, revision + 1);

    // Once founded, the container in a restarted pod 0 (or any member that joins) fetches
    // nothing and removes what the founding left.
    let (run, report) = fetch(location, file.clone(), "true").await;
    run.expect_success("joining");
    assert!(!file.exists(), "the founding's file is removed");
    assert!(report.contains("\"fetched\":false"), "{report}");
}
