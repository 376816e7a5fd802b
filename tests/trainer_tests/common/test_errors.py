"""exit_code(exc): which kind of failure a trainer's error is, from the real errors the
trainer raises (bad input 3, conflict 4, crash 1, interrupt 130)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from botocore.exceptions import EndpointConnectionError

from stevie_api import exit_codes
from stevie_api.loader import SpecError, load_resources
from stevie_api.training import TrainingRunSpec
from stevie_trainer.common import errors, storage
from stevie_trainer.common.errors import exit_code
from stevie_trainer.common.storage import StorageError, s3
from stevie_trainer.common.storage._uri import parse


def _raised(fn: object, *args: object) -> BaseException:
    assert callable(fn)
    with pytest.raises(BaseException) as info:
        fn(*args)
    return info.value


def test_codes_are_distinct_and_the_job_fails_only_on_the_hopeless_ones() -> None:
    codes = [exit_codes.OK, exit_codes.CRASH, exit_codes.USAGE, exit_codes.BAD_INPUT]
    codes += [exit_codes.CONFLICT, exit_codes.INTERRUPTED]
    assert len(set(codes)) == len(codes)
    assert set(exit_codes.FAIL_JOB) == {exit_codes.USAGE, exit_codes.BAD_INPUT, 4, 5}
    assert exit_codes.CRASH not in exit_codes.FAIL_JOB
    assert exit_codes.describe(3) == "refused its input"
    assert exit_codes.describe(1) == "crashed"
    assert "out of memory" in exit_codes.describe(137)
    assert exit_codes.describe(134) == "was killed by signal 6"
    assert exit_codes.describe(42) == "failed"


@pytest.mark.parametrize(
    "table", [errors._BAD_INPUT_CLASSES, errors._CONFLICT_CLASSES], ids=["bad", "conflict"]
)
def test_every_named_class_exists(table: frozenset[tuple[str, str]]) -> None:
    """The tables name classes by module: a moved or renamed class must fail here."""
    for module, name in table:
        klass = getattr(importlib.import_module(module), name)
        assert issubclass(klass, Exception), (module, name)
        assert (klass.__module__, klass.__qualname__) == (module, name)


def test_an_invalid_spec_is_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: stevie.dev/v1alpha1\nkind: TrainingRun\nmetadata: {name: x}\n")
    err = _raised(load_resources, bad)
    assert isinstance(err, SpecError)
    assert exit_code(err) == exit_codes.BAD_INPUT
    invalid = _raised(TrainingRunSpec.model_validate, {"totalTimesteps": -5})
    assert type(invalid).__name__ == "ValidationError"
    assert exit_code(invalid) == exit_codes.BAD_INPUT


def test_unusable_data_is_bad_input(tmp_path: Path) -> None:
    from stevie_trainer.data.ohlcv import DataError, load_ohlcv

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    err = _raised(load_ohlcv, str(empty))
    assert isinstance(err, DataError)
    assert exit_code(err) == exit_codes.BAD_INPUT
    missing = _raised(load_ohlcv, str(tmp_path / "missing.csv"))
    assert exit_code(missing) == exit_codes.BAD_INPUT, missing  # a missing data file

    class NarrowerError(DataError):
        pass

    assert exit_code(NarrowerError("x")) == exit_codes.BAD_INPUT


def test_members_bars_and_inconsistent_hyperparameters_are_bad_input() -> None:
    from stevie_trainer.ensemble.members import MemberError
    from stevie_trainer.rl.agent import SpecConflictError
    from stevie_trainer.serving.bars import BarError

    assert exit_code(MemberError("m1", "no model.zip")) == exit_codes.BAD_INPUT
    assert exit_code(BarError("close is NaN", field="close", index=3)) == exit_codes.BAD_INPUT
    assert exit_code(SpecConflictError("batchSize > nSteps x nEnvs")) == exit_codes.BAD_INPUT


def test_conflicts_with_work_in_storage() -> None:
    from stevie_trainer.hpo.study import StudyConflictError
    from stevie_trainer.rl.train import RunConflictError

    assert exit_code(RunConflictError("--out holds another run")) == exit_codes.CONFLICT
    assert exit_code(StudyConflictError("another search space")) == exit_codes.CONFLICT


@pytest.mark.parametrize(
    "uri", ["", "ftp://host/x", "file://relative/x", "s3://", "pkg:///x", "pkg://no_such_pkg/x"]
)
def test_bad_storage_uris_are_bad_input(uri: str) -> None:
    err = _raised(storage.read_bytes, uri)
    assert isinstance(err, StorageError)
    assert exit_code(err) == exit_codes.BAD_INPUT, err


def test_missing_or_unreadable_local_objects_are_bad_input(tmp_path: Path) -> None:
    for err in (
        _raised(storage.read_text, str(tmp_path / "missing.json")),
        _raised(storage.read_text, str(tmp_path)),  # a folder
        _raised(storage.read_text, _latin1(tmp_path)),
    ):
        assert isinstance(err, StorageError)
        assert exit_code(err) == exit_codes.BAD_INPUT, err


def _latin1(tmp_path: Path) -> str:
    path = tmp_path / "latin1.txt"
    path.write_bytes("café".encode("latin-1"))
    return str(path)


def test_s3_refusals_are_bad_input_and_outages_are_crashes() -> None:
    loc = parse("s3://bucket/key.json")
    for code in ("NoSuchKey", "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId"):
        refused = s3._client_error(loc.uri, loc, {"Code": code})
        assert exit_code(refused) == exit_codes.BAD_INPUT, refused
    for code in ("InternalError", "SlowDown", "ServiceUnavailable", "503"):
        outage = s3._client_error(loc.uri, loc, {"Code": code, "Message": "try again"})
        assert exit_code(outage) == exit_codes.CRASH, outage
    unreachable = s3._error(loc, EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert "cannot connect" in str(unreachable)
    assert exit_code(unreachable) == exit_codes.CRASH


def test_anything_else_is_a_crash_and_ctrl_c_an_interrupt() -> None:
    assert exit_code(ValueError("nan in the loss")) == exit_codes.CRASH
    assert exit_code(RuntimeError("CUDA error")) == exit_codes.CRASH
    assert exit_code(FileNotFoundError("/tmp/x")) == exit_codes.CRASH
    assert exit_code(StorageError("s3://b/k: no space left on device")) == exit_codes.CRASH
    assert exit_code(KeyboardInterrupt()) == exit_codes.INTERRUPTED
