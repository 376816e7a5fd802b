"""Fixtures of every test: real market data (shared or bundled) and a real S3 server on
loopback (moto's server mode), tiny trained ensemble members, and an emulated cluster
(kmock) the operator talks to."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from stevie_trainer.common import storage
from support.data import MarketFiles
from support.ensemble import TrainedMembers, train_members

if TYPE_CHECKING:
    from support.kmock import Cluster


@pytest.fixture(scope="session")
def market() -> MarketFiles:
    """Real OHLCV files: ``../shared/data`` when present, else data inside installed packages
    (see :mod:`support.data`)."""
    return MarketFiles()


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    client: Any  # a boto3 S3 client talking to the server

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"


@pytest.fixture(scope="session")
def _moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_server(_moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """moto in server mode over real HTTP on 127.0.0.1, reset per test, with an empty bucket
    ``stevie-test``; the environment points storage (and boto3) at it with test credentials."""
    import boto3

    request = urllib.request.Request(f"{_moto_endpoint}/moto-api/reset", method="POST")
    with urllib.request.urlopen(request, timeout=10):
        pass
    for name in (
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
        "AWS_CONFIG_FILE": "/nonexistent/aws-config",
        "STEVIE_S3_ENDPOINT_URL": _moto_endpoint,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    storage.clear_s3_clients()
    client = boto3.session.Session().client(
        "s3", endpoint_url=_moto_endpoint, region_name="us-east-1"
    )
    client.create_bucket(Bucket="stevie-test")
    yield S3Server(endpoint_url=_moto_endpoint, bucket="stevie-test", client=client)
    storage.clear_s3_clients()


@pytest.fixture(scope="session")
def trained_members(tmp_path_factory: pytest.TempPathFactory) -> TrainedMembers:
    """A tiny PPO, DQN and BC-initialised PPO (window 10) trained on GOOGL dailies, once
    per session (see :mod:`support.ensemble`)."""
    return train_members(tmp_path_factory.mktemp("members"))


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """kmock on loopback; the operator's settings point at it and at ``tmp_path/data``
    (imported here, not at the top: only operator and chart tests need kopf)."""
    from support.kmock import Cluster

    with Cluster() as c:
        monkeypatch.setenv("STEVIE_KUBE_SERVER", c.url)
        monkeypatch.setenv("STEVIE_STORAGE_URI", (tmp_path / "data").as_uri())
        monkeypatch.setenv("STEVIE_METRICS_PORT", "0")
        yield c
