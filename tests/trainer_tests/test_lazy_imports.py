"""What a trainer process imports before it needs it: each fresh interpreter pays every import
(a PBT interval or HPO trial Job is one), so the CLI entry and the training path leave out
what they do not use until they use it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
{code}
print(json.dumps(sorted(m for m in {modules} if m in sys.modules)))
"""


def loaded(code: str, modules: list[str]) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code, modules=modules)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    names: list[str] = json.loads(done.stdout.splitlines()[-1])
    return names


def test_the_cli_entry_parses_a_training_command_without_torch_numba_or_pandas() -> None:
    code = """
from stevie_trainer.__main__ import build_parser
from stevie_trainer.rl.cli import parse_spec
args = build_parser().parse_args(["train", "--spec-json", '{"data": {"uri": "x.csv"}}',
                                  "--out", "o"])
assert parse_spec(args).data.uri == "x.csv"
"""
    heavy = ["torch", "stable_baselines3", "numba", "pandas", "matplotlib", "optuna"]
    assert loaded(code, heavy) == []


def test_a_bad_spec_is_still_explained_field_by_field() -> None:
    """The error path imports the loader (every kind) when it needs it."""
    from stevie_trainer.__main__ import build_parser
    from stevie_trainer.rl.cli import parse_spec

    args = build_parser().parse_args(["train", "--spec-json", '{"data": {}}', "--out", "o"])
    with pytest.raises(ValueError, match=r"spec\.data: give exactly one of data\.uri"):
        parse_spec(args)


@pytest.mark.parametrize("module", ["stevie_trainer.rl.train", "stevie_trainer.pbt.member"])
def test_training_and_pbt_intervals_import_no_matplotlib_and_only_their_kinds(module: str) -> None:
    """matplotlib is imported when a report draws a plot; the API package builds only the
    models a command uses (not the other kinds', the loader's or the CRD generator's)."""
    names = ["matplotlib", "stevie_api.hpo", "stevie_api.ensemble", "stevie_api.crd",
             "stevie_api.loader", "optuna"]  # fmt: skip
    assert loaded(f"import {module}", names) == []


def test_the_api_package_still_exports_every_name() -> None:
    code = """
import stevie_api
for name in stevie_api.__all__:
    getattr(stevie_api, name)
from stevie_api import KINDS, TrainingRunSpec, generate_crds
assert sorted(KINDS) and TrainingRunSpec and generate_crds
"""
    names = ["stevie_api.crd", "stevie_api.hpo"]
    assert loaded(code, names) == names


def test_an_unknown_api_name_is_an_attribute_error() -> None:
    import stevie_api

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        stevie_api.Nope  # noqa: B018


def test_plots_still_draw_headless() -> None:
    code = """
from stevie_trainer.evaluation.plots import fig_png, pyplot
fig = pyplot().figure()
fig.add_subplot().plot([1, 2, 3])
png = fig_png(fig)
assert png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", png[:8]
import matplotlib
assert matplotlib.get_backend().lower() == "agg", matplotlib.get_backend()
"""
    assert loaded(code, ["matplotlib"]) == ["matplotlib"]
