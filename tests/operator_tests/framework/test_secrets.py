"""Values from a resource's Secrets (:mod:`stevie_operator.framework.secrets`), and the
HPOStudy's RDB URL that reads through it: each problem with its reason and message."""

from __future__ import annotations

import asyncio
from typing import Any

from stevie_api.hpo import HPOStudySpec
from stevie_operator.framework.secrets import (
    SECRET_INVALID,
    SECRET_NOT_FOUND,
    SecretProblem,
    secret_data,
    secret_value,
)
from stevie_operator.kinds.hpostudy.controller import _secret_url
from stevie_operator.kinds.hpostudy.view import StudyProblem
from stevie_operator.local.cluster import LocalCluster
from stevie_operator.local.launcher import LocalLauncher

WHERE = "Secret ns/db (spec.storage.urlSecretRef)"


def _cluster() -> LocalCluster:
    return LocalCluster(LocalLauncher(fork=False), lambda job: None)


def _spec(key: str = "url") -> HPOStudySpec:
    doc: dict[str, Any] = {
        "template": {"data": {"uri": "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"}},
        "storage": {"urlSecretRef": "db", "urlSecretKey": key},
    }
    return HPOStudySpec.model_validate(doc)


def test_a_secret_value_is_decoded_or_said_missing_or_invalid() -> None:
    api = _cluster()
    api.add_secret("ns", "db", {"url": " postgresql://u@h/db \n"})
    data = asyncio.run(secret_data(api, "ns", "db", WHERE))
    assert not isinstance(data, SecretProblem)
    assert secret_value(data, "url", WHERE) == "postgresql://u@h/db"
    assert secret_value(data, "other", WHERE) is None
    assert secret_value({"url": "%%%"}, "url", WHERE) == SecretProblem(
        SECRET_INVALID, f"{WHERE}: key 'url' is not base64 text"
    )
    gone = asyncio.run(secret_data(api, "ns", "nope", "Secret ns/nope"))
    assert gone == SecretProblem(SECRET_NOT_FOUND, "Secret ns/nope not found")


def test_the_hpo_rdb_url_comes_from_its_secret_or_says_why_not() -> None:
    api = _cluster()
    missing = asyncio.run(_secret_url(api, "ns", _spec()))
    assert missing == StudyProblem(SECRET_NOT_FOUND, f"{WHERE} not found")
    api.add_secret("ns", "db", {"url": "postgresql://u@h/db"})
    assert asyncio.run(_secret_url(api, "ns", _spec())) == "postgresql://u@h/db"
    no_key = asyncio.run(_secret_url(api, "ns", _spec("dsn")))
    assert no_key == StudyProblem(SECRET_NOT_FOUND, f"{WHERE} has no key 'dsn'")
