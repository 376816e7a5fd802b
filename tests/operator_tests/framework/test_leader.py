"""Leader election on a Lease: the pure decisions, then the elector's loop against an
in-memory API server that, like the real one, refuses a write with a stale resourceVersion
(409) and a second create (409). A fake clock and sleep: nothing here waits."""

from __future__ import annotations

import asyncio
import copy
import itertools
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf
import pytest
from aiohttp import web

from stevie_operator.framework.config import OperatorConfig
from stevie_operator.framework.kube import KubeError
from stevie_operator.framework.leader import (
    Action,
    LeaderElector,
    LeaseRecord,
    LeaseTimings,
    Observation,
    decide,
    default_identity,
    default_namespace,
    lease_spec,
    lost_leadership,
    microtime,
    observe,
    release_spec,
)
from stevie_operator.framework.leadership import _LeaseClient, standby_health

TIMINGS = LeaseTimings(lease_duration=15, renew_deadline=10, retry_period=2)
ME, OTHER = "pod-a_1", "pod-b_2"
LEASE = "/apis/coordination.k8s.io/v1/namespaces/ns/leases/lease"


def record(holder: str = OTHER, version: str = "1", **spec: Any) -> LeaseRecord:
    lease = {"metadata": {"resourceVersion": version},
             "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, **spec}}  # fmt: skip
    return LeaseRecord.of(lease)


def test_a_missing_lease_is_created() -> None:
    assert decide(None, ME, now=0.0) is Action.CREATE


def test_a_released_lease_is_taken_at_once() -> None:
    assert decide(Observation(record(holder=""), since=100.0), ME, now=100.0) is Action.ACQUIRE


def test_a_lease_held_and_renewed_by_another_is_waited_for() -> None:
    seen = Observation(record(), since=100.0)
    assert decide(seen, ME, now=114.9) is Action.WAIT
    # Each renewal changes the record, which restarts the candidate's own clock.
    renewed = observe(seen, record(version="2"), now=114.9)
    assert renewed.since == 114.9
    assert decide(renewed, ME, now=125.0) is Action.WAIT


def test_an_expired_lease_is_taken_over_by_this_candidates_own_clock() -> None:
    """Expired means unchanged for leaseDurationSeconds since *we* first saw it: a renewTime
    written by the holder's (skewed) clock is not trusted."""
    stale = record(renewTime="2000-01-01T00:00:00.000000Z")
    seen = observe(None, stale, now=100.0)
    assert decide(seen, ME, now=101.0) is Action.WAIT  # old renewTime, but just seen
    again = observe(seen, stale, now=115.0)  # read again, unchanged
    assert again.since == 100.0
    assert decide(again, ME, now=115.0) is Action.ACQUIRE


def test_a_lease_held_by_us_is_renewed() -> None:
    assert decide(Observation(record(holder=ME), since=0.0), ME, now=1e6) is Action.RENEW


def test_the_renew_deadline() -> None:
    assert not lost_leadership(last_renewed=50.0, now=60.0, timings=TIMINGS)
    assert lost_leadership(last_renewed=50.0, now=60.1, timings=TIMINGS)


def test_specs_of_acquire_renew_and_release() -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 6789, tzinfo=UTC)
    stamp = "2025-01-02T03:04:05.006789Z"
    assert microtime(moment) == stamp
    first = lease_spec(ME, None, TIMINGS, moment)
    assert first == {"holderIdentity": ME, "leaseDurationSeconds": 15, "acquireTime": stamp,
                     "renewTime": stamp, "leaseTransitions": 0}  # fmt: skip
    taken = lease_spec(ME, record(leaseTransitions=3, acquireTime="x"), TIMINGS, moment)
    assert (taken["acquireTime"], taken["leaseTransitions"]) == (stamp, 4)
    ours = record(holder=ME, leaseTransitions=4, acquireTime="then")
    renewed = lease_spec(ME, ours, TIMINGS, moment)
    assert (renewed["acquireTime"], renewed["leaseTransitions"]) == ("then", 4)
    released = release_spec(ours, moment)
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    assert lease_spec(ME, record(holder=""), TIMINGS, moment)["leaseTransitions"] == 0


def test_timings_are_checked() -> None:
    with pytest.raises(ValueError, match="shorter than the lease"):
        LeaseTimings(lease_duration=10, renew_deadline=10, retry_period=2)
    with pytest.raises(ValueError, match="retry period"):
        LeaseTimings(lease_duration=15, renew_deadline=2, retry_period=2)
    with pytest.raises(ValueError, match="whole seconds"):
        LeaseTimings(lease_duration=2.5, renew_deadline=1, retry_period=0.2)


def test_identity_namespace_and_config() -> None:
    one, two = default_identity({"POD_NAME": "op-0"}), default_identity({"POD_NAME": "op-0"})
    assert one.startswith("op-0_") and one != two  # a restarted process is a new candidate
    assert default_namespace({"POD_NAMESPACE": "stevie"}) == "stevie"
    config = OperatorConfig.from_env({"STEVIE_LEADER_ELECTION": "true",
                                      "STEVIE_LEADER_ELECTION_LEASE": "l",
                                      "STEVIE_LEADER_ELECTION_RETRY_PERIOD": "0.5"})  # fmt: skip
    assert (config.leader_election, config.leader_election_lease) == (True, "l")
    assert (config.retry_period, config.lease_duration) == (0.5, 15.0)
    assert not OperatorConfig.from_env({}).leader_election
    with pytest.raises(ValueError, match="not a boolean"):
        OperatorConfig.from_env({"STEVIE_LEADER_ELECTION": "ja"})


class Leases:
    """An API server's leases: versions bumped on every write, preconditions enforced."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.versions = itertools.count(1)
        self.down = False
        self.writes = 0

    async def _check(self) -> None:
        await asyncio.sleep(0)  # let a concurrent candidate run between its read and write
        if self.down:
            raise KubeError(503, "unavailable")

    async def get(self, path: str) -> dict[str, Any] | None:
        await self._check()
        found = self.objects.get(path)
        return copy.deepcopy(found) if found is not None else None

    async def list(self, path: str, labels: Mapping[str, str] | None = None) -> list[Any]:
        raise AssertionError("the elector lists nothing")

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        await self._check()
        key = f"{path}/{body['metadata']['name']}"
        if key in self.objects:
            return None
        obj = copy.deepcopy(dict(body))
        obj["metadata"]["resourceVersion"] = str(next(self.versions))
        self.objects[key] = obj
        self.writes += 1
        return copy.deepcopy(obj)

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any] | None:
        await self._check()
        obj = self.objects.get(path)
        if obj is None:
            return None
        wanted = patch.get("metadata", {}).get("resourceVersion")
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            raise KubeError(409, "the object has been modified")
        obj["spec"].update(patch.get("spec", {}))
        obj["metadata"]["resourceVersion"] = str(next(self.versions))
        self.writes += 1
        return copy.deepcopy(obj)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def elector(api: Leases, clock: Clock, identity: str) -> LeaderElector:
    return LeaderElector(api, "ns", "lease", identity, TIMINGS, clock=clock, sleep=clock.sleep)


def holder(api: Leases) -> str:
    return str(api.objects[LEASE]["spec"]["holderIdentity"])


def test_two_candidates_racing_for_one_lease_elect_one() -> None:
    async def scenario() -> None:
        api, clock = Leases(), Clock()
        a, b = elector(api, clock, ME), elector(api, clock, OTHER)
        won = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
        assert sorted(won) == [False, True] and holder(api) in (ME, OTHER)
        # Both read the same version; the second write is refused: still one leader.
        api.objects[LEASE]["spec"]["holderIdentity"] = ""  # released
        writes = api.writes
        results = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
        assert results.count(True) == 1 and api.writes == writes + 1  # the other got 409
        assert (a.leading, b.leading) == (results[0], results[1])

    asyncio.run(scenario())


def test_the_follower_waits_then_takes_over_an_expired_lease() -> None:
    async def scenario() -> None:
        api, clock = Leases(), Clock()
        leader, follower = elector(api, clock, ME), elector(api, clock, OTHER)
        await leader.acquire()
        assert not await follower.try_acquire_or_renew()
        # The leader renews (the record changes), so the follower keeps waiting...
        for _ in range(10):
            clock.now += 2
            assert await leader.try_acquire_or_renew()
            assert not await follower.try_acquire_or_renew()
        # ...until the leader stops renewing (it crashed): 15 s of the follower's clock later.
        clock.now += 14
        assert not await follower.try_acquire_or_renew()
        clock.now += 1.5
        assert await follower.try_acquire_or_renew() and holder(api) == OTHER
        assert api.objects[LEASE]["spec"]["leaseTransitions"] == 1
        # The old leader, back, sees it lost the Lease at its next renewal.
        assert await leader.hold() == f"the Lease is held by {OTHER}"

    asyncio.run(scenario())


def test_a_leader_that_cannot_renew_stops_at_the_renew_deadline() -> None:
    async def scenario() -> None:
        api, clock = Leases(), Clock()
        leader = elector(api, clock, ME)
        await leader.acquire()
        renewed_at = clock.now
        api.down = True  # the API server is unreachable: every renewal fails
        reason = await leader.hold()
        assert "renew deadline" in reason
        assert clock.now - renewed_at > TIMINGS.renew_deadline
        # It gave up before any follower may take over (a lease duration after the renewal).
        assert clock.now - renewed_at < TIMINGS.lease_duration

    asyncio.run(scenario())


def test_a_released_lease_goes_to_the_next_candidate_at_its_next_try() -> None:
    async def scenario() -> None:
        api, clock = Leases(), Clock()
        leader, follower = elector(api, clock, ME), elector(api, clock, OTHER)
        await leader.acquire()
        assert not await follower.try_acquire_or_renew()
        await leader.release()
        assert holder(api) == "" and not leader.leading
        assert await follower.try_acquire_or_renew() and holder(api) == OTHER
        writes = api.writes
        await leader.release()  # no longer leading: writes nothing
        assert api.writes == writes

    asyncio.run(scenario())


def test_a_renewal_cancelled_in_flight_does_not_keep_the_lease_from_being_released() -> None:
    """Stopping cancels the renewing task; its last write may have reached the server
    (a newer version than the leader knows, still naming it). The release reads again."""

    async def scenario() -> None:
        api, clock = Leases(), Clock()
        leader = elector(api, clock, ME)
        await leader.acquire()
        api.objects[LEASE]["metadata"]["resourceVersion"] = "99"  # the write it never saw
        await leader.release()
        assert holder(api) == ""
        # Never a release of a Lease someone else holds by now.
        await leader.acquire()
        api.objects[LEASE]["spec"]["holderIdentity"] = OTHER
        api.objects[LEASE]["metadata"]["resourceVersion"] = "100"
        await leader.release()
        assert holder(api) == OTHER

    asyncio.run(scenario())


def test_a_waiting_follower_answers_the_liveness_probe_until_it_leads() -> None:
    """kopf serves /healthz only after the startup handlers: the standby server answers
    meanwhile, and frees the port for kopf's once the Lease is held."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def get() -> int:
        url = f"http://127.0.0.1:{port}/healthz"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status

    async def scenario() -> None:
        async with standby_health(port):
            assert await get() == 200
        with pytest.raises(aiohttp.ClientConnectionError):
            await get()
        async with standby_health(port):  # the port is free again (kopf binds it next)
            assert await get() == 200
        async with standby_health(0):  # off
            pass

    asyncio.run(scenario())


def test_the_lease_client_logs_in_again_after_a_401(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rotated ServiceAccount token: the Lease's next call logs in again (as kopf does)
    instead of failing every renewal until the leader exits."""
    seen: list[int] = []

    async def lease(_: web.Request) -> web.Response:
        seen.append(len(seen))
        if len(seen) == 1:
            return web.json_response({"message": "Unauthorized"}, status=401)
        return web.json_response({"metadata": {"name": "lease"}})

    async def scenario() -> None:
        application = web.Application()
        application.router.add_get("/lease", lease)
        runner = web.AppRunner(application)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        monkeypatch.setenv("STEVIE_KUBE_SERVER", f"http://127.0.0.1:{port}")
        client = _LeaseClient(kopf.OperatorSettings())
        try:
            assert await client.get("/lease") == {"metadata": {"name": "lease"}}
            assert seen == [0, 1]
        finally:
            await client.close()
            await runner.cleanup()

    asyncio.run(scenario())
