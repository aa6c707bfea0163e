"""The operator's RBAC, checked rule by rule against what templates/rbac.yaml documents."""

from __future__ import annotations

import pytest

from conftest import CHART_DIR, NAMESPACE, RELEASE, REPO

# Exactly the rules the comment at the top of templates/rbac.yaml explains, in its order.
OPERATOR_RULES = [
    {"apiGroups": ["dengine.io"], "resources": ["dengineclusters"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["dengine.io"], "resources": ["dengineclusters/status"],
     "verbs": ["get", "patch"]},
    {"apiGroups": ["dengine.io"], "resources": ["dengineclusters/finalizers"],
     "verbs": ["update"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets"],
     "verbs": ["get", "list", "watch", "create", "patch"]},
    {"apiGroups": [""], "resources": ["services"],
     "verbs": ["get", "create", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["configmaps"],
     "verbs": ["get", "create", "patch"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"],
     "verbs": ["get", "create", "patch"]},
    {"apiGroups": [""], "resources": ["pods"],
     "verbs": ["get", "list", "watch", "delete"]},
    {"apiGroups": [""], "resources": ["persistentvolumeclaims"],
     "verbs": ["get", "list", "patch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"],
     "verbs": ["get", "create", "delete"]},
    {"apiGroups": [""], "resources": ["secrets"],
     "verbs": ["get", "create", "patch"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"],
     "verbs": ["create", "patch"]},
]  # fmt: skip

LEASE_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
     "verbs": ["get", "create", "patch"]},
]  # fmt: skip

SUBJECTS = [{"kind": "ServiceAccount", "name": RELEASE, "namespace": NAMESPACE}]
LEADER_ELECTION = f"{RELEASE}-leader-election"


def by_name(objects):
    return {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objects}


def test_all_namespaces_get_a_cluster_role(render):
    out = render()
    cluster_role = out.one("ClusterRole")
    assert cluster_role["metadata"]["name"] == RELEASE
    assert cluster_role["rules"] == OPERATOR_RULES
    binding = out.one("ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": RELEASE,
    }
    assert binding["subjects"] == SUBJECTS
    # The only namespaced Role is the one for the Lease.
    assert [r["metadata"]["name"] for r in out.of_kind("Role")] == [LEADER_ELECTION]
    assert not [a for a in out.container["args"] if a.startswith("--namespace")]


def test_leader_election_role_in_release_namespace(render):
    out = render()
    role = by_name(out.of_kind("Role"))[(NAMESPACE, LEADER_ELECTION)]
    assert role["rules"] == LEASE_RULES
    binding = by_name(out.of_kind("RoleBinding"))[(NAMESPACE, LEADER_ELECTION)]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": LEADER_ELECTION,
    }
    assert binding["subjects"] == SUBJECTS


def test_watched_namespaces_get_roles_and_no_cluster_role(render):
    out = render({"watchNamespaces": ["a", "b"]})
    assert out.of_kind("ClusterRole") == []
    assert out.of_kind("ClusterRoleBinding") == []
    roles = by_name(out.of_kind("Role"))
    bindings = by_name(out.of_kind("RoleBinding"))
    assert set(roles) == {("a", RELEASE), ("b", RELEASE), (NAMESPACE, LEADER_ELECTION)}
    assert set(bindings) == set(roles)
    for namespace in ("a", "b"):
        assert roles[(namespace, RELEASE)]["rules"] == OPERATOR_RULES
        binding = bindings[(namespace, RELEASE)]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": RELEASE,
        }
        # The ServiceAccount lives in the release namespace, not the watched one.
        assert binding["subjects"] == SUBJECTS
    assert roles[(NAMESPACE, LEADER_ELECTION)]["rules"] == LEASE_RULES

    args = out.container["args"]
    assert [a for a in args if a.startswith("--namespace")] == ["--namespace=a", "--namespace=b"]


def test_watching_the_release_namespace_itself_keeps_names_apart(render):
    out = render({"watchNamespaces": [NAMESPACE]})
    roles = by_name(out.of_kind("Role"))
    assert set(roles) == {(NAMESPACE, RELEASE), (NAMESPACE, LEADER_ELECTION)}


def test_rbac_create_false_renders_none(render):
    out = render({"rbac": {"create": False}})
    for kind in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"):
        assert out.of_kind(kind) == [], kind


def test_no_wildcards_anywhere(render):
    for values in (None, {"watchNamespaces": ["a"]}):
        out = render(values)
        for obj in out.of_kind("ClusterRole") + out.of_kind("Role"):
            for rule in obj["rules"]:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field], (obj["metadata"]["name"], rule)


def test_template_comment_documents_every_rule():
    """The comment block at the top of templates/rbac.yaml is the documentation: every
    resource granted must be explained there."""
    source = (CHART_DIR / "templates" / "rbac.yaml").read_text()
    comment = source[source.index("{{- /*") : source.index("*/ -}}")]
    for rule in OPERATOR_RULES + LEASE_RULES:
        for resource in rule["resources"]:
            assert resource in comment, f"{resource} is granted but not explained"
    doc = (REPO / "docs" / "operator-rbac.md").read_text()
    assert "charts/dengine-operator/templates/rbac.yaml" in doc
    for rule in OPERATOR_RULES + LEASE_RULES:
        for resource in rule["resources"]:
            assert resource in doc, f"{resource} missing from docs/operator-rbac.md"


@pytest.mark.parametrize("name", ["a", "team-1"])
def test_single_watched_namespace(render, name):
    out = render({"watchNamespaces": [name]})
    assert (name, RELEASE) in by_name(out.of_kind("Role"))
    assert f"--namespace={name}" in out.container["args"]
