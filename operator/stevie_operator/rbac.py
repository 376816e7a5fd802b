"""The Kubernetes permissions the operator needs: the ONE list, rendered into the Helm chart.

``python -m stevie_operator.rbac`` (``make chart``) writes :data:`CHART_FILE`, which the
chart's ClusterRole / Role templates read with ``.Files.Get``; a test fails when the file
drifts from this module, and another runs the real operator against kmock, records every
API call it makes and fails when the rendered chart does not allow one. So a new call in the
code shows up as a failing test, not as a 403 on a user's cluster.

Rules come in sets, because where they are granted depends on the install:

- ``namespaced``: the objects in the watched namespaces (a ClusterRole when the operator
  watches every namespace, a Role in each namespace of ``watchNamespaces`` otherwise);
- ``cluster``: what kopf reads cluster-wide in any install (always a ClusterRole);
- ``namespaceScan``: kopf lists and watches Namespaces when it serves named namespaces
  (ClusterRole, only then);
- ``leaderElection``: the Lease of leader election (:mod:`.framework.leader`), in a Role
  of the release namespace, with ``leaderElection.enabled`` only.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stevie_api import GROUP
from stevie_api.kinds import KINDS
from stevie_operator.framework.children import CHILD_TYPES

__all__ = ["CHART_FILE", "RULE_SETS", "Rule", "render"]

CHART_FILE = Path("charts/stevie/files/rbac.yaml")


@dataclass(frozen=True)
class Rule:
    """One PolicyRule, and why the operator needs it (rendered as a comment)."""

    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    why: str

    def as_dict(self) -> dict[str, list[str]]:
        """The rule as Kubernetes spells it."""
        return {
            "apiGroups": list(self.api_groups),
            "resources": list(self.resources),
            "verbs": list(self.verbs),
        }


_PLURALS = tuple(sorted(info.plural for info in KINDS.values()))
_CHILD_GROUPS = sorted({t.group for t in CHILD_TYPES.values()})


def _child_rules() -> list[Rule]:
    """One rule per API group of the children (Jobs, Deployments, Services)."""
    return [
        Rule(
            (group,),
            tuple(sorted(t.plural for t in CHILD_TYPES.values() if t.group == group)),
            ("create", "list", "patch", "watch"),
            "children: kopf lists and watches them (their events reconcile the owner, and "
            "they are indexed by owner for the reconciles); the controller creates them and "
            "merge-patches their spec",
        )
        for group in _CHILD_GROUPS
    ]


RULE_SETS: Mapping[str, Sequence[Rule]] = {
    "namespaced": [
        Rule(
            (GROUP,),
            _PLURALS,
            ("get", "list", "patch", "watch"),
            "the resources: kopf lists, watches and annotates them (progress, last handled "
            "spec); the controller reads each afresh and an Ensemble reads its members",
        ),
        Rule(
            (GROUP,),
            tuple(f"{p}/status" for p in _PLURALS),
            ("patch",),
            "the controller merge-patches the status subresource",
        ),
        Rule(
            (GROUP,),
            tuple(f"{p}/finalizers" for p in _PLURALS),
            ("update",),
            "children carry ownerReferences with blockOwnerDeletion, which the API server "
            "allows only to who may update the owner's finalizers "
            "(OwnerReferencesPermissionEnforcement)",
        ),
        *_child_rules(),
        Rule(
            ("",),
            ("secrets",),
            ("get",),
            "an HPOStudy's RDB URL (spec.storage.urlSecretRef), a resource's S3 keys (s3SecretRef)",
        ),
        Rule(
            ("",),
            ("pods",),
            ("list", "watch"),
            "kopf lists and watches the children's pods (label-selected) and indexes them by "
            "owner: a Pending pod counts as active in its Job, so only the pod says why it "
            "does not run (ImagePullBackOff, Unschedulable, CreateContainerConfigError, "
            "OOMKilled)",
        ),
        Rule(
            ("",),
            ("events",),
            ("create", "list"),
            "kopf posts the reconcilers' Events (core v1); the controller reads those of a Job "
            "with no pod (FailedCreate: quota, Pod Security) or of a pod Pending for no reason "
            "in its status (FailedMount), by involvedObject.uid",
        ),
    ],
    "cluster": [
        Rule(
            ("apiextensions.k8s.io",),
            ("customresourcedefinitions",),
            ("list", "watch"),
            "kopf's resource observer rescans the served resources when CRDs change",
        ),
    ],
    "namespaceScan": [
        Rule(
            ("",),
            ("namespaces",),
            ("list", "watch"),
            "kopf lists and watches Namespaces when it serves named namespaces",
        ),
    ],
    "leaderElection": [
        Rule(
            ("coordination.k8s.io",),
            ("leases",),
            ("create", "get", "patch"),
            "leader election: each replica reads the Lease, creates it when there is none, and "
            "takes, renews or releases it with merge patches guarded by its resourceVersion",
        ),
    ],
}


def _flow(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{i}"' if not i or ":" in i else i for i in items) + "]"


def render() -> str:
    """The chart's rule file: YAML, one comment per rule saying why."""
    lines = [
        "# Generated from operator/stevie_operator/rbac.py by `python -m stevie_operator.rbac`",
        "# (make chart): do not edit. The chart's RBAC templates read it with .Files.Get.",
    ]
    for name, rules in RULE_SETS.items():
        lines.append(f"{name}:")
        for rule in rules:
            lines.append(f"  # {rule.why}")
            lines.append(f"  - apiGroups: {_flow(rule.api_groups)}")
            lines.append(f"    resources: {_flow(rule.resources)}")
            lines.append(f"    verbs: {_flow(rule.verbs)}")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] = ()) -> int:
    """Write the chart's rule file (to ``argv[0]``, default :data:`CHART_FILE`)."""
    target = Path(argv[0]) if argv else CHART_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render())
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
