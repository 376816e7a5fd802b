"""A second S3 endpoint that checks credentials: another team's MinIO, for the tests of a
resource that names its own ``s3EndpointUrl`` and ``s3SecretRef``.

It is moto's server in its own process (the session's ``s3_server`` accepts any keys; this
one has IAM authentication on, a process-wide moto setting, hence the process): the first
few calls create an IAM user allowed everything, its access key and a bucket; every call
after them must be signed with that key. So a read that succeeds proves both the endpoint
(the bucket exists only here) and the keys (the environment's are refused here).
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

__all__ = ["AuthS3"]

_SETUP_CALLS = 4  # create_user, put_user_policy, create_access_key, create_bucket
_ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class AuthS3:
    """The server, with ``bucket`` and the key pair allowed to use it; a context manager
    (the process is stopped at the end)."""

    def __init__(self, bucket: str = "research-artifacts", user: str = "research") -> None:
        self.bucket, self.user = bucket, user
        self.endpoint_url = f"http://127.0.0.1:{_free_port()}"
        self.access_key_id = self.secret_access_key = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> AuthS3:
        port = self.endpoint_url.rsplit(":", 1)[1]
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_CALLS)}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", port],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_ready()
            self._set_up()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
            self._process = None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("the authenticating moto server did not start") from None
                time.sleep(0.1)

    def _set_up(self) -> None:
        anyone = {"aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
        iam = self._boto("iam", **anyone)
        iam.create_user(UserName=self.user)
        iam.put_user_policy(
            UserName=self.user, PolicyName="all", PolicyDocument=json.dumps(_ALLOW_ALL)
        )
        key = iam.create_access_key(UserName=self.user)["AccessKey"]
        self._boto("s3", **anyone).create_bucket(Bucket=self.bucket)
        self.access_key_id, self.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]

    def _boto(self, service: str, **keys: str) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(s3={"addressing_style": "path"})
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint_url, region_name="us-east-1", config=config,
            **keys,
        )  # fmt: skip

    def client(self, service: str = "s3") -> Any:
        """A boto3 client signed with the allowed key pair."""
        keys = {"aws_access_key_id": self.access_key_id,
                "aws_secret_access_key": self.secret_access_key}  # fmt: skip
        return self._boto(service, **keys)

    def rotate(self) -> None:
        """A new key pair for the user; the old one is deleted (refused from now on)."""
        iam = self.client("iam")
        old = self.access_key_id
        key = iam.create_access_key(UserName=self.user)["AccessKey"]
        iam.delete_access_key(UserName=self.user, AccessKeyId=old)
        self.access_key_id, self.secret_access_key = key["AccessKeyId"], key["SecretAccessKey"]

    def uri(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{key}".rstrip("/")

    def keys(self, prefix: str = "") -> list[str]:
        """The object keys under ``prefix``, sorted."""
        found = self.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return sorted(o["Key"] for o in found.get("Contents", []))

    def secret(self, name: str, **extra: str) -> dict[str, Any]:
        """A Secret manifest with the key pair, as ``kubectl create secret generic`` stores
        it (base64 ``data``); ``extra`` adds keys (AWS_REGION, ...)."""
        values = {"AWS_ACCESS_KEY_ID": self.access_key_id,
                  "AWS_SECRET_ACCESS_KEY": self.secret_access_key, **extra}  # fmt: skip
        data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}
