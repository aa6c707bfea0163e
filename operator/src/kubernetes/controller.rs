//! The controller: one driver step per reconcile of a DEngineCluster, then its Event and, if it
//! changed, its status.
//!
//! The controller watches the clusters, the StatefulSets they own and their pods. Status writes
//! do not trigger reconciles (only spec changes, by generation, do), so a status that changes
//! every time cannot make a hot loop; progress between steps comes from the requeue each step
//! asks for and from the owned objects' watches.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{predicates, reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::backups::{self, s3_destinations, Backups, DestinationFactory};
use super::certificates::{self, Issued};
use super::restore;
use super::{admin_tls, admin_token, ensure_admin_token, event_for, KubeWorkload};
use crate::admin::{AdminChannels, AdminTls, GrpcMembership};
use crate::backup::BackupSource;
use crate::crd::{DEngineCluster, BACKUP_REQUEST_ANNOTATION};
use crate::decide::NextAction;
use crate::driver::{self, Membership};
use crate::metrics::{ClusterLabels, Metrics};
use crate::objects::{Names, MANAGER};
use crate::observed::Limits;
use crate::status::{
    report, report_error, set_condition, stale_certificates, ConditionType, DEngineClusterStatus,
};
use crate::Error;

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// The namespaces to watch; empty for all.
    pub namespaces: Vec<String>,
    /// The operator's tolerances.
    pub limits: Limits,
    /// The timeout of each Admin API call.
    pub admin_timeout: Duration,
    /// This operator replica's name, in the Events it records.
    pub instance: Option<String>,
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub config: ControllerConfig,
    /// Channels to the nodes' Admin API, kept across reconciles.
    pub admin_channels: AdminChannels,
    /// The backups in progress.
    pub backups: Backups,
    /// Makes the object store a backup spec names.
    pub backup_destinations: DestinationFactory,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>, config: ControllerConfig) -> Self {
        let reporter = Reporter {
            controller: MANAGER.to_string(),
            instance: config.instance.clone(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            config,
            admin_channels: AdminChannels::default(),
            backups: Backups::default(),
            backup_destinations: s3_destinations(),
        }
    }

    /// Backup Jobs are looked at this often while they run (tests: often).
    pub fn with_backup_job_poll(mut self, poll: std::time::Duration) -> Self {
        self.backups.job_poll = poll;
        self
    }

    /// Backups go to the stores `destinations` makes instead of S3 (tests).
    pub fn with_backup_destinations(mut self, destinations: DestinationFactory) -> Self {
        self.backup_destinations = destinations;
        self
    }
}

/// Runs the controller until `shutdown` completes, one per watched namespace (or one for all).
pub async fn run_controller(
    ctx: Arc<Context>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + Clone + 'static,
) {
    let scopes: Vec<Option<String>> = if ctx.config.namespaces.is_empty() {
        vec![None]
    } else {
        ctx.config.namespaces.iter().cloned().map(Some).collect()
    };
    let runs = scopes
        .into_iter()
        .map(|namespace| run_scope(ctx.clone(), namespace, shutdown.clone()));
    futures::future::join_all(runs).await;
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn run_scope(
    ctx: Arc<Context>,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = &ctx.client;
    let ns = namespace.as_deref();
    let (reader, writer) = reflector::store();
    // Spec changes only: a status write must not wake the reconciler that wrote it.
    let clusters = watcher(
        api::<DEngineCluster>(client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(writer)
    .applied_objects()
    .predicate_filter(spec_or_backup_request, Default::default());
    let pods_config = watcher::Config::default().labels("app.kubernetes.io/name=dengine");
    let sweeper = tokio::spawn(sweep_deleted(
        ctx.clone(),
        namespace.clone(),
        reader.clone(),
    ));
    Controller::for_stream(clusters, reader)
        .owns(api::<StatefulSet>(client, ns), watcher::Config::default())
        .watches(api::<Pod>(client, ns), pods_config, |pod| {
            let instance = pod.labels().get("app.kubernetes.io/instance")?.clone();
            let namespace = pod.namespace()?;
            Some(ObjectRef::<DEngineCluster>::new(&instance).within(&namespace))
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile loop");
            }
        })
        .await;
    sweeper.abort();
}

/// What wakes the reconciler: a spec change (the generation) or a new value of the backup
/// request annotation; not the status the operator writes itself.
fn spec_or_backup_request(cluster: &DEngineCluster) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    predicates::generation(cluster).hash(&mut hasher);
    cluster
        .annotations()
        .get(BACKUP_REQUEST_ANNOTATION)
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// How soon to look again after `action`.
pub fn requeue_after(action: &NextAction) -> Duration {
    match action {
        NextAction::Paused => Duration::from_secs(60),
        NextAction::Done => Duration::from_secs(30),
        NextAction::ReportDegraded { .. } => Duration::from_secs(15),
        NextAction::WaitForPod { .. }
        | NextAction::WaitForLeader
        | NextAction::WaitForCatchUp { .. } => Duration::from_secs(3),
        _ => Duration::from_secs(1),
    }
}

/// One step for one cluster, through the nodes' Admin API.
pub async fn reconcile(cluster: Arc<DEngineCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let timeout = ctx.config.admin_timeout;
    let channels = ctx.admin_channels.clone();
    reconcile_with(cluster, ctx, |token, tls| {
        GrpcMembership::new(Some(token), timeout)
            .with_tls(tls)
            .with_channels(channels)
    })
    .await
}

/// One step for one cluster, through the [`Membership`] that `membership` makes from the
/// cluster's admin token and TLS material (tests give a simulated one).
pub async fn reconcile_with<M>(
    cluster: Arc<DEngineCluster>,
    ctx: Arc<Context>,
    membership: impl FnOnce(String, Option<AdminTls>) -> M,
) -> Result<Action, Error>
where
    M: Membership + BackupSource,
{
    if cluster.metadata.deletion_timestamp.is_some() {
        // Being deleted: the garbage collector removes what the cluster owns. A step now would
        // re-create objects in a terminating namespace or patch the status of an object about
        // to vanish, and fail at it.
        ctx.metrics.observe_reconcile("deleting", Duration::ZERO);
        ctx.metrics.forget_cluster(&cluster_labels(&cluster));
        ctx.backups.forget(&cluster.uid().unwrap_or_default());
        return Ok(Action::await_change());
    }
    let started = Instant::now();
    let result = step(&cluster, &ctx, membership).await;
    let action_label = match &result {
        Ok(Reconciled::Took(action, _)) => action_name(action),
        Ok(Reconciled::SecretsMissing) => "secrets_missing",
        Err(_) => "error",
    };
    ctx.metrics
        .observe_reconcile(action_label, started.elapsed());
    match result? {
        Reconciled::Took(action, backups_wake) => {
            let after = requeue_after(&action);
            Ok(Action::requeue(
                backups_wake.map_or(after, |wake| wake.min(after)),
            ))
        }
        Reconciled::SecretsMissing => Ok(Action::requeue(SECRETS_RECHECK)),
    }
}

/// How one reconcile ended, when it did not fail.
enum Reconciled {
    /// The driver took this step (waiting is a step too); backups want another look this
    /// soon, if they do.
    Took(NextAction, Option<Duration>),
    /// No step could be taken: the admin token or the TLS Secret the spec names is missing
    /// or unusable. The status and an Event say which; nothing was changed.
    SecretsMissing,
}

/// How soon a cluster whose Secrets are missing is looked at again (a Secret created
/// meanwhile does not wake the controller, which watches no Secrets).
const SECRETS_RECHECK: Duration = Duration::from_secs(15);

/// Takes one step.
async fn step<M: Membership + BackupSource>(
    cluster: &Arc<DEngineCluster>,
    ctx: &Context,
    membership: impl FnOnce(String, Option<AdminTls>) -> M,
) -> Result<Reconciled, Error> {
    let now = Timestamp::now();
    let name = cluster.name_any();
    let namespace = cluster
        .namespace()
        .ok_or_else(|| Error::Invalid(format!("{name} has no namespace")))?;
    let names = Names::new(&name, &namespace);
    let generation = cluster.metadata.generation;
    if !cluster.spec.paused && ensure_admin_token(&ctx.client, cluster).await? {
        let secret = &cluster.spec.auth.admin_token_secret;
        let note = format!(
            "Secret {} did not exist: made it with a random token under `{}`, owned by the \
             cluster",
            secret.name, secret.key
        );
        publish_note(
            ctx,
            cluster,
            EventType::Normal,
            "CreatedAdminToken",
            "CreateSecret",
            note,
        )
        .await;
    }
    let credentials = async {
        let issued = match cluster.spec.paused {
            true => None,
            false => certificates::ensure(&ctx.client, cluster, now).await?,
        };
        let token = admin_token(&ctx.client, cluster).await?;
        let tls = admin_tls(&ctx.client, cluster).await?;
        Ok::<_, Error>((token, tls, issued))
    };
    let (token, tls, issued) = match credentials.await {
        Ok(credentials) => credentials,
        Err(error @ (Error::AdminToken(_) | Error::TlsSecret(_))) => {
            let (reason, message) = match &error {
                Error::AdminToken(message) => ("AdminTokenMissing", message.clone()),
                _ => ("TlsSecretInvalid", error.to_string()),
            };
            let status = report_error(
                cluster.status.as_ref(),
                reason,
                &message,
                generation,
                Time(now),
            );
            observe_cluster(ctx, cluster, &status);
            write_status(ctx, cluster, status).await?;
            publish_note(
                ctx,
                cluster,
                EventType::Warning,
                reason,
                "ReadSecrets",
                message,
            )
            .await;
            return Ok(Reconciled::SecretsMissing);
        }
        Err(other) => return Err(other),
    };
    if let Some(Issued::New { status, renewed }) = &issued {
        let (reason, note) = match renewed {
            false => (
                "IssuedCertificates",
                format!(
                    "issued the members' certificates, valid until {}",
                    status.expires.0
                ),
            ),
            true => (
                "RenewedCertificates",
                format!(
                    "renewed the members' certificates (valid until {}); the pods restart one \
                     at a time to take them",
                    status.expires.0
                ),
            ),
        };
        publish_note(
            ctx,
            cluster,
            EventType::Normal,
            reason,
            "IssueCertificates",
            note,
        )
        .await;
    }
    // The pod template carries when the certificates were issued: the objects are built from
    // the cluster as it is about to be reported.
    let certificates = issued.as_ref().map(|issued| issued.status().clone());
    let seen = match &certificates {
        Some(status) => {
            let mut seen = (**cluster).clone();
            seen.status
                .get_or_insert_with(Default::default)
                .certificates = Some(status.clone());
            Arc::new(seen)
        }
        None => cluster.clone(),
    };
    let workload = KubeWorkload::new(ctx.client.clone(), seen, now)?;
    let membership = membership(token, tls);
    let step = driver::step(&cluster.spec, &ctx.config.limits, &workload, &membership).await?;
    tracing::info!(cluster = %name, namespace = %namespace, action = ?step.action, "step");
    if let Some(event) = event_for(&step.action) {
        publish(ctx, cluster, event).await;
    }
    let mut status = report(
        cluster.status.as_ref(),
        &step,
        &names,
        generation,
        Time(now),
    );
    if certificates.is_some() {
        status.certificates = certificates;
    }
    look_at_certificates(ctx, cluster, &step, &names, &mut status, now).await;
    let backups_wake = if step.action == NextAction::Paused {
        None
    } else {
        restore::look(ctx, cluster, &mut status, now).await?;
        backups::look(ctx, cluster, &step, &membership, &mut status, now).await
    };
    observe_cluster(ctx, cluster, &status);
    write_status(ctx, cluster, status).await?;
    Ok(Reconciled::Took(step.action, backups_wake))
}

/// With `spec.tls.generate`, says (condition `CertificatesStale`, a Warning Event when it turns
/// true) whether pods still run certificates older than the current issue a day after it.
async fn look_at_certificates(
    ctx: &Context,
    cluster: &DEngineCluster,
    step: &driver::Step,
    names: &Names,
    status: &mut DEngineClusterStatus,
    now: Timestamp,
) {
    if !cluster.spec.tls.as_ref().is_some_and(|tls| tls.generate) {
        return;
    }
    let Some(current) = status.certificates.clone() else {
        return;
    };
    let stale = stale_certificates(&current, &step.workload.certificate_serials, names, now);
    let was_stale = status
        .conditions
        .iter()
        .any(|c| c.type_ == ConditionType::CertificatesStale.as_str() && c.status == "True");
    let (reason, message) = match &stale {
        Some(message) => ("RolloutIncomplete", message.clone()),
        None => (
            "Current",
            "every pod runs the current certificates, or their rollout is under way".to_string(),
        ),
    };
    set_condition(
        &mut status.conditions,
        ConditionType::CertificatesStale,
        stale.is_some(),
        reason,
        &message,
        cluster.metadata.generation,
        Time(now),
    );
    if stale.is_some() && !was_stale {
        publish_note(
            ctx,
            cluster,
            EventType::Warning,
            "CertificatesStale",
            "RenewCertificates",
            message,
        )
        .await;
    }
}

/// The metric labels of `cluster`.
fn cluster_labels(cluster: &DEngineCluster) -> ClusterLabels {
    ClusterLabels {
        namespace: cluster.namespace().unwrap_or_default(),
        cluster: cluster.name_any(),
    }
}

/// The cluster's gauges, from the status about to be written.
fn observe_cluster(ctx: &Context, cluster: &DEngineCluster, status: &DEngineClusterStatus) {
    let degraded = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Degraded" && c.status == "True");
    let labels = cluster_labels(cluster);
    ctx.metrics.observe_cluster(
        &labels,
        degraded,
        i64::from(status.ready_members),
        i64::from(cluster.spec.replicas),
    );
    if cluster.spec.backup.is_none() {
        ctx.metrics.forget_backups(&labels);
        return;
    }
    let failing = status
        .conditions
        .iter()
        .any(|c| c.type_ == "BackupFailed" && c.status == "True");
    ctx.metrics.backups_configured(&labels, failing);
    if let Some(last) = status
        .backup
        .as_ref()
        .and_then(|b| b.last_successful.as_ref())
    {
        ctx.metrics
            .last_backup(&labels, last.size_bytes, last.finished.0.as_second());
    }
}

/// How often the operator looks for clusters deleted without it seeing them go (a delete
/// without a finalizer ends in no reconcile): their metrics and backups are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// Drops, every [`SWEEP_EVERY`], what the operator keeps for clusters of `namespace` (every
/// namespace when `None`) that `store` no longer holds.
async fn sweep_deleted(
    ctx: Arc<Context>,
    namespace: Option<String>,
    store: reflector::Store<DEngineCluster>,
) {
    let mut every = tokio::time::interval(SWEEP_EVERY);
    loop {
        every.tick().await;
        if store.wait_until_ready().await.is_err() {
            return;
        }
        let clusters = store.state();
        let present: Vec<String> = clusters.iter().filter_map(|c| c.uid()).collect();
        let names: Vec<ClusterLabels> = clusters.iter().map(|c| cluster_labels(c)).collect();
        for gone in ctx.backups.forget_missing(namespace.as_deref(), &present) {
            tracing::info!(
                cluster = %gone.cluster,
                namespace = %gone.namespace,
                "stopped the backup of a deleted cluster"
            );
        }
        ctx.metrics
            .forget_clusters_except(namespace.as_deref(), &names);
    }
}

/// Records an Event of `type_` with `reason`, `action` and `note` on `cluster`.
pub(super) async fn publish_note(
    ctx: &Context,
    cluster: &DEngineCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    publish(ctx, cluster, event).await;
}

async fn publish(ctx: &Context, cluster: &DEngineCluster, event: Event) {
    if let Err(error) = ctx.recorder.publish(&event, &cluster.object_ref(&())).await {
        tracing::warn!(%error, reason = %event.reason, "recording an Event failed");
    }
}

/// Writes the status if it differs from what the resource holds.
async fn write_status(
    ctx: &Context,
    cluster: &DEngineCluster,
    status: DEngineClusterStatus,
) -> Result<(), Error> {
    if cluster.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let namespace = cluster.namespace().unwrap_or_default();
    let clusters: Api<DEngineCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    // Server-side apply: fields the operator no longer reports (a leader that is gone) are
    // removed, which a merge patch would leave behind.
    let patch = json!({
        "apiVersion": DEngineCluster::api_version(&()),
        "kind": DEngineCluster::kind(&()),
        "status": status,
    });
    clusters
        .patch_status(
            &cluster.name_any(),
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await?;
    ctx.metrics.status_writes.inc();
    Ok(())
}

fn error_policy(cluster: Arc<DEngineCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(cluster = %cluster.name_any(), %error, "reconcile failed; retrying");
    ctx.metrics.observe_failure(error);
    Action::requeue(Duration::from_secs(5))
}

/// The metric label of an action.
pub fn action_name(action: &NextAction) -> &'static str {
    match action {
        NextAction::Paused => "paused",
        NextAction::ApplyObjects => "apply_objects",
        NextAction::Bootstrap => "bootstrap",
        NextAction::ClaimVolume { .. } => "claim_volume",
        NextAction::RecordFounded => "record_founded",
        NextAction::WaitForPod { .. } => "wait_for_pod",
        NextAction::WaitForLeader => "wait_for_leader",
        NextAction::AddLearner { .. } => "add_learner",
        NextAction::WaitForCatchUp { .. } => "wait_for_catch_up",
        NextAction::PromoteLearner { .. } => "promote_learner",
        NextAction::GrowStatefulSet { .. } => "grow",
        NextAction::TransferLeadership { .. } => "transfer_leadership",
        NextAction::RemoveMember { .. } => "remove_member",
        NextAction::ShrinkStatefulSet { .. } => "shrink",
        NextAction::ReplaceMember { .. } => "replace_member",
        NextAction::UpgradePod { .. } => "upgrade_pod",
        NextAction::ReportDegraded { .. } => "degraded",
        NextAction::Done => "done",
    }
}
