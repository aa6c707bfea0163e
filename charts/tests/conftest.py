"""Shared fixtures: the chart loaded once through helm-python-sdk (the real Helm engine, offline)
and a renderer that returns the manifests as parsed Kubernetes objects."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import helm_python as helm
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "dengine-operator"
RELEASE = "dengine-operator"
NAMESPACE = "dengine-system"


@dataclass
class Rendered:
    """One `helm template`: the objects of every manifest, and NOTES.txt."""

    objects: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, got {len(found)}"
        return found[0]

    @property
    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    @property
    def container(self) -> dict[str, Any]:
        """The operator container of the Deployment."""
        containers = self.one("Deployment")["spec"]["template"]["spec"]["containers"]
        assert [c["name"] for c in containers] == ["operator"]
        return containers[0]


@pytest.fixture(scope="session")
def chart() -> helm.Chart:
    loaded = helm.Chart.load(CHART_DIR)
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def render(chart: helm.Chart) -> Callable[..., Rendered]:
    def _render(values: dict[str, Any] | None = None, *, name: str = RELEASE) -> Rendered:
        manifests = chart.render(values=values, name=name, namespace=NAMESPACE, is_install=True)
        objects: list[dict[str, Any]] = []
        notes = ""
        for path, text in sorted(manifests.items()):
            if path.endswith("NOTES.txt"):
                notes = text
                continue
            for document in yaml.safe_load_all(text):
                if document is None:
                    continue
                assert isinstance(document, dict), f"{path}: not a mapping: {document!r}"
                assert document.get("apiVersion") and document.get("kind"), f"{path}: {document}"
                objects.append(document)
        return Rendered(objects=objects, notes=notes)

    return _render
