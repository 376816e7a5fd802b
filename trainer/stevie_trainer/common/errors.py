"""One-line error reports for command-line tools (``stevie``, ``python -m stevie_trainer``).

Bad input (a spec, a data file, a storage URI) is reported as one line per problem, never a
traceback; anything else is an internal error, also one line, with a hint to rerun with
``--debug``. :func:`exit_code` says which kind of failure it was, as the process's exit code
(:mod:`stevie_api.exit_codes`: the operator's Jobs fail at once on bad input and conflicts,
and retry crashes). Torch-free and pandas-free: the operator image uses it too.
"""

from __future__ import annotations


def _user_error_types() -> tuple[type[BaseException], ...]:
    from stevie_api.loader import SpecError

    types: list[type[BaseException]] = [SpecError, ValueError, FileNotFoundError]
    types += [IsADirectoryError, NotADirectoryError, PermissionError]
    try:
        from stevie_trainer.common.storage import StorageError

        types.append(StorageError)
    except ImportError:  # pragma: no cover - boto3 missing
        pass
    return tuple(types)


def user_error_lines(exc: BaseException, prog: str) -> list[str]:
    """What to print on stderr for ``exc``: ``<prog>: error: ...`` lines."""
    if isinstance(exc, _user_error_types()):
        lines = getattr(exc, "problems", None) or str(exc).splitlines() or [type(exc).__name__]
        return [f"{prog}: error: {' '.join(line.split())}" for line in lines]
    return [
        f"{prog}: internal error: {type(exc).__name__}: {' '.join(str(exc).split())} "
        "(rerun with --debug for the traceback, and please report it)"
    ]


# Errors of the trainer's upper layers (data, rl, hpo, ensemble, serving), by where they are
# defined: ``common`` may not import those layers (import-linter), and importing them would
# pull pandas or torch into the operator image. Matched on the exception's MRO, so
# subclasses count; a test checks every name against the real class.
_BAD_INPUT_CLASSES = frozenset(
    {
        ("stevie_api.loader", "SpecError"),
        ("pydantic_core._pydantic_core", "ValidationError"),
        ("stevie_trainer.data.ohlcv", "DataError"),
        ("stevie_trainer.ensemble.members", "MemberError"),
        ("stevie_trainer.serving.bars", "BarError"),
        # Hyperparameters valid alone but not together: a spec error, whatever its name.
        ("stevie_trainer.rl.agent", "SpecConflictError"),
    }
)
_CONFLICT_CLASSES = frozenset(
    {
        ("stevie_trainer.rl.train", "RunConflictError"),
        ("stevie_trainer.hpo.study", "StudyConflictError"),
    }
)
# StorageError is one class for every backend; its one-line messages say what failed. These
# fragments mark the ones a retry cannot fix (a bad URI, a missing object or bucket, refused
# access or credentials); anything else (no connection to the endpoint, an S3 5xx or
# throttling, a full disk) is transient: a crash, retried.
_PERMANENT_STORAGE = (
    "empty or invalid storage URI",
    "URI needs",  # a file:// URI needs an absolute path, an s3:// URI needs a bucket...
    "unsupported URI scheme",
    "no such file",
    "no such bucket",
    "is a directory, not a file",
    "a parent of this path is not a folder",
    "names a bucket or folder, not an object",
    "permission denied",
    "access denied",
    "read-only",  # a read-only file system; pkg:// data is read-only
    "rejected the credentials",
    "no usable AWS credentials",
    "is not installed",
    "cannot import package",
    "needs boto3",
    "not valid utf-8 text",
)


def _storage_error_is_permanent(exc: BaseException) -> bool:
    from stevie_trainer.common.storage._uri import StorageError

    if not isinstance(exc, StorageError):
        return False
    text = str(exc)
    return any(fragment in text for fragment in _PERMANENT_STORAGE)


def exit_code(exc: BaseException) -> int:
    """The exit code of a trainer that stopped on ``exc`` (see :mod:`stevie_api.exit_codes`):
    a conflict with work in storage (4), bad input (3: spec, data, storage URI or access,
    member), an interrupt (130), else a crash (1, retried from the latest checkpoint)."""
    from stevie_api import exit_codes

    if isinstance(exc, KeyboardInterrupt):
        return exit_codes.INTERRUPTED
    names = {(klass.__module__, klass.__qualname__) for klass in type(exc).__mro__}
    if names & _CONFLICT_CLASSES:
        return exit_codes.CONFLICT
    if names & _BAD_INPUT_CLASSES or _storage_error_is_permanent(exc):
        return exit_codes.BAD_INPUT
    return exit_codes.CRASH
