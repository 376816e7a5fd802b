"""storage.using_s3: an explicit S3 profile (endpoint, region, keys) for a block of code, the
client cache keyed by it, and real calls to two S3 servers: the session's moto (the
environment's endpoint and keys) and one that checks credentials (:mod:`support.s3store`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from stevie_trainer.common import storage
from stevie_trainer.common.storage import S3Profile, StorageError, s3, using_s3
from support.s3store import AuthS3


@pytest.fixture(scope="module")
def research() -> Iterator[AuthS3]:
    with AuthS3(bucket="research-only") as store:
        yield store


def _profile(store: AuthS3, **changes: Any) -> S3Profile:
    fields: dict[str, Any] = {
        "endpoint_url": store.endpoint_url,
        "access_key_id": store.access_key_id,
        "secret_access_key": store.secret_access_key,
        "source": "Secret research/minio",
    }
    return S3Profile(**(fields | changes))


# ----------------------------------------------------------------------------- pure


def test_profiles_select_by_block_and_restore_on_exit() -> None:
    a, b = S3Profile(endpoint_url="http://a:9000"), S3Profile(endpoint_url="http://b:9000")
    assert storage.current_profile() is None
    with using_s3(a):
        assert storage.current_profile() is a
        with using_s3(b):
            assert storage.current_profile() is b
        with using_s3(None):  # the environment's, inside another profile's block
            assert storage.current_profile() is None
        assert storage.current_profile() is a
    assert storage.current_profile() is None
    with pytest.raises(RuntimeError), using_s3(a):
        raise RuntimeError("boom")
    assert storage.current_profile() is None


def test_a_profile_needs_both_keys_or_neither() -> None:
    with pytest.raises(ValueError, match="both an access key id and a secret access key"):
        S3Profile(access_key_id="AKIA")
    with pytest.raises(ValueError, match="both"):
        S3Profile(secret_access_key="s3cret")
    assert not S3Profile(endpoint_url="http://x").has_keys


def test_the_keys_never_show_in_repr_or_cache_key() -> None:
    p = S3Profile(access_key_id="AKIAEXAMPLE", secret_access_key="s3cret-value",
                  session_token="tok-value", source="Secret ns/keys")  # fmt: skip
    assert "s3cret-value" not in repr(p) and "tok-value" not in repr(p)
    assert "AKIAEXAMPLE" not in repr(p) and "Secret ns/keys" in repr(p)
    key = repr(s3.client_key(p))
    assert "s3cret-value" not in key and "tok-value" not in key


def test_client_key_follows_every_field_and_falls_back_to_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STEVIE_S3_ENDPOINT_URL", "http://env:9000")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ENVKEY")
    keys = {"access_key_id": "K1", "secret_access_key": "S1"}
    base = S3Profile(endpoint_url="http://team:9000", region="us-east-2", **keys)
    same = S3Profile(endpoint_url="http://team:9000", region="us-east-2", **keys)
    assert same is not base and s3.client_key(same) == s3.client_key(base)
    others = [
        S3Profile(endpoint_url="http://other:9000", region="us-east-2", **keys),
        S3Profile(endpoint_url="http://team:9000", region="us-west-1", **keys),
        S3Profile(endpoint_url="http://team:9000", region="us-east-2", access_key_id="K2",
                  secret_access_key="S1"),
        S3Profile(endpoint_url="http://team:9000", region="us-east-2", access_key_id="K1",
                  secret_access_key="S2"),  # a rotated secret: another client
        S3Profile(endpoint_url="http://team:9000", region="us-east-2", session_token="T", **keys),
    ]  # fmt: skip
    assert len({s3.client_key(p) for p in [base, *others]}) == 1 + len(others)
    # Unset fields come from the environment; no keys: the environment's credentials.
    env = s3.client_key(None)
    assert env[:2] == ("http://env:9000", "eu-west-1") and "ENVKEY" in env[2]
    assert s3.client_key(S3Profile()) == env
    endpoint_only = s3.client_key(S3Profile(endpoint_url="http://team:9000"))
    assert endpoint_only == ("http://team:9000", "eu-west-1", env[2])
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ROTATED")
    assert s3.client_key(None) != env  # the environment changed: not the old client


def test_the_client_cache_is_keyed_by_profile_and_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("STEVIE_S3_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    storage.clear_s3_clients()
    try:
        team = S3Profile(endpoint_url="http://team:9000", access_key_id="K", secret_access_key="S")
        with using_s3(team):
            first = s3._client()
            assert s3._client() is first
        assert first.meta.endpoint_url == "http://team:9000"
        with using_s3(S3Profile(endpoint_url="http://team:9000", access_key_id="K",
                                secret_access_key="S")):  # fmt: skip
            assert s3._client() is first  # an equal profile (next reconcile): the same client
        env_client = s3._client()
        assert env_client is not first and env_client.meta.endpoint_url.startswith("https://")
        monkeypatch.setattr(s3, "_MAX_CLIENTS", 3)
        for n in range(2):  # with first and env_client: one too many
            with using_s3(S3Profile(endpoint_url=f"http://n{n}:9000")):
                s3._client()
        assert len(s3._CLIENTS) == 3 and first not in s3._CLIENTS.values()  # the oldest went
        assert env_client in s3._CLIENTS.values()
    finally:
        storage.clear_s3_clients()


def test_the_profile_reaches_to_thread_and_not_another_task() -> None:
    a, b = S3Profile(endpoint_url="http://a:1"), S3Profile(endpoint_url="http://b:1")
    both = threading.Barrier(2, timeout=5)

    def seen_in_thread() -> S3Profile | None:
        both.wait()  # the two tasks' threads run at the same time
        return storage.current_profile()

    async def task(profile: S3Profile | None) -> S3Profile | None:
        with using_s3(profile):
            await asyncio.sleep(0)  # the other task runs while this block is open
            return await asyncio.to_thread(seen_in_thread)

    async def main() -> list[S3Profile | None]:
        return list(await asyncio.gather(task(a), task(b)))

    assert asyncio.run(main()) == [a, b]

    async def unset() -> list[S3Profile | None]:
        return list(await asyncio.gather(task(a), task(None)))

    assert asyncio.run(unset()) == [a, None]


# ----------------------------------------------------------------------------- real servers


def test_a_profile_reads_and_writes_its_own_endpoint_with_its_keys(
    s3_server: Any, research: AuthS3
) -> None:
    uri = "s3://research-only/runs/r1/spec.json"
    with pytest.raises(StorageError, match="no such bucket 'research-only'"):
        storage.read_text(uri)  # the environment's server has no such bucket
    with using_s3(_profile(research)):
        storage.write_text(uri, '{"n": 1}')
        assert storage.read_text(uri) == '{"n": 1}'
        assert storage.exists(uri)
        assert storage.list_uris("s3://research-only/runs") == [uri]
    got = research.client().get_object(Bucket="research-only", Key="runs/r1/spec.json")
    assert got["Body"].read() == b'{"n": 1}'
    # Meanwhile the environment's bucket is still the environment's.
    storage.write_text(s3_server.uri("x.json"), "{}")
    assert storage.list_uris(s3_server.uri("")) == [s3_server.uri("x.json")]
    with using_s3(_profile(research)):
        storage.delete(uri)
        assert not storage.exists(uri)


def test_the_research_server_refuses_other_keys_in_one_line(
    s3_server: Any, research: AuthS3
) -> None:
    uri = "s3://research-only/runs/r2/spec.json"
    endpoint_only = S3Profile(endpoint_url=research.endpoint_url)
    with using_s3(endpoint_only), pytest.raises(StorageError) as err:
        storage.write_text(uri, "{}")  # the environment's keys ("testing") are not its
    assert str(err.value) == f"{uri}: S3 rejected the credentials (InvalidAccessKeyId)"
    wrong = _profile(research, secret_access_key="not-the-secret")
    with using_s3(wrong), pytest.raises(StorageError) as err:
        storage.read_text(uri)
    text = str(err.value)
    assert text == (
        f"{uri}: S3 rejected the credentials of Secret research/minio (SignatureDoesNotMatch)"
    )
    assert "not-the-secret" not in text and "\n" not in text


def test_two_tasks_at_once_each_reach_their_own_server(s3_server: Any, research: AuthS3) -> None:
    research.client().put_object(Bucket="research-only", Key="team.json", Body=b"research")
    s3_server.client.put_object(Bucket=s3_server.bucket, Key="mine.json", Body=b"operator")
    both = threading.Barrier(2, timeout=10)

    def read(uri: str) -> str:
        both.wait()
        return storage.read_text(uri)

    async def task(profile: S3Profile | None, uri: str) -> str:
        with using_s3(profile):
            return await asyncio.to_thread(read, uri)

    async def main() -> list[str]:
        return list(
            await asyncio.gather(
                task(_profile(research), "s3://research-only/team.json"),
                task(None, s3_server.uri("mine.json")),
            )
        )

    assert asyncio.run(main()) == ["research", "operator"]
