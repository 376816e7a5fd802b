"""``stevie operator ...`` passes every argument after ``operator`` to ``kopf run``, as
given: the chart's Deployment and users run it with kopf's own options."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import stevie_operator.app
from stevie_operator import cli


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["operator"], []),
        (["operator", "--standalone", "-A"], ["--standalone", "-A"]),
        (["operator", "--namespace", "ns1", "--namespace=ns2"],
         ["--namespace", "ns1", "--namespace=ns2"]),
        (["--debug", "operator", "--peering=stevie", "--liveness=http://0.0.0.0:8081/healthz"],
         ["--peering=stevie", "--liveness=http://0.0.0.0:8081/healthz"]),
    ],
)  # fmt: skip
def test_operator_options_reach_kopf_untouched(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: list[str]
) -> None:
    seen: list[Sequence[str]] = []

    def main(args: Sequence[str] = ()) -> int:
        seen.append(args)
        return 0

    monkeypatch.setattr(stevie_operator.app, "main", main)
    assert cli.main(argv) == 0
    assert seen == [expected]


def test_other_commands_still_refuse_unknown_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["validate", "--standalone", "x.yaml"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --standalone" in capsys.readouterr().err
