"""The chart's CRD is the generated one, and the examples are valid DEngineClusters."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from conftest import CHART_DIR, REPO

CRD_NAME = "dengineclusters.dengine.io.yaml"
GENERATED_CRD = REPO / "crds" / CRD_NAME
CHART_CRD = CHART_DIR / "crds" / CRD_NAME
EXAMPLES = sorted((CHART_DIR / "examples").glob("*.yaml"))


def test_chart_crd_is_byte_identical_to_the_generated_one():
    assert CHART_CRD.read_bytes() == GENERATED_CRD.read_bytes(), (
        f"{CHART_CRD.relative_to(REPO)} differs from {GENERATED_CRD.relative_to(REPO)}; "
        f"after regenerating crds/, copy it: cp {GENERATED_CRD.relative_to(REPO)} "
        f"{CHART_CRD.relative_to(REPO)}"
    )


def test_helm_loads_the_crd(chart):
    assert [c["filename"] for c in chart.crds] == [f"dengine-operator/crds/{CRD_NAME}"]
    # Helm installs crds/ as is, never templated: it must be the only CRD and not under templates/.
    assert not any("CustomResourceDefinition" in t["data"] for t in chart.templates)


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return yaml.safe_load(GENERATED_CRD.read_text())


@pytest.fixture(scope="module")
def crd_version(crd) -> dict[str, Any]:
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    return version


def openapi_to_jsonschema(node: Any) -> Any:
    """The CRD's structural OpenAPI v3 schema as plain JSON Schema: x-kubernetes-* keys
    dropped (CEL rules, int-or-string, list types are the API server's business) and
    `nullable` turned into a null type."""
    if isinstance(node, list):
        return [openapi_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: openapi_to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def unknown_fields(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Fields the API server would prune as unknown (a typo such as `storge` is silently
    dropped by a structural schema): everything not declared, except under
    x-kubernetes-preserve-unknown-fields or additionalProperties."""
    found: list[str] = []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        additional = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields", False)
        for key, child in value.items():
            where = f"{path}.{key}"
            if key in properties:
                found += unknown_fields(child, properties[key], where)
            elif isinstance(additional, dict):
                found += unknown_fields(child, additional, where)
            elif not preserve and not additional:
                found.append(where)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, child in enumerate(value):
            found += unknown_fields(child, schema["items"], f"{path}[{i}]")
    return found


def load_example(path: Path) -> dict[str, Any]:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert len(documents) == 1, f"{path.name}: one DEngineCluster per example"
    return documents[0]


def test_there_are_two_examples():
    assert [p.name for p in EXAMPLES] == ["cluster-minimal.yaml", "cluster-with-app.yaml"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_against_the_crd(path, crd, crd_version):
    example = load_example(path)
    assert example["apiVersion"] == f"{crd['spec']['group']}/{crd_version['name']}"
    assert example["kind"] == crd["spec"]["names"]["kind"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", example["metadata"]["name"])
    assert "status" not in example

    openapi = crd_version["schema"]["openAPIV3Schema"]
    schema = openapi_to_jsonschema(openapi)
    errors = sorted(
        jsonschema.Draft4Validator(schema).iter_errors(example), key=lambda e: list(e.path)
    )
    assert not errors, "\n".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)

    # metadata is the API server's; everything under spec must be declared.
    assert unknown_fields(example["spec"], openapi["properties"]["spec"], "spec") == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_keeps_the_cel_rules(path):
    """The CRD's CEL rules are checked by the API server only; the ones an example could
    break are repeated here."""
    spec = load_example(path)["spec"]
    app_spec = (spec.get("app") or {}).get("spec", {})
    names = [c["name"] for c in app_spec.get("containers", []) + app_spec.get("initContainers", [])]
    assert "dengine" not in names, "the container name dengine is taken by the node sidecar"
    ports = spec.get("ports", {"client": 2379, "peer": 2380, "metrics": 2381})
    assert len(set(ports.values())) == len(ports)
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?", spec["storage"]["size"])


def test_the_validation_catches_mistakes(crd_version):
    """The checks above are not vacuous."""
    openapi = crd_version["schema"]["openAPIV3Schema"]
    validator = jsonschema.Draft4Validator(openapi_to_jsonschema(openapi))
    good = load_example(CHART_DIR / "examples" / "cluster-minimal.yaml")

    missing = copy.deepcopy(good)
    del missing["spec"]["auth"]
    assert any("'auth' is a required property" in e.message for e in validator.iter_errors(missing))

    wrong_type = copy.deepcopy(good)
    wrong_type["spec"]["replicas"] = "3"
    assert list(validator.iter_errors(wrong_type))

    too_many = copy.deepcopy(good)
    too_many["spec"]["replicas"] = 8
    assert list(validator.iter_errors(too_many))

    tagged = copy.deepcopy(good)
    tagged["spec"]["image"] = "ghcr.io/d-engine/dengine:0.1.0"
    assert list(validator.iter_errors(tagged))

    typo = copy.deepcopy(good)
    typo["spec"]["storage"]["sise"] = "1Gi"
    assert unknown_fields(typo["spec"], openapi["properties"]["spec"], "spec") == ["spec.storage.sise"]


def test_app_example_uses_the_sidecar_on_loopback():
    example = load_example(CHART_DIR / "examples" / "cluster-with-app.yaml")
    spec = example["spec"]
    assert spec["image"] == "ghcr.io/d-engine/dengine"
    assert spec["scheduling"]["spreadAcrossNodes"] is True
    (container,) = spec["app"]["spec"]["containers"]
    # The images have no shell: the application is one command, talking to its own node.
    command = container["command"]
    assert command[:3] == ["/usr/local/bin/dengine", "--endpoints", "127.0.0.1:2379"]
    assert "watch" in command and "--prefix" in command
    # NOTES.txt tells the user to create this Secret before applying this example.
    assert spec["auth"]["adminTokenSecret"]["name"] == "demo-admin"


def test_app_example_uses_real_cli_flags():
    """The loop's flags and subcommands exist in the dengine CLI (node/cli/), so that the
    example does not rot silently when the CLI changes."""
    source = "\n".join(p.read_text() for p in (REPO / "node" / "cli" / "src").rglob("*.rs"))
    for field in ("pub endpoints:", "pub timeout:", "pub prefix:"):
        assert field in source, f"dengine CLI has no {field.split()[1].rstrip(':')} flag any more"
    for subcommand in ("Put(PutArgs)", "Watch(WatchArgs)"):
        assert subcommand in source, f"dengine CLI has no {subcommand} command any more"
