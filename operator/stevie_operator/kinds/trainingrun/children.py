"""A TrainingRun's one child: the trainer Job. Pure functions.

The pod runs ``python -m stevie_trainer train --spec-json "$(STEVIE_SPEC)" --out RUN_URI``;
re-running it with the same ``--out`` resumes from the latest checkpoint.
"""

from __future__ import annotations

import json
from typing import Any

from stevie_api.naming import child_name
from stevie_api.training import TrainingRun
from stevie_operator.framework.artifacts import resource_root
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.pods import ROLE_LABEL, Owner, TrainerCommand, trainer_job

__all__ = ["job_name", "run_uri", "training_job"]


def job_name(name: str) -> str:
    """The deterministic name of a TrainingRun's trainer Job (a DNS label, <= 63 chars)."""
    return child_name(name, "-train")


def run_uri(run: TrainingRun, namespace: str, config: OperatorConfig) -> str:
    """Where the run's artifacts go: ``<root>/<namespace>/trainingruns/<name>/<uid>``
    (:func:`~stevie_operator.framework.artifacts.artifact_root`)."""
    root = run.spec.storage.uri or config.storage_uri
    return resource_root(root, namespace, run.kind, run.metadata, config.local)


def training_job(run: TrainingRun, namespace: str, config: OperatorConfig) -> dict[str, Any]:
    """The batch/v1 Job that trains ``run`` (deterministic: same input, same dict)."""
    out = run_uri(run, namespace, config)
    spec_json = json.dumps(run.spec.to_dict(), sort_keys=True, separators=(",", ":"))
    name = run.metadata.name
    command = TrainerCommand(
        "train",
        ["--spec-json", "$(STEVIE_SPEC)", "--out", out],
        out,
        env=[
            {"name": "STEVIE_SPEC", "value": spec_json},
            {"name": "STEVIE_RUN_URI", "value": out},
            {"name": "STEVIE_RUN_NAME", "value": name},
            {"name": "STEVIE_RUN_NAMESPACE", "value": namespace},
        ],
    )
    return trainer_job(
        name=job_name(name),
        namespace=namespace,
        owner=Owner.of(run),
        run_spec=run.spec,
        config=config,
        run=command,
        labels={ROLE_LABEL: "train"},
    )
