//! Scenario 7: bad input is refused by the API server itself, before the operator sees it, with
//! the CRD's own words: 9 replicas (the schema's maximum is 7), an application container named
//! `dengine` (a CEL rule), and the storage size changed after creation (a CEL transition rule).
//! The same objects are refused by the local validation in the unit tests (src/specs/tests.rs).

use anyhow::{anyhow, bail, ensure};
use dengine_operator::crd::DEngineCluster;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};

use crate::runner::env::Env;
use crate::runner::report::Report;
use crate::specs::{self, BadInput};

pub async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    for bad in specs::bad_inputs(&env.options) {
        let name = bad.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let refusal = match &bad.old {
            None => create(env, &bad).await?,
            Some(old) => update(env, &name, old, &bad).await?,
        };
        let message = refusal.message.clone();
        ensure!(
            refusal.code == 422,
            "{}: refused with HTTP {} ({}), not 422 Invalid: {message}",
            bad.what,
            refusal.code,
            refusal.reason
        );
        ensure!(
            message.contains(bad.field) && message.contains(bad.words),
            "{}: the API server's message does not name {} with {:?}: {message}",
            bad.what,
            bad.field,
            bad.words
        );
        report.check(format!("{}: refused (422): {message}", bad.what));
    }
    Ok(())
}

/// Creates the bad object; it must be refused and not exist afterwards.
async fn create(env: &Env, bad: &BadInput) -> anyhow::Result<kube::core::Status> {
    let name = bad.object["metadata"]["name"].as_str().unwrap_or_default();
    let object: DEngineCluster = serde_json::from_value(bad.object.clone())?;
    let refusal = match env.clusters().create(&PostParams::default(), &object).await {
        Ok(_) => {
            env.clusters()
                .delete(name, &DeleteParams::default())
                .await
                .ok();
            bail!("{}: the API server accepted it", bad.what);
        }
        Err(kube::Error::Api(status)) => *status,
        Err(other) => return Err(anyhow!("{}: {other}", bad.what)),
    };
    ensure!(
        env.clusters().get_opt(name).await?.is_none(),
        "{}: refused, yet {name} exists",
        bad.what
    );
    Ok(refusal)
}

/// Creates `old`, then changes it as `bad.object` says with a merge patch (as `kubectl edit`
/// or `apply` would); the change must be refused and the stored object unchanged.
async fn update(
    env: &Env,
    name: &str,
    old: &Value,
    bad: &BadInput,
) -> anyhow::Result<kube::core::Status> {
    let clusters = env.clusters();
    if clusters.get_opt(name).await?.is_some() {
        clusters.delete(name, &DeleteParams::default()).await?;
        env.wait_for(&format!("{name} gone"), env.secs(120), || async {
            Ok(match env.clusters().get_opt(name).await? {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            })
        })
        .await?;
    }
    let stored: DEngineCluster = serde_json::from_value(old.clone())?;
    clusters.create(&PostParams::default(), &stored).await?;
    let patch = json!({ "spec": bad.object["spec"].clone() });
    let result = clusters
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await;
    let after = clusters.get_opt(name).await?;
    clusters.delete(name, &DeleteParams::default()).await.ok();
    let refusal = match result {
        Ok(_) => bail!("{}: the API server accepted the change", bad.what),
        Err(kube::Error::Api(status)) => *status,
        Err(other) => return Err(anyhow!("{}: {other}", bad.what)),
    };
    let after = after.ok_or_else(|| anyhow!("{name} vanished"))?;
    ensure!(
        after.spec == stored.spec,
        "{}: refused, yet the stored spec changed",
        bad.what
    );
    Ok(refusal)
}
