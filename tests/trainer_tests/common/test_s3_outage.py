"""An unreachable S3 endpoint: a process with an outage budget (STEVIE_S3_OUTAGE_SECONDS, a
trainer pod) keeps trying until the endpoint is back; without one (the operator) a call
fails at once with one line. A real moto server is stopped and started on the same port."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from stevie_trainer.common import storage
from support.chaos import S3Endpoint


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Endpoint]:
    s3 = S3Endpoint()
    s3.start()
    monkeypatch.setenv("STEVIE_S3_ENDPOINT_URL", s3.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    storage.clear_s3_clients()
    import boto3

    boto3.client("s3", endpoint_url=s3.url, region_name="us-east-1").create_bucket(
        Bucket="outage-test"
    )
    yield s3
    s3.stop()
    storage.clear_s3_clients()


def test_without_a_budget_an_outage_fails_the_call_at_once(
    endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STEVIE_S3_OUTAGE_SECONDS", raising=False)
    storage.write_text("s3://outage-test/x.txt", "one")
    endpoint.stop()
    started = time.monotonic()
    with pytest.raises(storage.StorageError, match="cannot connect to the S3 endpoint"):
        storage.read_text("s3://outage-test/x.txt")
    assert time.monotonic() - started < 30  # botocore's own few retries, no more


def test_with_a_budget_a_write_and_a_read_wait_for_the_endpoint(
    endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STEVIE_S3_OUTAGE_SECONDS", "60")
    storage.write_text("s3://outage-test/x.txt", "one")
    endpoint.stop()
    back = threading.Timer(4.0, endpoint.start)  # same port, same (in-process) data
    back.start()
    started = time.monotonic()
    storage.write_text("s3://outage-test/y.txt", "two")  # waits out the outage
    waited = time.monotonic() - started
    back.join()
    assert waited >= 3.5
    assert storage.read_text("s3://outage-test/x.txt") == "one"
    assert storage.read_text("s3://outage-test/y.txt") == "two"
    assert storage.exists("s3://outage-test/y.txt")
    assert "S3 unreachable; retrying for up to 60 s" in capfd.readouterr().err


def test_a_budget_that_runs_out_fails_with_the_connection_error(
    endpoint: S3Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STEVIE_S3_OUTAGE_SECONDS", "3")
    endpoint.stop()
    started = time.monotonic()
    with pytest.raises(storage.StorageError, match="cannot connect"):
        storage.write_text("s3://outage-test/z.txt", "three")
    assert time.monotonic() - started >= 3
