"""One-line error reports for command-line tools (``stevie``, ``python -m stevie_trainer``).

Bad input (a spec, a data file, a storage URI) is reported as one line per problem, never a
traceback; anything else is an internal error, also one line, with a hint to rerun with
``--debug``. Torch-free and pandas-free: the operator image uses it too.
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
