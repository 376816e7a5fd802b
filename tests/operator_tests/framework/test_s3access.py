"""s3access: which S3 profile a resource's artifacts are reached with (its endpoint, the keys
of its Secret, or the operator's environment), what a missing or broken Secret says, and
drive() reading a TrainingRun's progress from its own S3 server with its Secret's keys,
rotated keys included (the in-memory API of ``stevie run`` holds the objects and Secrets;
storage calls run through asyncio.to_thread, as the operator's)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ParamSpec, TypeVar

import pytest

from stevie_api import API_VERSION
from stevie_api.training import TrainingRun
from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.controller import drive
from stevie_operator.framework.kind import Body, Context
from stevie_operator.framework.kube import KubeAPI, object_path
from stevie_operator.framework.metrics import OperatorMetrics
from stevie_operator.framework.s3access import (
    SECRET_NOT_FOUND,
    S3Problem,
    artifact_storage,
    profile_of,
    resource_profile,
)
from stevie_operator.framework.status import Event
from stevie_operator.kinds.trainingrun.controller import TrainingRunKind
from stevie_operator.local.cluster import LocalCluster
from stevie_operator.local.launcher import LocalLauncher
from stevie_trainer.common.storage import S3Profile
from support.s3store import AuthS3
from support.specs import hpo_study, template

P = ParamSpec("P")
T = TypeVar("T")
SECRET = "team-s3"


class Quiet(LocalLauncher):
    """Jobs that never start (these tests are about what the operator reads)."""

    def start(self, job: Any, secrets: Any, log: Any) -> None:
        pass


class Ctx(Context):
    """The operator's context on the in-memory API; blocking calls in a thread, as kopf's."""

    def __init__(self, api: LocalCluster, config: OperatorConfig) -> None:
        super().__init__(config, OperatorMetrics())
        self._api = api
        self.events: list[Event] = []

    def api(self) -> KubeAPI:
        return self._api

    def post(self, body: Body, events: Iterable[Event]) -> None:
        self.events.extend(events)

    async def blocking(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)


def _cluster() -> LocalCluster:
    return LocalCluster(Quiet(), lambda job: None)


def _run(name: str = "team-run", namespace: str = "team", **storage: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "TrainingRun",
            "metadata": {"name": name, "namespace": namespace},
            "spec": template(storage=storage)}  # fmt: skip


def _profile(api: LocalCluster, body: dict[str, Any], config: OperatorConfig | None = None) -> Any:
    return asyncio.run(resource_profile(api, TrainingRun, body, config or OperatorConfig()))


def _encoded(**values: str) -> dict[str, Any]:
    return {"data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


# ----------------------------------------------------------------------------- selection


def test_the_environment_serves_what_names_no_endpoint_or_secret_or_is_not_on_s3() -> None:
    api = _cluster()
    api.add_secret("team", SECRET, {"AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S"})
    assert _profile(api, _run(uri="s3://b/x")) is None  # nothing named: the operator's own
    on_disk = _run(uri="file:///data/x", s3SecretRef=SECRET, s3EndpointUrl="http://m:9000")
    assert _profile(api, on_disk) is None  # not S3: no Secret read
    # The operator's default root is S3: a spec naming a Secret gets it there too.
    s3_root = OperatorConfig(storage_uri="s3://root/stevie")
    assert isinstance(_profile(api, _run(s3SecretRef=SECRET), s3_root), S3Profile)
    assert _profile(api, _run(s3SecretRef=SECRET)) is None  # default root file:///data/stevie
    invalid = _run(uri="s3://b/x", s3SecretRef="missing")
    invalid["spec"]["totalTimesteps"] = -1
    assert _profile(api, invalid) is None  # the kind says InvalidSpec; no Secret is asked


def test_a_secret_gives_keys_region_token_and_the_endpoint_of_spec_or_config() -> None:
    api = _cluster()
    keys = {"AWS_ACCESS_KEY_ID": "AKIATEAM", "AWS_SECRET_ACCESS_KEY": "team-secret",
            "AWS_REGION": "eu-central-1", "AWS_SESSION_TOKEN": "tok"}  # fmt: skip
    api.add_secret("team", SECRET, keys)
    named = _run(uri="s3://b/x", s3SecretRef=SECRET, s3EndpointUrl="http://m:9000")
    found = _profile(api, named)
    assert found == S3Profile(endpoint_url="http://m:9000", region="eu-central-1",
                              access_key_id="AKIATEAM", secret_access_key="team-secret",
                              session_token="tok", source=f"Secret team/{SECRET}")  # fmt: skip
    config = OperatorConfig(s3_endpoint_url="http://operator-minio:9000")
    found = _profile(api, _run(uri="s3://b/x", s3SecretRef=SECRET), config)
    assert found.endpoint_url == "http://operator-minio:9000" and found.has_keys
    # An endpoint alone: the environment's keys, at that endpoint.
    found = _profile(api, _run(uri="s3://b/x", s3EndpointUrl="http://m:9000"))
    assert found == S3Profile(endpoint_url="http://m:9000") and not found.has_keys
    # The Secret of the resource's own namespace only.
    elsewhere = _run(namespace="other", uri="s3://b/x", s3SecretRef=SECRET)
    assert isinstance(_profile(api, elsewhere), S3Problem)
    # `stevie run` reads no Secret (its processes use the user's environment too).
    local = OperatorConfig(local=True)
    found = _profile(
        api, _run(uri="s3://b/x", s3SecretRef="none-here", s3EndpointUrl="http://m"), local
    )
    assert found == S3Profile(endpoint_url="http://m")
    assert _profile(api, _run(uri="s3://b/x", s3SecretRef="none-here"), local) is None


def test_templates_carry_the_storage_of_hpo_and_pbt() -> None:
    from stevie_api.hpo import HPOStudy

    doc = hpo_study()
    doc["spec"]["template"]["storage"] = {"uri": "s3://b/x", "s3SecretRef": SECRET}
    found = artifact_storage(HPOStudy.model_validate(doc, by_alias=True, by_name=False))
    assert found is not None and found[1] == "spec.template.storage"
    assert found[0].s3_secret_ref == SECRET


def test_a_missing_or_broken_secret_is_one_line_naming_it_never_its_values() -> None:
    api = _cluster()
    body = _run(uri="s3://b/x", s3SecretRef=SECRET)
    problem = _profile(api, body)
    assert problem == S3Problem(
        SECRET_NOT_FOUND, f"Secret team/{SECRET} (spec.storage.s3SecretRef) not found"
    )
    source, where = "Secret team/s", "Secret team/s (spec.storage.s3SecretRef)"
    half = profile_of(_encoded(AWS_ACCESS_KEY_ID="AKIAHALF"), None, source, where)
    assert half == S3Problem(SECRET_NOT_FOUND, f"{where} has no key 'AWS_SECRET_ACCESS_KEY' "
                             "(or it is empty)")  # fmt: skip
    none = profile_of({"data": {}}, None, source, where)
    both = "'AWS_ACCESS_KEY_ID' and 'AWS_SECRET_ACCESS_KEY'"
    assert isinstance(none, S3Problem) and both in none.message
    bad = profile_of({"data": {"AWS_ACCESS_KEY_ID": "%%%", "AWS_SECRET_ACCESS_KEY": "eA=="}},
                     None, source, where)  # fmt: skip
    assert bad == S3Problem("StorageSecretInvalid", f"{where}: key 'AWS_ACCESS_KEY_ID' is not "
                            "base64 text")  # fmt: skip
    assert "AKIAHALF" not in repr(half) and "%%%" not in repr(bad)


def test_the_problem_plan_keeps_the_status_and_warns_once() -> None:
    stored = {"phase": "Running", "jobName": "team-run-train", "conditions": []}
    body = {**_run(), "status": stored}
    body["metadata"]["generation"] = 3
    problem = S3Problem(SECRET_NOT_FOUND, "Secret team/x (spec.storage.s3SecretRef) not found")
    plan = problem.plan(body)
    assert plan.phase == "Running" and plan.children == () and plan.work is None
    assert plan.status["jobName"] == "team-run-train" and plan.status["message"] == problem.message
    degraded = next(c for c in plan.status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", SECRET_NOT_FOUND)
    assert degraded["observedGeneration"] == 3
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", SECRET_NOT_FOUND)]
    again = problem.plan({**body, "status": plan.status})
    assert again.events == ()  # the next reconcile retries quietly


# ----------------------------------------------------------------------------- real S3


@pytest.fixture(scope="module")
def team_store() -> Iterator[AuthS3]:
    with AuthS3(bucket="team-bucket", user="team") as store:
        yield store


def _progress(store: AuthS3, folder: str, steps: int) -> None:
    doc = {"timesteps": steps, "total_timesteps": 1024, "stage": None}
    store.client().put_object(Bucket=store.bucket, Key=f"{folder}/progress.json",
                              Body=json.dumps(doc).encode())  # fmt: skip


def _set_secret(api: LocalCluster, store: AuthS3) -> None:
    api.objects.pop(("v1", "secrets", "team", SECRET), None)
    api.add_secret("team", SECRET, {"AWS_ACCESS_KEY_ID": store.access_key_id,
                                    "AWS_SECRET_ACCESS_KEY": store.secret_access_key})  # fmt: skip


def test_drive_reads_the_resource_s_artifacts_with_its_endpoint_and_rotated_keys(
    s3_server: Any, team_store: AuthS3
) -> None:
    api, kind = _cluster(), TrainingRunKind()
    ctx = Ctx(api, OperatorConfig())
    storage = {"uri": team_store.uri("stevie"), "s3EndpointUrl": team_store.endpoint_url,
               "s3SecretRef": SECRET}  # fmt: skip
    body = api.add(API_VERSION, "trainingruns", _run(**storage))
    folder = f"stevie/team/trainingruns/team-run/{body['metadata']['uid']}"
    path = object_path(API_VERSION, "trainingruns", "team", "team-run")
    jobs = object_path("batch/v1", "jobs", "team")

    plan = asyncio.run(drive(ctx, kind, "team", "team-run"))  # no Secret yet
    assert plan is not None and plan.status["conditions"][-1]["reason"] == SECRET_NOT_FOUND
    assert asyncio.run(api.list(jobs)) == []  # nothing created
    assert [e.reason for e in ctx.events] == [SECRET_NOT_FOUND]

    _set_secret(api, team_store)
    _progress(team_store, folder, 256)
    asyncio.run(drive(ctx, kind, "team", "team-run"))
    status = asyncio.run(api.get(path))["status"]  # type: ignore[index]
    assert status["progress"]["timesteps"] == 256  # read on the team's server, with its keys
    assert [j["metadata"]["name"] for j in asyncio.run(api.list(jobs))] == ["team-run-train"]
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert degraded["status"] == "False"

    # The keys rotate (the old pair is deleted): the next reconcile reads the Secret again.
    team_store.rotate()
    _set_secret(api, team_store)
    _progress(team_store, folder, 512)
    asyncio.run(drive(ctx, kind, "team", "team-run"))
    status = asyncio.run(api.get(path))["status"]  # type: ignore[index]
    assert status["progress"]["timesteps"] == 512
    # The operator's own bucket was never written.
    assert "Contents" not in s3_server.client.list_objects_v2(Bucket=s3_server.bucket)
