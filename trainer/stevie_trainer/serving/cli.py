"""``python -m stevie_trainer ensemble-serve --ensemble URI``: the Ensemble's decision service
(what its serving Deployment runs): uvicorn serving :func:`~.app.create_app`.

With ``--workers N`` > 1 uvicorn starts N processes, each loading the models itself (the
service is stateless, so they answer alike); their statistics and /metrics are each
process's own, so prefer replicas (pods) to workers.
"""

from __future__ import annotations

import argparse
import os

__all__ = ["add_commands", "app_from_env", "serve"]

_ENV = "STEVIE_SERVE_"  # the settings, for worker processes (uvicorn imports the factory)


def app_from_env() -> object:
    """The app of a uvicorn worker process, from the settings ``serve`` put in the env."""
    from stevie_trainer.serving.app import create_app

    log_uri = os.environ.get(f"{_ENV}LOG_URI") or None
    return create_app(
        os.environ[f"{_ENV}ENSEMBLE"],
        log_uri=log_uri,
        max_body_bytes=int(os.environ.get(f"{_ENV}MAX_BODY_BYTES", str(1 << 20))),
        segment_records=int(os.environ.get(f"{_ENV}SEGMENT_RECORDS", "1000")),
        segment_seconds=float(os.environ.get(f"{_ENV}SEGMENT_SECONDS", "60")),
        freeze_gc=True,
    )


def serve(args: argparse.Namespace) -> int:
    """Run uvicorn (one process, or ``--workers`` processes) until interrupted."""
    import torch
    import uvicorn

    torch.set_num_threads(1)  # one request at a time per process: threads only contend
    from stevie_trainer.serving.app import create_app

    common = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "access_log": args.access_log,
        "timeout_graceful_shutdown": 10,
    }
    if args.workers > 1:
        os.environ.update(
            {
                f"{_ENV}ENSEMBLE": args.ensemble,
                f"{_ENV}LOG_URI": args.log_uri or "",
                f"{_ENV}MAX_BODY_BYTES": str(args.max_body_bytes),
                f"{_ENV}SEGMENT_RECORDS": str(args.segment_records),
                f"{_ENV}SEGMENT_SECONDS": str(args.segment_seconds),
            }
        )
        uvicorn.run(
            "stevie_trainer.serving.cli:app_from_env",
            factory=True,
            workers=args.workers,
            **common,
        )
        return 0
    app = create_app(
        args.ensemble,
        log_uri=args.log_uri,
        max_body_bytes=args.max_body_bytes,
        segment_records=args.segment_records,
        segment_seconds=args.segment_seconds,
        freeze_gc=True,  # this process only serves: its loaded objects live as long as it
    )
    uvicorn.run(app, **common)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
    return value


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``ensemble-serve``."""
    p = sub.add_parser("ensemble-serve", help="serve an Ensemble's decisions over HTTP")
    p.add_argument("--ensemble", required=True, help="ensemble.json path or URI (the models)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    p.add_argument("--log-uri", help="decision log folder (path or s3://); default: no log")
    p.add_argument("--workers", type=_positive, default=1, help="uvicorn processes (default 1)")
    p.add_argument("--max-body-bytes", type=_positive, default=1 << 20, help="413 above this")
    p.add_argument("--segment-records", type=_positive, default=1000, help="log segment size")
    p.add_argument(
        "--segment-seconds", type=float, default=60.0, help="log segment age limit (seconds)"
    )
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info"])
    p.add_argument("--access-log", action="store_true", help="log every request (slower)")
    p.set_defaults(func=serve)
