"""storage: local paths, file://, pkg:// and s3:// (against moto's real HTTP server)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from stevie_trainer.common import storage
from stevie_trainer.common.storage import StorageError

GOOGL = "pkg://gym_anytrading/datasets/data/STOCKS_GOOGL.csv"


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text, repr(text)
    return text


# ----------------------------------------------------------------------------- local


@pytest.mark.parametrize("kind", ["plain", "file"])
def test_local_round_trip(tmp_path: Path, kind: str) -> None:
    base = str(tmp_path) if kind == "plain" else f"file://{tmp_path}"
    uri = storage.join(base, "runs", "t1", "result.json")
    assert not storage.exists(uri)
    storage.write_text(uri, '{"ok": true}')  # creates the folders
    assert storage.exists(uri)
    assert storage.read_text(uri) == '{"ok": true}'
    assert storage.read_bytes(uri) == b'{"ok": true}'
    assert storage.local_path(uri) == tmp_path / "runs" / "t1" / "result.json"
    storage.write_bytes(storage.join(base, "runs", "t2", "model.zip"), b"\x00\x01")
    listed = storage.list_uris(storage.join(base, "runs"))
    assert listed == [
        storage.join(base, "runs", "t1", "result.json"),
        storage.join(base, "runs", "t2", "model.zip"),
    ]
    storage.delete(uri)
    assert not storage.exists(uri)
    storage.delete(uri)  # deleting something absent is fine


def test_join_forms(tmp_path: Path) -> None:
    assert storage.join("s3://b", "x", "y.csv") == "s3://b/x/y.csv"
    assert storage.join("s3://b/runs/", "/t1/", "m.zip") == "s3://b/runs/t1/m.zip"
    assert storage.join("file:///data", "a") == "file:///data/a"
    assert storage.join("pkg://pkg/d", "f.csv") == "pkg://pkg/d/f.csv"
    assert storage.join(str(tmp_path), "a", "b") == str(tmp_path / "a" / "b")
    assert storage.basename("s3://b/x/BTCUSDT_1h.csv") == "BTCUSDT_1h.csv"


def test_missing_local_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    with pytest.raises(StorageError) as err:
        storage.read_bytes(str(missing))
    assert _one_line(err.value).endswith("nope.csv: no such file")
    with pytest.raises(StorageError, match="no such file"):
        storage.read_text(f"file://{missing}")


def test_errors_for_bad_uris(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="unsupported URI scheme 'http'"):
        storage.read_bytes("http://example.com/x.csv")
    with pytest.raises(StorageError, match="absolute path"):
        storage.read_bytes("file://relative/x.csv")
    with pytest.raises(StorageError, match="is a directory"):
        storage.read_bytes(str(tmp_path))
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="not a folder"):
        storage.write_text(str(tmp_path / "file" / "child.txt"), "y")


def test_atomic_write_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "model.zip"
    for i in range(3):
        storage.write_bytes(str(target), bytes([i]) * 1000)
    assert target.read_bytes() == b"\x02" * 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.zip"]


def test_write_keeps_existing_mode_and_respects_umask(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    storage.write_text(str(target), "new")
    assert target.stat().st_mode & 0o777 == 0o666 & ~_umask()
    target.chmod(0o600)
    storage.write_text(str(target), "again")
    assert target.stat().st_mode & 0o777 == 0o600


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_interrupted_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "model.zip"
    storage.write_bytes(str(target), b"old model")

    def failing_replace(src: Any, dst: Any) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(StorageError) as err:
        storage.write_bytes(str(target), b"new model, half written")
    assert _one_line(err.value).endswith("model.zip: Input/output error")
    assert target.read_bytes() == b"old model"
    assert [p.name for p in tmp_path.iterdir()] == ["model.zip"]


def test_failed_fsync_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "result.json"
    storage.write_text(str(target), "{}")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(StorageError, match=r"result\.json: no space left on device"):
        storage.write_text(str(target), '{"a": 1}')
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_list_missing_folder_is_empty(tmp_path: Path) -> None:
    assert storage.list_uris(str(tmp_path / "absent")) == []


# ----------------------------------------------------------------------------- pkg://


def test_pkg_read() -> None:
    text = storage.read_text(GOOGL)
    assert text.startswith("Date,Open,High,Low,Close,Adj Close,Volume")
    assert storage.exists(GOOGL)
    path = storage.local_path(GOOGL)
    assert path is not None and path.is_file()
    listed = storage.list_uris("pkg://gym_anytrading/datasets/data")
    assert GOOGL in listed
    assert "pkg://gym_anytrading/datasets/data/FOREX_EURUSD_1H_ASK.csv" in listed


def test_pkg_errors() -> None:
    with pytest.raises(StorageError) as err:
        storage.read_bytes("pkg://gym_anytrading/datasets/data/NOPE.csv")
    assert _one_line(err.value) == "pkg://gym_anytrading/datasets/data/NOPE.csv: no such file"
    with pytest.raises(StorageError, match="package 'no_such_pkg_xyz' is not installed"):
        storage.read_bytes("pkg://no_such_pkg_xyz/a.csv")
    assert not storage.exists("pkg://no_such_pkg_xyz/a.csv")
    with pytest.raises(StorageError, match="read-only"):
        storage.write_text(GOOGL, "x")


# ----------------------------------------------------------------------------- s3://


def test_s3_round_trip_and_overwrite(s3_server: Any) -> None:
    uri = s3_server.uri("runs/t1/model.zip")
    assert not storage.exists(uri)
    storage.write_bytes(uri, b"v1")
    assert storage.exists(uri)
    assert storage.read_bytes(uri) == b"v1"
    storage.write_text(uri, "v2")  # a single PUT replaces the object whole
    assert storage.read_text(uri) == "v2"
    # The object really is on the server (read with an independent client).
    body = s3_server.client.get_object(Bucket=s3_server.bucket, Key="runs/t1/model.zip")["Body"]
    assert body.read() == b"v2"
    assert storage.local_path(uri) is None
    storage.delete(uri)
    assert not storage.exists(uri)


def test_s3_listing(s3_server: Any) -> None:
    for key in ("runs/a/1.json", "runs/b/2.json", "runs2/x.json", "other.txt"):
        storage.write_text(s3_server.uri(key), key)
    assert storage.list_uris(s3_server.uri("runs")) == [
        s3_server.uri("runs/a/1.json"),
        s3_server.uri("runs/b/2.json"),
    ]
    assert storage.list_uris(s3_server.uri("runs/")) == storage.list_uris(s3_server.uri("runs"))
    assert len(storage.list_uris(f"s3://{s3_server.bucket}")) == 4
    assert storage.list_uris(s3_server.uri("absent")) == []


def test_s3_listing_paginates(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage.s3, "_LIST_PAGE", 2)  # 7 keys -> 4 list_objects_v2 pages
    for i in range(7):
        s3_server.client.put_object(Bucket=s3_server.bucket, Key=f"many/{i:02d}", Body=b"")
    listed = storage.list_uris(s3_server.uri("many"))
    assert listed == [s3_server.uri(f"many/{i:02d}") for i in range(7)]


def test_s3_missing_key_and_bucket(s3_server: Any) -> None:
    uri = s3_server.uri("nope/model.zip")
    with pytest.raises(StorageError) as err:
        storage.read_bytes(uri)
    assert _one_line(err.value) == f"{uri}: no such file"
    with pytest.raises(StorageError) as err:
        storage.read_bytes("s3://no-such-bucket-xyz/k")
    assert _one_line(err.value) == "s3://no-such-bucket-xyz/k: no such bucket 'no-such-bucket-xyz'"
    with pytest.raises(StorageError, match="no such bucket"):
        storage.write_text("s3://no-such-bucket-xyz/k", "x")
    with pytest.raises(StorageError, match="not an object"):
        storage.read_bytes(f"s3://{s3_server.bucket}/folder/")


def test_s3_missing_credentials(s3_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    storage.clear_s3_clients()
    with pytest.raises(StorageError) as err:
        storage.read_bytes(s3_server.uri("x"))
    assert "no usable AWS credentials" in _one_line(err.value)


def test_s3_describe_and_join(s3_server: Any) -> None:
    uri = storage.join(f"s3://{s3_server.bucket}/", "a", "b.csv")
    assert uri == s3_server.uri("a/b.csv")
    assert storage.describe(uri) == uri
