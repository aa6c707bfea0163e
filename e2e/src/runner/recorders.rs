//! What the runner records while the scenarios run, from four background tasks:
//!
//! - the cluster's pods (a watch): each pod's readiness over time ([`PodSample`]s);
//! - the Events on the DEngineCluster (a watch): each occurrence, once ([`Occurrence`]s);
//! - the DEngineCluster's status (a watch): every distinct status, and `Available` over time;
//! - every pod's writer log (followed from the start, again whenever a pod or container is new,
//!   and again if a stream breaks while its container runs): the acknowledged writes
//!   ([`AckBook`]). A line read twice counts once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use dengine_operator::crd::DEngineCluster;
use dengine_operator::status::DEngineClusterStatus;
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{ListParams, LogParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinHandle;

use crate::acks::AckBook;
use crate::events::Occurrence;
use crate::specs::{APP_CONTAINER, CLUSTER};
use crate::timeline::PodSample;

/// The label selector of the scenarios' cluster's pods (the operator's selector labels).
pub fn pod_selector() -> String {
    format!("app.kubernetes.io/name=dengine,app.kubernetes.io/instance={CLUSTER}")
}

/// Everything recorded, shared between the recorders and the scenarios.
#[derive(Debug)]
pub struct Recorded {
    started: Instant,
    acks: Mutex<AckBook>,
    pods: Mutex<Vec<PodSample>>,
    events: Mutex<Vec<Occurrence>>,
    seen_events: Mutex<HashSet<(String, i32)>>,
    statuses: Mutex<Vec<(u64, DEngineClusterStatus)>>,
    available: Mutex<Vec<(u64, bool)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A recorder that panicked leaves its data as it was; keep using it.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Recorded {
    pub fn new(prefix: &str) -> Self {
        Recorded {
            started: Instant::now(),
            acks: Mutex::new(AckBook::new(prefix)),
            pods: Mutex::default(),
            events: Mutex::default(),
            seen_events: Mutex::default(),
            statuses: Mutex::default(),
            available: Mutex::default(),
        }
    }

    /// Milliseconds since the run started: the time of every record.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn acks(&self) -> MutexGuard<'_, AckBook> {
        lock(&self.acks)
    }

    pub fn pods(&self) -> Vec<PodSample> {
        lock(&self.pods).clone()
    }

    pub fn events(&self) -> Vec<Occurrence> {
        lock(&self.events).clone()
    }

    pub fn statuses(&self) -> Vec<(u64, DEngineClusterStatus)> {
        lock(&self.statuses).clone()
    }

    pub fn available(&self) -> Vec<(u64, bool)> {
        lock(&self.available).clone()
    }

    fn record_pod(&self, pod: &Pod, deleted: bool) {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let gone = deleted || pod.metadata.deletion_timestamp.is_some();
        let sample = PodSample {
            at_ms: self.now_ms(),
            pod: pod.name_any(),
            uid: pod.uid().unwrap_or_default(),
            ready: ready && !gone,
            gone,
        };
        let mut pods = lock(&self.pods);
        let unchanged = pods
            .iter()
            .rev()
            .find(|s| s.pod == sample.pod)
            .is_some_and(|last| {
                last.uid == sample.uid && last.ready == sample.ready && last.gone == sample.gone
            });
        if !unchanged {
            pods.push(sample);
        }
    }

    fn record_event(&self, event: &KubeEvent) {
        let Some(regarding) = event.regarding.as_ref() else {
            return;
        };
        if regarding.kind.as_deref() != Some("DEngineCluster")
            || regarding.name.as_deref() != Some(CLUSTER)
        {
            return;
        }
        let count = event.series.as_ref().map_or(1, |s| s.count);
        let key = (event.uid().unwrap_or_else(|| event.name_any()), count);
        if !lock(&self.seen_events).insert(key) {
            return;
        }
        let at_us = event
            .series
            .as_ref()
            .map(|s| s.last_observed_time.0.as_microsecond())
            .or_else(|| event.event_time.as_ref().map(|t| t.0.as_microsecond()))
            .or_else(|| {
                event
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0.as_microsecond())
            })
            .unwrap_or(0);
        lock(&self.events).push(Occurrence {
            at_us,
            seen_ms: self.now_ms(),
            reason: event.reason.clone().unwrap_or_default(),
            action: event.action.clone().unwrap_or_default(),
            note: event.note.clone().unwrap_or_default(),
        });
    }

    fn record_cluster(&self, cluster: &DEngineCluster) {
        let Some(status) = cluster.status.as_ref() else {
            return;
        };
        let now = self.now_ms();
        {
            let mut statuses = lock(&self.statuses);
            if statuses.last().map(|(_, s)| s) != Some(status) {
                statuses.push((now, status.clone()));
            }
        }
        if let Some(available) = status.conditions.iter().find(|c| c.type_ == "Available") {
            let value = available.status == "True";
            let mut timeline = lock(&self.available);
            if timeline.last().map(|(_, v)| *v) != Some(value) {
                timeline.push((now, value));
            }
        }
    }
}

/// The background tasks; stopped (aborted) at the end of the run.
#[derive(Debug)]
pub struct Recorders {
    tasks: Vec<JoinHandle<()>>,
}

impl Recorders {
    pub fn start(client: &Client, namespace: &str, recorded: &Arc<Recorded>) -> Self {
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let events: Api<KubeEvent> = Api::namespaced(client.clone(), namespace);
        let clusters: Api<DEngineCluster> = Api::namespaced(client.clone(), namespace);
        let tasks = vec![
            tokio::spawn(watch_pods(pods.clone(), recorded.clone())),
            tokio::spawn(watch_events(events, recorded.clone())),
            tokio::spawn(watch_cluster(clusters, recorded.clone())),
            tokio::spawn(collect_logs(pods, recorded.clone())),
        ];
        Recorders { tasks }
    }

    pub fn stop(&self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn watch_pods(api: Api<Pod>, recorded: Arc<Recorded>) {
    let config = watcher::Config::default().labels(&pod_selector());
    let mut stream = watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => {
                recorded.record_pod(&pod, false)
            }
            Ok(watcher::Event::Delete(pod)) => recorded.record_pod(&pod, true),
            Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
            Err(error) => tracing::debug!(%error, "pod watch"),
        }
    }
}

async fn watch_events(api: Api<KubeEvent>, recorded: Arc<Recorded>) {
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(e) | watcher::Event::InitApply(e)) => {
                recorded.record_event(&e)
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "event watch"),
        }
    }
}

async fn watch_cluster(api: Api<DEngineCluster>, recorded: Arc<Recorded>) {
    let config = watcher::Config::default().fields(&format!("metadata.name={CLUSTER}"));
    let mut stream = watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Apply(c) | watcher::Event::InitApply(c)) => {
                recorded.record_cluster(&c)
            }
            Ok(_) => {}
            Err(error) => tracing::debug!(%error, "cluster watch"),
        }
    }
}

/// The id of the writer container instance in `pod`, once it has started.
fn app_container_id(pod: &Pod) -> Option<(String, bool)> {
    let status = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == APP_CONTAINER)?;
    let running = status.state.as_ref().is_some_and(|s| s.running.is_some());
    Some((status.container_id.clone()?, running))
}

/// Follows the writer log of every pod of the cluster, each container instance from its start.
async fn collect_logs(api: Api<Pod>, recorded: Arc<Recorded>) {
    let following: Arc<Mutex<HashSet<String>>> = Arc::default();
    let done: Arc<Mutex<HashSet<String>>> = Arc::default();
    let params = ListParams::default().labels(&pod_selector());
    loop {
        if let Ok(list) = api.list(&params).await {
            for pod in list {
                let Some((container, _)) = app_container_id(&pod) else {
                    continue;
                };
                let key = format!("{}/{container}", pod.uid().unwrap_or_default());
                if lock(&done).contains(&key) || !lock(&following).insert(key.clone()) {
                    continue;
                }
                tokio::spawn(follow(
                    api.clone(),
                    pod.name_any(),
                    key,
                    container,
                    recorded.clone(),
                    following.clone(),
                    done.clone(),
                ));
            }
        }
        // Looks for new pods and containers every two seconds; a container lives far longer.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

async fn follow(
    api: Api<Pod>,
    pod: String,
    key: String,
    container: String,
    recorded: Arc<Recorded>,
    following: Arc<Mutex<HashSet<String>>>,
    done: Arc<Mutex<HashSet<String>>>,
) {
    let params = LogParams {
        container: Some(APP_CONTAINER.to_string()),
        follow: true,
        ..LogParams::default()
    };
    match api.log_stream(&pod, &params).await {
        Ok(reader) => {
            let mut lines = reader.lines();
            while let Some(Ok(line)) = lines.next().await {
                recorded.acks().record(&pod, &line);
            }
        }
        Err(error) => tracing::debug!(%error, pod, "log stream"),
    }
    // The same container still running: the stream broke, follow it again (from the start;
    // lines read twice count once). Otherwise this instance is over.
    let over = match api.get_opt(&pod).await {
        Ok(Some(p)) => app_container_id(&p) != Some((container.clone(), true)),
        Ok(None) => true,
        // Cannot tell: look again on the next round.
        Err(_) => false,
    };
    if over {
        lock(&done).insert(key.clone());
    }
    lock(&following).remove(&key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(uid: &str, name: &str, reason: &str, action: &str, count: Option<i32>) -> KubeEvent {
        let mut e = json!({
            "metadata": { "name": format!("{name}.{uid}"), "uid": uid },
            "eventTime": "2026-01-01T00:00:01.000001Z",
            "reason": reason,
            "action": action,
            "note": "n",
            "reportingController": "dengine-operator",
            "reportingInstance": "x",
            "regarding": { "kind": "DEngineCluster", "name": name, "namespace": "ns" }
        });
        if let Some(count) = count {
            e["series"] =
                json!({ "count": count, "lastObservedTime": "2026-01-01T00:05:00.000002Z" });
        }
        serde_json::from_value(e).expect("an Event")
    }

    #[test]
    fn an_event_counts_once_per_series_count_and_only_for_the_cluster() {
        let recorded = Recorded::new("e2e/");
        let first = event("u1", CLUSTER, "AddedLearner", "AddLearnerNode2", None);
        recorded.record_event(&first);
        recorded.record_event(&first); // seen again after a watch restart
        recorded.record_event(&event(
            "u2",
            "e2e-bad-storage",
            "AppliedObjects",
            "Apply",
            None,
        ));
        // The Recorder repeats the step within minutes: the same Event, its series counted up.
        recorded.record_event(&event(
            "u1",
            CLUSTER,
            "AddedLearner",
            "AddLearnerNode2",
            Some(2),
        ));
        let events = recorded.events();
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0].action, "AddLearnerNode2");
        assert_eq!(events[0].at_us, 1_767_225_601_000_001);
        assert_eq!(
            events[1].at_us, 1_767_225_900_000_002,
            "a repeat is at its series' time"
        );
    }

    fn pod(name: &str, uid: &str, ready: bool, deleting: bool) -> Pod {
        let mut p = json!({
            "metadata": { "name": name, "uid": uid },
            "status": { "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] }
        });
        if deleting {
            p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        serde_json::from_value(p).expect("a Pod")
    }

    #[test]
    fn pod_samples_record_changes_only_and_a_deleting_pod_is_gone() {
        let recorded = Recorded::new("e2e/");
        recorded.record_pod(&pod("e2e-0", "a", true, false), false);
        recorded.record_pod(&pod("e2e-0", "a", true, false), false);
        recorded.record_pod(&pod("e2e-0", "a", true, true), false);
        recorded.record_pod(&pod("e2e-0", "a", true, true), true);
        recorded.record_pod(&pod("e2e-0", "b", false, false), false);
        let samples: Vec<(String, bool, bool)> = recorded
            .pods()
            .into_iter()
            .map(|s| (s.uid, s.ready, s.gone))
            .collect();
        assert_eq!(
            samples,
            [
                ("a".into(), true, false),
                ("a".into(), false, true),
                ("b".into(), false, false)
            ]
        );
    }

    #[test]
    fn the_cluster_watch_keeps_distinct_statuses_and_available_flips() {
        let recorded = Recorded::new("e2e/");
        let with = |available: &str, ready: i32| -> DEngineCluster {
            serde_json::from_value(json!({
                "apiVersion": "dengine.io/v1alpha1", "kind": "DEngineCluster",
                "metadata": { "name": CLUSTER },
                "spec": crate::specs::to_json(&crate::specs::cluster(&crate::specs::SpecOptions::example(), 3))["spec"],
                "status": { "phase": "Running", "readyMembers": ready, "conditions": [{
                    "type": "Available", "status": available, "reason": "r", "message": "m",
                    "lastTransitionTime": "2026-01-01T00:00:00Z" }] }
            }))
            .expect("a DEngineCluster")
        };
        recorded.record_cluster(&with("True", 3));
        recorded.record_cluster(&with("True", 3));
        recorded.record_cluster(&with("True", 2));
        recorded.record_cluster(&with("False", 1));
        recorded.record_cluster(&with("True", 3));
        assert_eq!(recorded.statuses().len(), 4);
        let flips: Vec<bool> = recorded.available().into_iter().map(|(_, v)| v).collect();
        assert_eq!(flips, [true, false, true]);
    }
}
