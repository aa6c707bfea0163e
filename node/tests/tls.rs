//! TLS: peers talk over mutual TLS, strangers are refused, the CLI reaches a peer listener with
//! a certificate, and a client listener can be served over TLS.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{dengine, free_ports, wait_for, Cluster};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use dengine::proto::admin_client::AdminClient;
use dengine::proto::StatusRequest;
use dengine_operator::admin::{AdminTls, GrpcMembership};
use dengine_operator::driver::Membership;
use dengine_operator::observed::NodeId;

/// A CA and one certificate it signed for `localhost` and `127.0.0.1`, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_pki(dir: &Path, name: &str) -> Pki {
    let ca_key = KeyPair::generate().expect("a CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("the CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("a node key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("node params");
    let cert = params
        .signed_by(&key, &issuer)
        .expect("the node certificate");
    let pki = Pki {
        ca: dir.join(format!("{name}-ca.pem")),
        cert: dir.join(format!("{name}-node.pem")),
        key: dir.join(format!("{name}-node-key.pem")),
    };
    std::fs::write(&pki.ca, ca_cert.pem()).expect("write the CA");
    std::fs::write(&pki.cert, cert.pem()).expect("write the certificate");
    std::fs::write(&pki.key, key.serialize_pem()).expect("write the key");
    pki
}

fn tls_args(pki: &Pki) -> Vec<String> {
    vec![
        "--tls-cert-file".into(),
        pki.cert.display().to_string(),
        "--tls-key-file".into(),
        pki.key.display().to_string(),
        "--tls-ca-file".into(),
        pki.ca.display().to_string(),
    ]
}

/// Admin.Status on a peer listener over TLS, presenting `identity` (or nothing).
async fn peer_status(port: u16, ca: &Path, identity: Option<&Pki>) -> Result<u64, String> {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(
        std::fs::read(ca).expect("read the CA"),
    ));
    if let Some(pki) = identity {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(&pki.cert).expect("read the certificate"),
            std::fs::read(&pki.key).expect("read the key"),
        ));
    }
    let channel = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .and_then(|e| e.tls_config(tls))
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| format!("{e:?}"))?;
    AdminClient::new(channel)
        .status(StatusRequest {})
        .await
        .map(|r| r.into_inner().member_id)
        .map_err(|status| status.to_string())
}

#[tokio::test]
async fn peers_replicate_over_mutual_tls_and_refuse_strangers() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pki = make_pki(dir.path(), "cluster");
    let stranger = make_pki(dir.path(), "stranger");
    let args = tls_args(&pki);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::start(3, &args).await;

    // Elected and replicating: every message between peers went over mutual TLS.
    cluster.leader().await;
    let clients = cluster.clients();
    let revision = clients
        .put_acknowledged("secured", "yes")
        .await
        .expect("a write is acknowledged");
    cluster.wait_caught_up(revision).await;

    let peer_port = cluster.node(2).spec.peer_port;
    // A member's certificate is accepted on the peer listener.
    assert_eq!(peer_status(peer_port, &pki.ca, Some(&pki)).await, Ok(2));
    // No certificate, a certificate from another CA, or plain text: refused.
    assert!(peer_status(peer_port, &pki.ca, None).await.is_err());
    assert!(peer_status(peer_port, &pki.ca, Some(&stranger))
        .await
        .is_err());
    let plain = Endpoint::from_shared(format!("http://127.0.0.1:{peer_port}"))
        .expect("an endpoint")
        .connect()
        .await;
    if let Ok(channel) = plain {
        assert!(AdminClient::new(channel)
            .status(StatusRequest {})
            .await
            .is_err());
    }

    // The CLI reaches the leader's peer listener (member commands go there) with the
    // cluster's certificate, and is refused without one.
    let client = cluster.node(1).spec.client_endpoint();
    let (ca, cert, key) = (
        pki.ca.display().to_string(),
        pki.cert.display().to_string(),
        pki.key.display().to_string(),
    );
    let peer = format!("127.0.0.1:{peer_port}");
    dengine(&[
        "--endpoints",
        &peer,
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "endpoint",
        "status",
    ])
    .await
    .expect_success("endpoint status over mutual TLS");
    let refused = dengine(&["--endpoints", &peer, "--cacert", &ca, "endpoint", "status"]).await;
    assert_ne!(
        refused.code,
        Some(0),
        "no client certificate must be refused"
    );
    // The operator's admin client reads the leader's view over mutual TLS, checking each
    // node's certificate against a name it holds (here `localhost`; in Kubernetes the pod's
    // DNS name, since the operator dials pod IPs); without TLS it sees nothing.
    let endpoints: BTreeMap<NodeId, String> = (1..=3)
        .map(|id| (NodeId(id), cluster.node(id).spec.peer_endpoint()))
        .collect();
    let read = |path: &PathBuf| std::fs::read(path).expect("read a TLS file");
    let operator = GrpcMembership::new(None, Duration::from_secs(5)).with_tls(Some(AdminTls::new(
        read(&pki.ca),
        read(&pki.cert),
        read(&pki.key),
        |_| "localhost".to_string(),
    )));
    let view = operator
        .view(&endpoints)
        .await
        .expect("the leader's view over TLS");
    assert_eq!(view.members.len(), 3);
    assert!(view.leader.is_some());
    let plain_operator = GrpcMembership::new(None, Duration::from_secs(5));
    assert!(plain_operator.view(&endpoints).await.is_none());

    // The client listener stays plain (loopback, beside the application).
    dengine(&["--endpoints", &client, "get", "secured"])
        .await
        .expect_success("a plain read on the client listener");
}

#[tokio::test]
async fn a_client_listener_can_be_served_over_tls() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pki = make_pki(dir.path(), "single");
    let ports = free_ports(2);
    let client = format!("127.0.0.1:{}", ports[0]);
    let mut args = tls_args(&pki);
    args.extend([
        "--client-tls".to_string(),
        "--data-dir".into(),
        dir.path().join("data").display().to_string(),
        "--client-listen".into(),
        client.clone(),
        "--peer-listen".into(),
        format!("127.0.0.1:{}", ports[1]),
        "--metrics-listen".into(),
        "127.0.0.1:0".into(),
    ]);
    let log = std::fs::File::create(dir.path().join("node.log")).expect("a log file");
    let _node = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_node"))
            .args(&args)
            .env_remove("POD_NAME")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log"))
            .stderr(log)
            .spawn()
            .expect("start the node"),
    );
    let ca = pki.ca.display().to_string();
    let https = format!("https://{client}");

    let written = wait_for("a put over TLS on the client listener", || async {
        let run = dengine(&["--endpoints", &https, "--cacert", &ca, "put", "k", "v"]).await;
        if run.code == Some(0) {
            Ok(())
        } else {
            Err(run.stderr)
        }
    })
    .await;
    let () = written;
    let read = dengine(&["--endpoints", &https, "--cacert", &ca, "get", "k"]).await;
    read.expect_success("a read over TLS");
    assert!(read.stdout.contains('v'), "{}", read.stdout);
    // Plain text, or https:// without a CA, is refused rather than downgraded.
    let plain = dengine(&["--endpoints", &client, "--timeout", "2s", "get", "k"]).await;
    assert_ne!(plain.code, Some(0));
    let no_ca = dengine(&["--endpoints", &https, "get", "k"]).await;
    assert_ne!(no_ca.code, Some(0));
    assert!(no_ca.stderr.contains("--cacert"), "{}", no_ca.stderr);
}

/// A node process stopped when the test ends, passed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn incomplete_tls_settings_are_refused_at_start() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let pki = make_pki(dir.path(), "partial");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_node"))
        .args([
            "--data-dir",
            &dir.path().join("data").display().to_string(),
            "--tls-cert-file",
            &pki.cert.display().to_string(),
        ])
        .env_remove("POD_NAME")
        .output()
        .await
        .expect("run the node");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("go together"), "{stderr}");
}

/// What the operator issues with `spec.tls.generate` (its CA, a member's certificate, its own)
/// is what the node accepts: a cluster runs over mutual TLS on them, and the operator's own
/// certificate is let in on a peer listener, while one from another CA is not.
#[tokio::test]
async fn certificates_the_operator_issues_secure_a_cluster() {
    use dengine_operator::certificates::{issue_ca, issue_leaf};
    let dir = tempfile::tempdir().expect("a temporary directory");
    let now = k8s_openapi::jiff::Timestamp::now();
    let ca = issue_ca("shop", "orders", now).expect("a CA");
    let member = issue_leaf(
        &ca,
        "shop",
        "orders",
        "orders-0",
        vec!["localhost".into(), "127.0.0.1".into()],
        now,
    )
    .expect("a member certificate");
    let operator = issue_leaf(
        &ca,
        "shop",
        "orders",
        "dengine-operator",
        vec!["dengine-operator".into()],
        now,
    )
    .expect("the operator's certificate");
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("written");
        path
    };
    let pki = Pki {
        ca: write("ca.crt", &ca.cert_pem),
        cert: write("member.crt", &member.cert_pem),
        key: write("member.key", &member.key_pem),
    };
    let operator = Pki {
        ca: pki.ca.clone(),
        cert: write("operator.crt", &operator.cert_pem),
        key: write("operator.key", &operator.key_pem),
    };
    let stranger = make_pki(dir.path(), "stranger");
    let args = tls_args(&pki);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cluster = Cluster::start(3, &args).await;
    cluster.leader().await;
    let revision = cluster
        .clients()
        .put_acknowledged("issued", "by the operator")
        .await
        .expect("a write is acknowledged");
    cluster.wait_caught_up(revision).await;

    let peer_port = cluster.node(3).spec.peer_port;
    assert_eq!(
        peer_status(peer_port, &pki.ca, Some(&operator)).await,
        Ok(3)
    );
    assert!(peer_status(peer_port, &pki.ca, Some(&stranger))
        .await
        .is_err());
}
