"""Reading Kubernetes objects the way the API server means them: quantities, label selectors,
image references and pod health. Pure functions over the plain JSON dicts ``cluster.list()``
returns, so checks compare ``500m`` with ``0.5`` and ``1Gi`` with ``1024Mi`` correctly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

# Binary and decimal suffixes of resource.Quantity (k8s.io/apimachinery/pkg/api/resource).
_SUFFIXES: Mapping[str, Decimal] = {
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$"
)


def parse_quantity(value: str | int | float) -> Decimal:
    """A resource quantity as a number: ``"500m"`` -> 0.5, ``"1Gi"`` -> 1073741824."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"not a Kubernetes quantity: {value!r}")
    number, exponent, suffix = match.groups()
    try:
        amount = Decimal(number)
    except InvalidOperation:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"not a Kubernetes quantity: {value!r}") from None
    if exponent:
        return amount * Decimal(10) ** int(exponent[1:])
    return amount * _SUFFIXES[suffix or ""]


def quantities_equal(a: str | int | float | None, b: str | int | float | None) -> bool:
    if a is None or b is None:
        return a is b
    try:
        return parse_quantity(a) == parse_quantity(b)
    except ValueError:
        return False


# --- label selectors ----------------------------------------------------------------------


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against an object's labels.

    An empty selector matches everything; a missing one (None) matches nothing.
    """
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def name_of(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def selected(objects: Iterable[Mapping[str, Any]], selector: Mapping[str, Any] | None) -> list[Any]:
    """The objects (pods) a selector selects."""
    return [o for o in objects if selector_matches(selector, labels_of(o))]


# --- images -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRef:
    """``registry/path/name:tag@sha256:...`` taken apart."""

    registry: str
    repository: str  # path without the registry: "vcci-backend", "library/nginx"
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """The last path component: what ECR calls the repository name in most setups."""
        return self.repository.rsplit("/", 1)[-1]


def parse_image(reference: str) -> ImageRef:
    rest, _, digest = reference.partition("@")
    head, _, last = rest.rpartition("/")
    name, _, tag = last.partition(":")
    path = f"{head}/{name}" if head else name
    first, _, remainder = path.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    else:
        registry, repository = "docker.io", path
    return ImageRef(registry, repository, tag or None, digest or None)


def image_id_digest(image_id: str | None) -> str | None:
    """The digest in a container status's ``imageID`` (``repo@sha256:...``, ``docker-pullable://``)."""
    if not image_id or "@" not in image_id:
        return None
    return image_id.rsplit("@", 1)[1]


# --- pods ---------------------------------------------------------------------------------


def pod_ready(pod: Mapping[str, Any]) -> bool:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def container_statuses(pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def pod_problems(pod: Mapping[str, Any], max_restarts: int) -> list[str]:
    """What is wrong with a pod that should be serving: phase, readiness, crash loops, restarts."""
    problems = []
    phase = (pod.get("status") or {}).get("phase")
    if phase != "Running":
        problems.append(f"phase {phase}")
    elif not pod_ready(pod):
        problems.append("not Ready")
    for status in container_statuses(pod):
        waiting = (status.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in ("CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"):
            problems.append(f"container {status.get('name')} {waiting['reason']}")
        restarts = int(status.get("restartCount") or 0)
        if restarts > max_restarts:
            problems.append(f"container {status.get('name')} restarted {restarts} times")
    return problems


def main_container(workload: Mapping[str, Any], image_name: str | None = None) -> dict[str, Any]:
    """The workload's application container: the one running ``image_name``, else the first."""
    containers = ((workload.get("spec") or {}).get("template") or {}).get("spec", {}).get(
        "containers"
    ) or []
    if image_name:
        for container in containers:
            if parse_image(str(container.get("image", ""))).name == image_name:
                return dict(container)
    return dict(containers[0]) if containers else {}


__all__ = [
    "ImageRef",
    "container_statuses",
    "image_id_digest",
    "labels_of",
    "main_container",
    "name_of",
    "parse_image",
    "parse_quantity",
    "pod_problems",
    "pod_ready",
    "quantities_equal",
    "selected",
    "selector_matches",
]
