"""The operator's Deployment, Service, ServiceMonitor and ServiceAccount as rendered."""

from __future__ import annotations

from conftest import NAMESPACE, RELEASE


def env_map(container):
    return {e["name"]: e for e in container.get("env", [])}


def test_defaults_render_the_expected_objects(render):
    out = render()
    assert out.kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )
    # Every namespaced object is placed in the release namespace explicitly, so that
    # `helm template | kubectl apply -f -` lands them there too.
    for obj in out.objects:
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]


def test_default_deployment(render):
    out = render()
    deployment = out.one("Deployment")
    assert deployment["metadata"]["name"] == RELEASE
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector == {
        "app.kubernetes.io/name": "dengine-operator",
        "app.kubernetes.io/instance": RELEASE,
    }
    assert selector.items() <= pod["metadata"]["labels"].items()
    assert pod["spec"]["serviceAccountName"] == RELEASE

    container = out.container
    assert container["image"] == "ghcr.io/d-engine/dengine-operator:0.1.0"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"] == [
        "run",
        "--listen=0.0.0.0:8080",
        "--leader-election=true",
        f"--lease-name={RELEASE}",
        f"--lease-namespace={NAMESPACE}",
        "--log-format=json",
        "--log-level=info",
    ]
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]


def test_probes_use_the_http_port(render):
    container = render().container
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def test_downward_api_env(render):
    env = env_map(render().container)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_security_context(render):
    out = render()
    pod_security = out.one("Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert pod_security["runAsUser"] == 65532
    assert pod_security["seccompProfile"] == {"type": "RuntimeDefault"}
    security = out.container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == 65532
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}


def test_security_context_comes_from_values(render):
    out = render(
        {
            "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 1000, "fsGroup": 1000},
            "securityContext": {"readOnlyRootFilesystem": False},
        }
    )
    # Helm merges maps with the defaults; a key is dropped by setting it to null.
    assert out.one("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1000
    assert out.one("Deployment")["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 1000
    assert out.container["securityContext"]["readOnlyRootFilesystem"] is False
    dropped = render({"securityContext": {"seccompProfile": None}})
    assert "seccompProfile" not in dropped.container["securityContext"]


def test_scheduling_and_pod_metadata_values(render):
    out = render(
        {
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}},
            "podAnnotations": {"example.com/scrape": "true"},
            "podLabels": {"team": "storage"},
            "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "128Mi"}},
            "priorityClassName": "system-cluster-critical",
            "imagePullSecrets": [{"name": "regcred"}],
        }
    )
    pod = out.one("Deployment")["spec"]["template"]
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["spec"]["tolerations"][0]["key"] == "dedicated"
    assert "podAntiAffinity" in pod["spec"]["affinity"]
    assert pod["metadata"]["annotations"] == {"example.com/scrape": "true"}
    assert pod["metadata"]["labels"]["team"] == "storage"
    assert pod["spec"]["priorityClassName"] == "system-cluster-critical"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    assert out.container["resources"]["requests"]["cpu"] == "100m"
    assert out.container["resources"]["limits"]["memory"] == "128Mi"


def test_custom_image(render):
    out = render(
        {"image": {"repository": "registry.example.com/dengine-operator", "tag": "0.2.0-rc.1", "pullPolicy": "Always"}}
    )
    assert out.container["image"] == "registry.example.com/dengine-operator:0.2.0-rc.1"
    assert out.container["imagePullPolicy"] == "Always"
    assert out.one("Deployment")["metadata"]["labels"]["app.kubernetes.io/version"] == "0.2.0-rc.1"


def test_log_values(render):
    args = render({"logFormat": "text", "logLevel": "info,dengine_operator=debug"}).container["args"]
    assert "--log-format=text" in args
    assert "--log-level=info,dengine_operator=debug" in args


def test_single_replica_without_leader_election(render):
    out = render({"replicas": 1, "leaderElection": {"enabled": False}})
    assert out.one("Deployment")["spec"]["replicas"] == 1
    args = out.container["args"]
    assert "--leader-election=false" in args
    assert not [a for a in args if a.startswith("--lease-")]
    # No Lease to take: no leader-election Role either.
    assert out.of_kind("Role") == [] and out.of_kind("RoleBinding") == []


def test_lease_name_value(render):
    args = render({"leaderElection": {"leaseName": "ops-lease"}}).container["args"]
    assert "--lease-name=ops-lease" in args


def test_extra_env_is_appended(render):
    env = env_map(render({"extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}]}).container)
    assert env["RUST_BACKTRACE"] == {"name": "RUST_BACKTRACE", "value": "1"}
    assert "POD_NAME" in env


def test_metrics_service(render):
    service = render().one("Service")
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == render().one("Deployment")["spec"]["selector"]["matchLabels"]
    assert render({"metrics": {"service": {"enabled": False}}}).of_kind("Service") == []


def test_service_monitor_only_when_enabled(render):
    assert render().of_kind("ServiceMonitor") == []
    out = render(
        {"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "prom"}}}}
    )
    monitor = out.one("ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    # honorLabels: the per-cluster series keep the DEngineCluster's namespace label rather than
    # the operator pod's (the dashboard and the alerts filter and group by it).
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "honorLabels": True, "interval": "15s"}
    ]
    # It must select the metrics Service.
    service_labels = out.one("Service")["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_service_account(render):
    account = render({"serviceAccount": {"annotations": {"example.com/role": "x"}}}).one("ServiceAccount")
    assert account["metadata"]["name"] == RELEASE
    assert account["metadata"]["annotations"] == {"example.com/role": "x"}

    out = render({"serviceAccount": {"name": "custom"}})
    assert out.one("ServiceAccount")["metadata"]["name"] == "custom"
    assert out.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "custom"

    existing = render({"serviceAccount": {"create": False, "name": "ops"}})
    assert existing.of_kind("ServiceAccount") == []
    assert existing.one("Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "ops"
    assert existing.one("ClusterRoleBinding")["subjects"][0]["name"] == "ops"


def test_release_name_without_the_chart_name_prefixes_it(render):
    out = render(name="prod")
    assert out.one("Deployment")["metadata"]["name"] == "prod-dengine-operator"
    assert "--lease-name=prod-dengine-operator" in out.container["args"]


def test_notes_tell_what_to_apply_next(render):
    notes = render().notes
    assert "makes the admin token Secret" in notes
    assert "kubectl create secret" not in notes
    assert "examples/cluster-with-app.yaml" in notes
    assert "every namespace" in notes
    assert "these namespaces only: a, b" in render({"watchNamespaces": ["a", "b"]}).notes
