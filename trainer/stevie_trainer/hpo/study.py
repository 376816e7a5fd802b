"""Optuna studies from an HPOStudy spec: storage, sampler, pruner, ask/tell, summaries.

Torch-free (the operator image imports it). The division of work, Katib style:

* the controller (operator or ``stevie run``) calls :func:`open_study` then
  :func:`ask_trials`: every hyperparameter is sampled at ask time (in the controller) and
  stored in the study, so a trial is fully described by its number;
* it launches one trainer process per asked trial, named :func:`trial_name`, running
  ``python -m stevie_trainer trial --study-spec ... --storage ... --trial-number N --out ...``;
* the worker (:mod:`stevie_trainer.hpo.trial`) reports intermediate validation scores, stops when
  pruned and tells the study the trial's final state itself;
* the controller reads :func:`trial_counts` / :func:`study_summary` and, for a worker that
  died without telling (pod lost, OOM), calls :func:`mark_failed`. After a restart,
  :func:`running_trials` lists the trials to (re-)launch: names are deterministic, so a
  launcher that skips existing Jobs never duplicates one.

Storage: an Optuna JournalStorage file (default ``<study folder>/optuna.journal``, shared by
every trial process through the volume), or any RDB URL (``postgresql://...``) as is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from stevie_api.common import ParamSpec, ParamValue
from stevie_api.hpo import HPOStudySpec, HPOStudyStatus, TrialCounts, TrialSummary
from stevie_api.training import TrainingRunSpec
from stevie_trainer.hpo.fingerprint import fingerprint, search_changes

__all__ = [
    "JOURNAL_NAME",
    "RDB_SCHEMES",
    "AskedTrial",
    "StudyConflictError",
    "ask_count",
    "ask_trials",
    "distributions",
    "journal_uri",
    "load_study_spec",
    "make_pruner",
    "make_sampler",
    "mark_failed",
    "objective_value",
    "open_storage",
    "open_study",
    "running_trials",
    "seed_spec",
    "storage_location",
    "study_phase",
    "study_summary",
    "tell_trial",
    "trial_counts",
    "trial_name",
    "trial_spec",
]

JOURNAL_NAME = "optuna.journal"
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "oracle", "mssql")
# Undefined metrics (a policy that never trades has no Sharpe) count as this value.
UNDEFINED_METRIC = 0.0

optuna.logging.set_verbosity(optuna.logging.WARNING)


class StudyConflictError(ValueError):
    """The storage holds a study of that name with another search space or objectives."""


def trial_name(study_name: str, number: int) -> str:
    """The deterministic name of a trial's Job / process / artifact folder."""
    return f"{study_name}-t{number}"


def load_study_spec(text: str, source: str) -> tuple[HPOStudySpec, str | None]:
    """An HPOStudy resource (its name is the study's) or a bare spec, as JSON or YAML."""
    from stevie_trainer.common.specfile import load_spec_text

    return load_spec_text(text, source, HPOStudySpec)


# --- storage -------------------------------------------------------------------------------
def journal_uri(spec: HPOStudySpec, study_dir: str) -> str:
    """Where the default JournalStorage file lives: spec.storage.journalPath, else
    ``<study_dir>/optuna.journal``."""
    if spec.storage.journal_path:
        return spec.storage.journal_path
    return study_dir.rstrip("/") + "/" + JOURNAL_NAME


def _is_rdb_url(location: str) -> bool:
    scheme = location.partition("://")[0].split("+", 1)[0].lower()
    return "://" in location and scheme in RDB_SCHEMES


def storage_location(spec: HPOStudySpec, study_dir: str, rdb_url: str | None = None) -> str:
    """What workers get as ``--storage``: the RDB URL (resolved from spec.storage's Secret
    by the caller) when the spec names one, else the journal file."""
    if spec.storage.url_secret_ref:
        if not rdb_url:
            raise ValueError(
                f"spec.storage.urlSecretRef is {spec.storage.url_secret_ref!r}: the RDB URL "
                "from that Secret is needed"
            )
        return rdb_url
    return journal_uri(spec, study_dir)


def open_storage(location: str) -> optuna.storages.BaseStorage:
    """An RDB URL as is; anything else is a JournalStorage file (a path or file:// URI on a
    file system every trial process shares)."""
    if _is_rdb_url(location):
        return optuna.storages.RDBStorage(location)
    if "://" in location and not location.startswith("file://"):
        raise ValueError(
            f"study storage {location!r}: a JournalStorage file must be on a shared file "
            "system (a path or file:// URI; s3:// cannot hold it), or use an RDB URL "
            "(postgresql://...) via spec.storage.urlSecretRef"
        )
    path = Path(location.removeprefix("file://"))
    path.parent.mkdir(parents=True, exist_ok=True)
    backend = JournalFileBackend(str(path))
    return optuna.storages.JournalStorage(backend)


# --- sampler, pruner, search space ---------------------------------------------------------
def make_sampler(spec: HPOStudySpec, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The spec's sampler; startupTrials random trials come first (TPE, CMA-ES)."""
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(
            n_startup_trials=spec.startup_trials,
            seed=seed,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_independent_sampling=False,
        )
    if spec.sampler == "nsga2":
        population = max(4, min(50, spec.max_trials // 4))
        return optuna.samplers.NSGAIISampler(population_size=population, seed=seed)
    # constant_liar: parallel trials still running count as bad, so they are not re-sampled.
    return optuna.samplers.TPESampler(
        n_startup_trials=spec.startup_trials, seed=seed, multivariate=True, constant_liar=True
    )


def make_pruner(spec: HPOStudySpec) -> optuna.pruners.BasePruner:
    """The spec's pruner. Steps are timesteps, so warmupEvaluations x evalFreq timesteps
    pass before a trial may be pruned."""
    freq = spec.template.evaluation.eval_freq
    warmup = spec.warmup_evaluations * freq
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=spec.startup_trials, n_warmup_steps=warmup
        )
    min_resource = max(1, spec.warmup_evaluations) * freq
    if spec.pruner == "hyperband":
        budget = spec.template.total_timesteps * spec.seeds_per_trial
        return optuna.pruners.HyperbandPruner(
            min_resource=min_resource, max_resource=max(budget, min_resource), reduction_factor=3
        )
    if spec.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=min_resource, reduction_factor=3)
    return optuna.pruners.NopPruner()


def _distribution(prior: ParamSpec) -> BaseDistribution:
    if prior.type == "categorical":
        return CategoricalDistribution(list(prior.choices or []))
    assert prior.low is not None and prior.high is not None
    if prior.type == "int":
        return IntDistribution(int(prior.low), int(prior.high), log=prior.log)
    return FloatDistribution(prior.low, prior.high, log=prior.log)


def distributions(spec: HPOStudySpec) -> dict[str, BaseDistribution]:
    """The search space as Optuna distributions, in spec order."""
    return {name: _distribution(prior) for name, prior in spec.search_space.items()}


# --- the study -----------------------------------------------------------------------------
def open_study(
    spec: HPOStudySpec,
    study_name: str,
    storage: str | optuna.storages.BaseStorage,
    *,
    create: bool = True,
    sampler_seed: int | None = None,
) -> optuna.Study:
    """Create (or load: idempotent) the study. A study of that name with another search
    space or other objectives is refused. maxTrials, parallelism etc. may change freely."""
    backend = open_storage(storage) if isinstance(storage, str) else storage
    directions = [o.direction for o in spec.objectives]
    kwargs: dict[str, Any] = {
        "study_name": study_name,
        "storage": backend,
        "sampler": make_sampler(spec, sampler_seed),
        "pruner": make_pruner(spec),
    }
    if create:
        study = optuna.create_study(directions=directions, load_if_exists=True, **kwargs)
    else:
        study = optuna.load_study(**kwargs)
    mine = fingerprint(spec)
    theirs = study.user_attrs.get("stevie_fingerprint")
    if theirs is None:
        study.set_user_attr("stevie_fingerprint", mine)
        study.set_user_attr("stevie_objectives", [o.metric for o in spec.objectives])
    elif theirs != mine and (changed := search_changes(theirs, spec)):
        raise StudyConflictError(
            f"study {study_name!r} already exists with another search space or objectives "
            f"(differs in: {', '.join(changed)}); use a new study name (or delete its "
            "storage) to start over"
        )
    if [d.name.lower() for d in study.directions] != directions:
        raise StudyConflictError(f"study {study_name!r} has other objective directions")
    return study


@dataclass(frozen=True)
class AskedTrial:
    """A trial the controller asked for: what to launch."""

    number: int
    name: str
    params: dict[str, Any] = field(default_factory=dict)


def ask_trials(
    study: optuna.Study, spec: HPOStudySpec, n: int, study_name: str
) -> list[AskedTrial]:
    """Ask ``n`` new trials, all parameters sampled now and stored in the study.

    The sampler is re-seeded from the study's length, so a restarted controller samples new
    points instead of replaying the same random sequence."""
    if n <= 0:
        return []
    base = spec.template.seed * 100_003 + len(study.get_trials(deepcopy=False))
    study.sampler = make_sampler(spec, seed=base)
    space = distributions(spec)
    asked = []
    for _ in range(n):
        trial = study.ask(space)
        name = trial_name(study_name, trial.number)
        trial.set_user_attr("name", name)
        budget = spec.template.total_timesteps * spec.seeds_per_trial
        trial.set_user_attr("timesteps_budget", budget)
        asked.append(AskedTrial(trial.number, name, dict(trial.params)))
    return asked


def running_trials(study: optuna.Study, study_name: str) -> list[AskedTrial]:
    """Trials asked and not finished (their processes should be running)."""
    return [
        AskedTrial(t.number, trial_name(study_name, t.number), dict(t.params))
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    ]


def tell_trial(
    study: optuna.Study,
    number: int,
    values: list[float] | None = None,
    state: TrialState = TrialState.COMPLETE,
) -> FrozenTrial:
    """Finish a trial (a no-op when it is already finished)."""
    return study.tell(number, values, state=state, skip_if_finished=True)


def mark_failed(study: optuna.Study, number: int, message: str) -> FrozenTrial:
    """Mark a trial FAIL with the error in user_attrs["error"] (no-op when finished)."""
    trial = study.get_trials(deepcopy=False)[number]
    if trial.state.is_finished():
        return trial
    study._storage.set_trial_user_attr(trial._trial_id, "error", message[:2000])
    return tell_trial(study, number, None, TrialState.FAIL)


# --- trial specs ---------------------------------------------------------------------------
def trial_spec(
    spec: HPOStudySpec, params: dict[str, Any]
) -> tuple[TrainingRunSpec, dict[str, Any]]:
    """The template with the trial's hyperparameters, and the adjustments made to fit it
    (like rl-baselines3-zoo: a PPO batch larger than one rollout is cut to the rollout)."""
    tuned = dict(params)
    adjusted: dict[str, Any] = {}
    template = spec.template
    if template.algorithm == "PPO":
        n_steps = int(tuned.get("n_steps", template.ppo.n_steps))
        batch = int(tuned.get("batch_size", template.ppo.batch_size))
        rollout = n_steps * template.n_envs
        if batch > rollout:
            tuned["batch_size"] = adjusted["batch_size"] = rollout
    return template.with_hyperparameters(tuned), adjusted


def seed_spec(spec: TrainingRunSpec, seed_index: int, offset: int = 0) -> TrainingRunSpec:
    """The k-th seed of a configuration: template seed + offset + k."""
    return spec.model_copy(update={"seed": spec.seed + offset + seed_index})


def objective_value(metrics: dict[str, Any] | None, metric: str) -> float:
    """One objective from a validation metrics dict (``validation.<name>``).

    max_drawdown is a positive fraction (0.2 = a 20% fall), as in the API; an undefined
    metric (None/nan: e.g. no Sharpe for a policy that never trades) counts as 0."""
    name = metric.removeprefix("validation.")
    value = (metrics or {}).get(name)
    if value is None or isinstance(value, bool) or not math.isfinite(float(value)):
        return UNDEFINED_METRIC
    number = float(value)
    return abs(number) if name == "max_drawdown" else number


# --- counting and summaries ----------------------------------------------------------------
def trial_counts(study: optuna.Study) -> TrialCounts:
    """Trials by state (WAITING counts as running: asked, not finished)."""
    counts = {"running": 0, "completed": 0, "pruned": 0, "failed": 0}
    key = {
        TrialState.RUNNING: "running",
        TrialState.WAITING: "running",
        TrialState.COMPLETE: "completed",
        TrialState.PRUNED: "pruned",
        TrialState.FAIL: "failed",
    }
    for t in study.get_trials(deepcopy=False):
        counts[key[t.state]] += 1
    return TrialCounts(**counts)


def ask_count(counts: TrialCounts, spec: HPOStudySpec) -> int:
    """How many trials to ask now: up to parallelism running, maxTrials finished (completed
    or pruned; failed trials are replaced), none once the study is over."""
    if study_phase(counts, spec) is not None:
        return 0
    remaining = spec.max_trials - counts.completed - counts.pruned - counts.running
    return max(0, min(spec.parallelism - counts.running, remaining))


def study_phase(counts: TrialCounts, spec: HPOStudySpec) -> Literal["Succeeded", "Failed"] | None:
    """Failed beyond maxFailedTrials, Succeeded once maxTrials finished, else None."""
    if counts.failed > spec.max_failed_trials:
        return "Failed"
    if counts.completed + counts.pruned >= spec.max_trials and counts.running == 0:
        return "Succeeded"
    return None


def _summary(trial: FrozenTrial) -> TrialSummary:
    params: dict[str, ParamValue] = dict(trial.params)
    return TrialSummary(number=trial.number, values=list(trial.values or []), params=params)


def best_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Single objective: completed trials best first; several: the Pareto front, ordered by
    the first objective."""
    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not done:
        return []
    first = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    front = study.best_trials if len(study.directions) > 1 else done
    return sorted(front, key=lambda t: (t.values[0] * (-1 if first else 1), t.number))


def study_summary(study: optuna.Study) -> HPOStudyStatus:
    """The status fields the trials determine (trials, best*, top, paretoFrontSize); the
    controller adds phase, conditions and URIs."""
    status = HPOStudyStatus(trials=trial_counts(study))
    ranked = best_trials(study)
    if len(study.directions) > 1:
        status.pareto_front_size = len(ranked)
    if ranked:
        best = ranked[0]
        status.best_trial = best.number
        status.best_value = best.values[0]
        status.best_values = list(best.values) if len(study.directions) > 1 else None
        status.best_params = dict(best.params)
        status.top = [_summary(t) for t in ranked[:5]]
    return status
