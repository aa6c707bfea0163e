//! The runner's view of the Kubernetes cluster: the client, the run's namespace, what is
//! recorded, and the operations scenarios share (waiting for conditions, the cluster's state,
//! exec into a node container, reading back the acknowledged writes).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use dengine_operator::crd::{DEngineCluster, NODE_CONTAINER_NAME};
use dengine_operator::status::{DEngineClusterStatus, MemberRole, Phase};
use dengine_operator::{KUBERNETES_FLOOR_MINOR, SIDECARS_ON_BY_DEFAULT_MINOR};
use k8s_openapi::api::core::v1::{Namespace, Node, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{AttachParams, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::KubeConfigOptions;
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::recorders::{pod_selector, Recorded, Recorders};
use super::report::Report;
use super::{Cli, Spread};
use crate::acks::{parse_scan_json, verify};
use crate::events;
use crate::specs::{self, SpecOptions, ADMIN_SECRET, CLUSTER, KEY_PREFIX};

/// Where the `dengine` CLI is in the node image.
pub const DENGINE_CLI: &str = "/usr/local/bin/dengine";

/// How a node is asked to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadPolicy {
    Linearizable,
    Eventual,
}

impl ReadPolicy {
    fn flag(self) -> &'static str {
        match self {
            ReadPolicy::Linearizable => "linearizable",
            ReadPolicy::Eventual => "eventual",
        }
    }
}

/// The output of a command run in a container.
#[derive(Debug)]
pub struct ExecOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

/// One run's connection to the cluster and everything shared between scenarios.
pub struct Env {
    pub client: Client,
    pub namespace: String,
    pub options: SpecOptions,
    pub upgrade_tag: String,
    pub election_budget: Duration,
    pub rec: Arc<Recorded>,
    timeout_scale: f64,
    recorders: Recorders,
}

fn random_hex(bytes: usize) -> String {
    (0..bytes.div_ceil(4))
        .map(|_| crate::app::boot_id())
        .collect::<String>()
        .chars()
        .take(bytes * 2)
        .collect()
}

impl Env {
    /// Connects, checks the cluster is ready for the scenarios, creates the namespace and the
    /// admin Secret, and starts the recorders.
    pub async fn start(cli: &Cli) -> anyhow::Result<Env> {
        let config = match &cli.context {
            Some(context) => kube::Config::from_kubeconfig(&KubeConfigOptions {
                context: Some(context.clone()),
                ..KubeConfigOptions::default()
            })
            .await
            .with_context(|| format!("no kubeconfig context {context}"))?,
            None => kube::Config::infer()
                .await
                .context("no kubeconfig (set KUBECONFIG or pass --context)")?,
        };
        let cluster_url = config.cluster_url.to_string();
        let client = Client::try_from(config).context("cannot make a Kubernetes client")?;
        let version = client
            .apiserver_version()
            .await
            .with_context(|| format!("the API server at {cluster_url} does not answer"))?;
        let minor: u32 = version
            .minor
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap_or(0);
        println!("cluster: {cluster_url}, Kubernetes {}", version.git_version);
        let (floor, sidecars) = (KUBERNETES_FLOOR_MINOR, SIDECARS_ON_BY_DEFAULT_MINOR);
        if version.major == "1" && minor < floor {
            bail!(
                "Kubernetes {} is too old: the node runs as a native sidecar, which needs 1.{floor} \
                 (with the SidecarContainers feature gate) or 1.{sidecars} and later \
                 (docs/operator.md, Requirements)",
                version.git_version
            );
        }
        if version.major == "1" && minor < sidecars {
            println!(
                "note: Kubernetes {} runs native sidecars only with the SidecarContainers feature \
                 gate on (from 1.{sidecars} it is on by default); pods stay Pending without it",
                version.git_version
            );
        }

        let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
        if crds.get_opt("dengineclusters.dengine.io").await?.is_none() {
            bail!(
                "the DEngineCluster CRD is not installed: install the operator first, e.g. \
                 helm upgrade --install dengine-operator charts/dengine-operator -n dengine-system \
                 --create-namespace --wait (e2e/run does it)"
            );
        }
        check_operator(&client).await?;

        let spread = match cli.spread {
            Spread::True => true,
            Spread::False => false,
            Spread::Auto => {
                let nodes = schedulable_nodes(&client).await?;
                let spread = nodes >= 3;
                println!(
                    "{nodes} schedulable nodes: spreadAcrossNodes {spread}{}",
                    if spread {
                        ""
                    } else {
                        " (fewer than 3 nodes for 3 members)"
                    }
                );
                spread
            }
        };

        let namespace = cli
            .namespace
            .clone()
            .unwrap_or_else(|| format!("dengine-e2e-{}", random_hex(3)));
        let namespaces: Api<Namespace> = Api::all(client.clone());
        if namespaces.get_opt(&namespace).await?.is_none() {
            let object: Namespace = serde_json::from_value(json!({
                "metadata": { "name": namespace, "labels": { "dengine-e2e": "true" } }
            }))?;
            namespaces
                .create(&PostParams::default(), &object)
                .await
                .with_context(|| format!("cannot create the namespace {namespace}"))?;
        }
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        if secrets.get_opt(ADMIN_SECRET).await?.is_none() {
            let secret: Secret = serde_json::from_value(json!({
                "metadata": { "name": ADMIN_SECRET },
                "stringData": { "token": random_hex(32) }
            }))?;
            secrets.create(&PostParams::default(), &secret).await?;
        }
        println!("namespace: {namespace} (admin token Secret {ADMIN_SECRET})");

        let options = SpecOptions {
            namespace: namespace.clone(),
            node_image: cli.node_image.clone(),
            node_tag: cli.node_tag.clone(),
            app_image: cli
                .app_image
                .clone()
                .unwrap_or_else(|| format!("ghcr.io/d-engine/dengine-e2e-app:{}", cli.node_tag)),
            spread_across_nodes: spread,
            storage_class: cli.storage_class.clone(),
            storage_size: cli.storage_size.clone(),
            write_interval: cli.write_interval.clone(),
        };
        println!(
            "images: node {}:{} (upgrade to :{}), writer {}",
            options.node_image, options.node_tag, cli.upgrade_tag, options.app_image
        );
        let rec = Arc::new(Recorded::new(KEY_PREFIX));
        let recorders = Recorders::start(&client, &namespace, &rec);
        Ok(Env {
            client,
            namespace,
            options,
            upgrade_tag: cli.upgrade_tag.clone(),
            election_budget: cli.election_budget,
            rec,
            timeout_scale: cli.timeout_scale.max(0.1),
            recorders,
        })
    }

    /// Stops the recorders and deletes the namespace, unless kept.
    pub async fn finish(&self, keep: bool) {
        self.recorders.stop();
        if keep {
            println!(
                "\nkept namespace {ns}: kubectl -n {ns} get dec,pods,pvc,events; delete it with \
                 kubectl delete namespace {ns}",
                ns = self.namespace
            );
            return;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        match namespaces
            .delete(&self.namespace, &DeleteParams::background())
            .await
        {
            Ok(_) => println!("\ndeleted namespace {} (in the background)", self.namespace),
            Err(error) => println!("\ncould not delete namespace {}: {error}", self.namespace),
        }
    }

    pub fn clusters(&self) -> Api<DEngineCluster> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub fn claims(&self) -> Api<PersistentVolumeClaim> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// A deadline of `seconds`, scaled by `--timeout-scale`.
    pub fn secs(&self, seconds: u64) -> Duration {
        Duration::from_secs_f64(seconds as f64 * self.timeout_scale)
    }

    pub fn now_ms(&self) -> u64 {
        self.rec.now_ms()
    }

    /// The pod of ordinal `k`.
    pub fn pod_name(k: u32) -> String {
        format!("{CLUSTER}-{k}")
    }

    /// The pods of a cluster of `replicas` members.
    pub fn member_pods(replicas: u32) -> Vec<String> {
        (0..replicas).map(Env::pod_name).collect()
    }

    /// Polls `probe` every second until it returns `Ok(Ok(value))`, for at most `limit`.
    /// `Ok(Err(state))` says what was seen instead, for the message if time runs out; an error
    /// (the API server busy, a pod gone for a moment) counts as not yet.
    pub async fn wait_for<T, F, Fut>(
        &self,
        what: &str,
        limit: Duration,
        mut probe: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Result<T, String>>>,
    {
        let started = Instant::now();
        loop {
            let last = match probe().await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(state)) => state,
                Err(error) => format!("error: {error:#}"),
            };
            if started.elapsed() >= limit {
                bail!(
                    "gave up after {:.0}s waiting for {what}; last seen: {last}",
                    limit.as_secs_f64()
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    pub async fn cluster(&self) -> anyhow::Result<Option<DEngineCluster>> {
        Ok(self.clusters().get_opt(CLUSTER).await?)
    }

    /// Merges `patch` into the cluster's spec.
    pub async fn patch_spec(&self, patch: serde_json::Value) -> anyhow::Result<()> {
        self.clusters()
            .patch(
                CLUSTER,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": patch })),
            )
            .await
            .with_context(|| format!("cannot patch the spec of {CLUSTER} with {patch}"))?;
        Ok(())
    }

    /// Waits until the cluster reports, for its current generation: phase Running, a leader,
    /// `replicas` voters all ready with lag 0, Available, and (when given) `version` on every
    /// member.
    pub async fn wait_running(
        &self,
        replicas: u32,
        version: Option<&str>,
        limit: Duration,
    ) -> anyhow::Result<DEngineClusterStatus> {
        let what = format!(
            "{CLUSTER} Running with {replicas} ready voters{}",
            version.map(|v| format!(" on {v}")).unwrap_or_default()
        );
        self.wait_for(&what, limit, || async move {
            let Some(cluster) = self.cluster().await? else {
                return Ok(Err(format!("no DEngineCluster {CLUSTER}")));
            };
            let Some(status) = cluster.status.clone() else {
                return Ok(Err("no status yet".to_string()));
            };
            Ok(running(&cluster, &status, replicas, version).map(|()| status))
        })
        .await
    }

    /// Creates the cluster with `replicas` members if it does not exist, or changes it to
    /// `replicas` and `version`, and waits until it runs that way: the state a scenario starts
    /// from.
    pub async fn ensure_cluster(
        &self,
        report: &mut Report,
        replicas: u32,
        version: Option<&str>,
    ) -> anyhow::Result<DEngineClusterStatus> {
        match self.cluster().await? {
            None => {
                let mut cluster = specs::cluster(&self.options, replicas as i32);
                if let Some(version) = version {
                    cluster.spec.version = version.to_string();
                }
                self.clusters()
                    .create(&PostParams::default(), &cluster)
                    .await
                    .context("cannot create the DEngineCluster")?;
                report.note(format!(
                    "to start from: created {CLUSTER} with {replicas} members"
                ));
            }
            Some(cluster) => {
                let mut patch = serde_json::Map::new();
                if cluster.spec.replicas != replicas as i32 {
                    patch.insert("replicas".into(), json!(replicas));
                }
                if let Some(version) = version.filter(|v| *v != cluster.spec.version) {
                    patch.insert("version".into(), json!(version));
                }
                if !patch.is_empty() {
                    report.note(format!(
                        "to start from: changing {CLUSTER}: {}",
                        serde_json::Value::Object(patch.clone())
                    ));
                    self.patch_spec(serde_json::Value::Object(patch)).await?;
                }
            }
        }
        self.wait_running(replicas, version, self.secs(600)).await
    }

    /// Deletes the cluster and its volumes (a clean start), waiting until they are gone.
    pub async fn delete_cluster_and_volumes(&self) -> anyhow::Result<()> {
        if self.cluster().await?.is_some() {
            self.clusters()
                .delete(CLUSTER, &DeleteParams::background())
                .await?;
        }
        let selector = pod_selector();
        self.wait_for("the cluster and its pods gone", self.secs(300), || async {
            let cluster = self.cluster().await?;
            let pods = self
                .pods()
                .list(&ListParams::default().labels(&selector))
                .await?;
            if cluster.is_none() && pods.items.is_empty() {
                Ok(Ok(()))
            } else {
                Ok(Err(format!(
                    "cluster present: {}, pods: {}",
                    cluster.is_some(),
                    pods.items.len()
                )))
            }
        })
        .await?;
        let claims = self.claims();
        claims
            .delete_collection(
                &DeleteParams::background(),
                &ListParams::default().labels(&selector),
            )
            .await?;
        self.wait_for("the volumes gone", self.secs(300), || async {
            let left = self
                .claims()
                .list(&ListParams::default().labels(&selector))
                .await?;
            if left.items.is_empty() {
                Ok(Ok(()))
            } else {
                Ok(Err(format!("{} claims left", left.items.len())))
            }
        })
        .await?;
        // The writes went with the volumes.
        self.rec.acks().reset();
        Ok(())
    }

    /// Runs `command` in `container` of `pod`.
    pub async fn exec(
        &self,
        pod: &str,
        container: &str,
        command: &[&str],
    ) -> anyhow::Result<ExecOutput> {
        let params = AttachParams::default()
            .container(container)
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let mut process = self
            .pods()
            .exec(pod, command.iter().copied(), &params)
            .await
            .with_context(|| format!("cannot exec in {pod}/{container}"))?;
        let mut stdout = process.stdout().ok_or_else(|| anyhow!("no stdout"))?;
        let mut stderr = process.stderr().ok_or_else(|| anyhow!("no stderr"))?;
        let status = process.take_status().ok_or_else(|| anyhow!("no status"))?;
        let mut out = Vec::new();
        let mut err = Vec::new();
        let (read_out, read_err) =
            tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        read_out?;
        read_err?;
        let status = status.await;
        process.join().await.ok();
        Ok(ExecOutput {
            success: status.is_some_and(|s| s.status.as_deref() == Some("Success")),
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    }

    /// Every key under `prefix` as `pod`'s node serves it with `policy`, read by the `dengine`
    /// CLI in the node container.
    pub async fn scan(
        &self,
        pod: &str,
        prefix: &str,
        policy: ReadPolicy,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        let command = [
            DENGINE_CLI,
            "--output",
            "json",
            "--consistency",
            policy.flag(),
            "--timeout",
            "30s",
            "scan",
            prefix,
        ];
        let output = self.exec(pod, NODE_CONTAINER_NAME, &command).await?;
        if !output.success {
            bail!(
                "`dengine scan {prefix}` in {pod} failed: {}",
                output.stderr.trim()
            );
        }
        parse_scan_json(&output.stdout).map_err(|e| anyhow!("{pod}: {e}"))
    }

    /// Reads every write acknowledged so far back through each of `readers` (their node
    /// containers) with `policy`, and fails unless every one is there with its value.
    /// Linearizable reads must find everything at once (a failed request is retried); eventual
    /// reads are retried until the member has caught up or the deadline passes.
    pub async fn verify_acks(
        &self,
        report: &mut Report,
        readers: &[String],
        policy: ReadPolicy,
    ) -> anyhow::Result<()> {
        let (expected, writers, problems) = {
            let book = self.rec.acks();
            (book.expected(), book.writer_pods(), book.problems())
        };
        if !problems.is_empty() {
            bail!(
                "the writers' logs show trouble:\n    {}",
                problems
                    .iter()
                    .take(20)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("\n    ")
            );
        }
        if expected.is_empty() {
            bail!("no acknowledged write to check");
        }
        for reader in readers {
            let verdict = self
                .wait_for(
                    &format!(
                        "{reader} to serve every acknowledged write ({})",
                        policy.flag()
                    ),
                    self.secs(120),
                    || {
                        let expected = &expected;
                        let writers = &writers;
                        async move {
                            let mut found = BTreeMap::new();
                            for writer in writers {
                                let prefix = format!("{KEY_PREFIX}{writer}/");
                                found.extend(self.scan(reader, &prefix, policy).await?);
                            }
                            let verdict = verify(expected, &found);
                            match (verdict.is_ok(), policy) {
                                (true, _) => Ok(Ok(verdict)),
                                (false, ReadPolicy::Eventual) => Ok(Err(verdict.to_string())),
                                // A linearizable read that misses an acknowledged write: lost.
                                (false, ReadPolicy::Linearizable) => Ok(Ok(verdict)),
                            }
                        }
                    },
                )
                .await?;
            if !verdict.is_ok() {
                bail!("{reader}, {} read: {verdict}", policy.flag());
            }
            report.check(format!("{reader}, {} read: {verdict}", policy.flag()));
        }
        Ok(())
    }

    /// Waits until each of `pods` has at least `count` writes acknowledged since `mark`.
    pub async fn wait_acks(
        &self,
        pods: &[String],
        mark: crate::acks::Mark,
        count: usize,
        limit: Duration,
    ) -> anyhow::Result<BTreeMap<String, usize>> {
        self.wait_for(
            &format!(
                "{count} acknowledged writes from each of {}",
                pods.join(", ")
            ),
            limit,
            || async move {
                let since = self.rec.acks().since(mark);
                let behind: Vec<String> = pods
                    .iter()
                    .filter(|p| since.get(*p).copied().unwrap_or(0) < count)
                    .map(|p| format!("{p}: {}", since.get(p).copied().unwrap_or(0)))
                    .collect();
                if behind.is_empty() {
                    Ok(Ok(since))
                } else {
                    Ok(Err(format!("so far {}", behind.join(", "))))
                }
            },
        )
        .await
    }

    /// Checks the Events since `from_ms` include `expected` in order; reports them.
    pub fn check_events(
        &self,
        report: &mut Report,
        expected: &[events::Expected],
        from_ms: u64,
    ) -> anyhow::Result<()> {
        let matched =
            events::check_order(&self.rec.events(), expected, from_ms).map_err(|e| anyhow!(e))?;
        let steps: Vec<String> = matched
            .iter()
            .map(|o| format!("{} ({})", o.reason, o.action))
            .collect();
        report.check(format!("Events in order: {}", steps.join(" -> ")));
        Ok(())
    }

    /// Waits until the Events since `from_ms` include `expected` in order (Events may be
    /// published a moment after the step).
    pub async fn wait_events(
        &self,
        report: &mut Report,
        expected: &[events::Expected],
        from_ms: u64,
    ) -> anyhow::Result<()> {
        let limit = self.secs(60);
        self.wait_for("the Events", limit, || async move {
            Ok(events::check_order(&self.rec.events(), expected, from_ms).map(|_| ()))
        })
        .await?;
        self.check_events(report, expected, from_ms)
    }

    /// The state of things, printed when a scenario fails.
    pub async fn diagnostics(&self) -> String {
        let mut text = String::from("  --- diagnostics");
        match self.cluster().await {
            Ok(Some(cluster)) => {
                let _ = write!(
                    text,
                    "\n  {CLUSTER}: generation {:?}, spec replicas {} version {}\n  status: {}",
                    cluster.metadata.generation,
                    cluster.spec.replicas,
                    cluster.spec.version,
                    describe_status(cluster.status.as_ref())
                );
            }
            Ok(None) => text.push_str("\n  no DEngineCluster"),
            Err(error) => {
                let _ = write!(text, "\n  cannot read the DEngineCluster: {error}");
            }
        }
        let recent: Vec<_> = {
            let all = events::in_time_order(&self.rec.events());
            let skip = all.len().saturating_sub(15);
            all.into_iter().skip(skip).collect()
        };
        let _ = write!(text, "\n  last Events:{}", events::describe(&recent));
        match self
            .pods()
            .list(&ListParams::default().labels(&pod_selector()))
            .await
        {
            Ok(pods) => {
                for pod in pods {
                    let _ = write!(text, "\n  pod {}", describe_pod(&pod));
                }
            }
            Err(error) => {
                let _ = write!(text, "\n  cannot list pods: {error}");
            }
        }
        if let Ok(claims) = self.claims().list(&ListParams::default()).await {
            for claim in claims {
                let phase = claim
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                let deleting = if claim.metadata.deletion_timestamp.is_some() {
                    ", being deleted"
                } else {
                    ""
                };
                let _ = write!(text, "\n  claim {} {phase}{deleting}", claim.name_any());
            }
        }
        {
            let book = self.rec.acks();
            let _ = write!(
                text,
                "\n  writers: {} acknowledged writes {:?}, {} read back intact, {} failed requests",
                book.len(),
                book.per_pod(),
                book.reads_ok(),
                book.errors()
            );
            for problem in book.problems().iter().take(10) {
                let _ = write!(text, "\n    {problem}");
            }
        }
        text.push_str(&format!(
            "\n  (keep the namespace to look further: --keep; kubectl -n {} describe dec {CLUSTER})",
            self.namespace
        ));
        text
    }
}

/// Whether `status` says the cluster runs as asked; what differs otherwise.
pub fn running(
    cluster: &DEngineCluster,
    status: &DEngineClusterStatus,
    replicas: u32,
    version: Option<&str>,
) -> Result<(), String> {
    let state = || describe_status(Some(status));
    if status.observed_generation != cluster.metadata.generation {
        return Err(format!(
            "status of generation {:?}, spec at {:?}: {}",
            status.observed_generation,
            cluster.metadata.generation,
            state()
        ));
    }
    let healthy_voters = status
        .members
        .iter()
        .filter(|m| m.role == MemberRole::Voter && m.ready && m.lag == 0)
        .count();
    let available = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Available" && c.status == "True");
    let ok = status.phase == Phase::Running
        && status.leader.is_some()
        && status.members.len() == replicas as usize
        && healthy_voters == replicas as usize
        && status.ready_members == replicas as i32
        && available
        && version.is_none_or(|v| status.current_version.as_deref() == Some(v));
    if ok {
        Ok(())
    } else {
        Err(state())
    }
}

/// The status on one line.
pub fn describe_status(status: Option<&DEngineClusterStatus>) -> String {
    let Some(status) = status else {
        return "no status".to_string();
    };
    let members: Vec<String> = status
        .members
        .iter()
        .map(|m| {
            format!(
                "{} node {} {:?} {} lag {}",
                m.pod,
                m.node_id,
                m.role,
                if m.ready { "ready" } else { "not ready" },
                m.lag
            )
            .to_lowercase()
        })
        .collect();
    let conditions: Vec<String> = status
        .conditions
        .iter()
        .map(|c| format!("{}={} ({}: {})", c.type_, c.status, c.reason, c.message))
        .collect();
    format!(
        "phase {:?}, leader {}, {} ready, members [{}], version {} (target {}), {}",
        status.phase,
        status
            .leader
            .as_ref()
            .map(|l| format!("{} (node {})", l.pod, l.node_id))
            .unwrap_or_else(|| "none".to_string()),
        status.ready_members,
        members.join(", "),
        status.current_version.as_deref().unwrap_or("-"),
        status.target_version.as_deref().unwrap_or("-"),
        conditions.join(", ")
    )
}

/// Whether a pod is Ready and not being deleted.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod on one line: phase, readiness, and each container's state.
pub fn describe_pod(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let mut containers = Vec::new();
    for c in status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
    {
        let state = c.state.as_ref().map_or("unknown".to_string(), |s| {
            if let Some(w) = &s.waiting {
                format!("waiting {}", w.reason.clone().unwrap_or_default())
            } else if let Some(t) = &s.terminated {
                format!(
                    "terminated {} ({})",
                    t.reason.clone().unwrap_or_default(),
                    t.exit_code
                )
            } else {
                "running".to_string()
            }
        });
        containers.push(format!(
            "{} {state}{} restarts {}",
            c.name,
            if c.ready { " ready" } else { "" },
            c.restart_count
        ));
    }
    format!(
        "{} ({}) {}{}{}: {}",
        pod.name_any(),
        pod.uid()
            .unwrap_or_default()
            .chars()
            .take(8)
            .collect::<String>(),
        status.phase.unwrap_or_default(),
        if ready { ", ready" } else { ", not ready" },
        if pod.metadata.deletion_timestamp.is_some() {
            ", being deleted"
        } else {
            ""
        },
        containers.join("; ")
    )
}

/// Nodes that are Ready, schedulable and carry no NoSchedule or NoExecute taint.
async fn schedulable_nodes(client: &Client) -> anyhow::Result<usize> {
    let nodes: Api<Node> = Api::all(client.clone());
    let list = nodes
        .list(&ListParams::default())
        .await
        .context("cannot list the cluster's nodes (pass --spread true or false)")?;
    Ok(list
        .items
        .iter()
        .filter(|n| {
            let spec = n.spec.clone().unwrap_or_default();
            let ready = n
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
            let tainted = spec
                .taints
                .iter()
                .flatten()
                .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute");
            ready && !spec.unschedulable.unwrap_or(false) && !tainted
        })
        .count())
}

/// Fails unless a pod of the operator's chart is ready somewhere (when the runner may look).
async fn check_operator(client: &Client) -> anyhow::Result<()> {
    let pods: Api<Pod> = Api::all(client.clone());
    let selector = "app.kubernetes.io/name=dengine-operator";
    match pods.list(&ListParams::default().labels(selector)).await {
        Ok(list) => {
            let ready: Vec<String> = list
                .items
                .iter()
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
                })
                .map(|p| format!("{}/{}", p.namespace().unwrap_or_default(), p.name_any()))
                .collect();
            if ready.is_empty() {
                bail!(
                    "no ready operator pod ({selector}) in the cluster: install the chart \
                     (e2e/run does) or wait for it to start"
                );
            }
            println!("operator: {}", ready.join(", "));
            Ok(())
        }
        Err(error) => {
            println!("operator: cannot list pods in all namespaces ({error}); assuming it runs");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dengine_operator::status::{LeaderStatus, MemberStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    fn healthy(replicas: u32) -> (DEngineCluster, DEngineClusterStatus) {
        let mut cluster = specs::cluster(&SpecOptions::example(), replicas as i32);
        cluster.metadata.generation = Some(4);
        let status = DEngineClusterStatus {
            observed_generation: Some(4),
            phase: Phase::Running,
            leader: Some(LeaderStatus {
                node_id: 1,
                pod: "e2e-0".into(),
            }),
            ready_members: replicas as i32,
            members: (0..replicas)
                .map(|k| MemberStatus {
                    pod: Env::pod_name(k),
                    node_id: u64::from(k) + 1,
                    role: MemberRole::Voter,
                    ready: true,
                    lag: 0,
                    connection_error: None,
                })
                .collect(),
            current_version: Some("e2e".into()),
            target_version: Some("e2e".into()),
            backup: None,
            restore: None,
            certificates: None,
            conditions: vec![Condition {
                type_: "Available".into(),
                status: "True".into(),
                reason: "QuorumReady".into(),
                message: "3 of 3 voters ready".into(),
                observed_generation: Some(4),
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
            }],
        };
        (cluster, status)
    }

    #[test]
    fn a_settled_cluster_is_running() {
        let (cluster, status) = healthy(3);
        assert_eq!(running(&cluster, &status, 3, Some("e2e")), Ok(()));
        assert_eq!(running(&cluster, &status, 3, None), Ok(()));
    }

    #[test]
    fn anything_short_of_settled_is_not_running_and_says_what_it_is() {
        let (cluster, status) = healthy(3);
        let mut cases: Vec<(&str, DEngineClusterStatus, u32, Option<&str>)> = Vec::new();
        cases.push(("other count", status.clone(), 1, None));
        cases.push(("other version", status.clone(), 3, Some("e2e-next")));
        let mut s = status.clone();
        s.observed_generation = Some(3);
        cases.push(("old generation", s, 3, None));
        let mut s = status.clone();
        s.members[2].role = MemberRole::Learner;
        cases.push(("a learner", s, 3, None));
        let mut s = status.clone();
        s.members[1].lag = 2;
        cases.push(("lagging", s, 3, None));
        let mut s = status.clone();
        s.members[1].ready = false;
        s.ready_members = 2;
        cases.push(("not ready", s, 3, None));
        let mut s = status.clone();
        s.phase = Phase::Upgrading;
        cases.push(("upgrading", s, 3, None));
        let mut s = status.clone();
        s.conditions[0].status = "False".into();
        cases.push(("unavailable", s, 3, None));
        let mut s = status.clone();
        s.leader = None;
        cases.push(("no leader", s, 3, None));
        for (what, s, replicas, version) in cases {
            let verdict = running(&cluster, &s, replicas, version);
            assert!(verdict.is_err(), "{what}: {verdict:?}");
        }
        let text = running(&cluster, &cluster_status_lagging(), 3, None).expect_err("lagging");
        assert!(text.contains("e2e-1 node 2 voter ready lag 5"), "{text}");
        assert!(text.contains("Available=True (QuorumReady"), "{text}");
    }

    fn cluster_status_lagging() -> DEngineClusterStatus {
        let (_, mut status) = healthy(3);
        status.members[1].lag = 5;
        status
    }
}
