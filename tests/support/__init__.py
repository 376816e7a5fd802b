"""Helpers shared by the tests of every package (importable as ``support``: pytest and mypy
put ``tests/`` on the path)."""
