"""An Ensemble's version (its backtest's and Deployment's identity) is stable across an
added defaulted DataSpec field, and across the upgrade to the normalised hash."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field, create_model

from stevie_api.ensemble import Ensemble
from stevie_api.market import DataSpec
from stevie_operator.kinds.ensemble.children import _digest, version_of

DOC: dict[str, Any] = {
    "apiVersion": "stevie.dev/v1alpha1",
    "kind": "Ensemble",
    "metadata": {"name": "ens"},
    "spec": {"members": [{"uri": "s3://models/x/model.zip"}],
             "data": {"uri": "file:///d.csv", "symbol": "BTC"}},
}  # fmt: skip
REFS = [{"name": "member-0", "source": "uri", "uri": "s3://models/x/model.zip"}]

NewDataSpec = create_model("NewDataSpec", __base__=DataSpec, timezone=(str, Field(default="UTC")))


def test_an_added_defaulted_data_field_makes_no_new_version() -> None:
    ens = Ensemble.model_validate(DOC)
    assert ens.spec.data is not None
    newer_data = NewDataSpec.model_validate(ens.spec.data.model_dump())
    newer = ens.model_copy(update={"spec": ens.spec.model_copy(update={"data": newer_data})})
    assert "timezone" in newer_data.to_dict()  # the field is real
    assert version_of(newer, REFS) == version_of(ens, REFS)
    doc = copy.deepcopy(DOC)
    doc["spec"]["data"]["symbol"] = "ETH"
    changed = Ensemble.model_validate(doc)
    assert version_of(changed, REFS) != version_of(ens, REFS)


def test_a_version_hashed_the_old_way_is_kept_for_the_same_spec() -> None:
    ens = Ensemble.model_validate(DOC)
    assert ens.spec.data is not None
    legacy = _digest(ens, REFS, ens.spec.data.to_dict())  # defaults spelled out
    assert legacy != version_of(ens, REFS)
    assert version_of(ens, REFS, known=legacy) == legacy  # no re-run of the backtest
    other = [ref | {"weight": 2.0} for ref in REFS]  # a real change: a new version
    assert version_of(ens, other, known=legacy) == version_of(ens, other)


def test_the_acting_rules_make_a_version_only_when_set() -> None:
    """noTradeBand and minHoldBars change what the ensemble trades: a new version (a new
    backtest, a Deployment roll); unset, the version of a spec from before them is kept."""
    ens = Ensemble.model_validate(DOC)
    assert version_of(ens, REFS) == "e037afe786"  # DOC's version before the rules existed
    versions = {version_of(ens, REFS)}
    for rules in ({"noTradeBand": 0.0}, {"noTradeBand": 0.05}, {"minHoldBars": 3}):
        doc = copy.deepcopy(DOC)
        doc["spec"] |= rules
        versions.add(version_of(Ensemble.model_validate(doc), REFS))
    assert len(versions) == 4
