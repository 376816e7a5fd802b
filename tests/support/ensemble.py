"""Tiny trained members for the ensemble tests: a PPO, a DQN and a BC-initialised PPO on the
bundled GOOGL dailies, trained once per session (seconds each) into model folders, trading
shorts with no minimum hold."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stevie_api.training import TrainingRunSpec
from stevie_trainer.ensemble.members import MemberRef
from stevie_trainer.rl.train import train
from support.mechanics import MECHANICS_DOC
from support.specs import template

__all__ = ["MEMBER_SPECS", "TrainedMembers", "train_members"]


def member(**overrides: Any) -> dict[str, Any]:
    """A member's TrainingRun document: shorts and no hold (support.mechanics), so the
    ensemble's grid is -1/0/1 and its own rules are the only ones in force."""
    doc = template(**overrides)
    doc["env"] |= MECHANICS_DOC
    return doc


MEMBER_SPECS: dict[str, dict[str, Any]] = {
    "ppo": member(seed=1),
    "dqn": member(
        algorithm="DQN",
        seed=2,
        dqn={"learningStarts": 128, "bufferSize": 5000, "batchSize": 32, "trainFreq": 4},
    ),
    "bc": member(seed=3, window=10, behaviourCloning={"enabled": True, "epochs": 2}),
}


@dataclass(frozen=True)
class TrainedMembers:
    folder: Path

    def refs(self, *names: str) -> list[MemberRef]:
        """MemberRefs of TrainingRun members (their artifacts folders)."""
        return [
            MemberRef(name=n, source="TrainingRun", uri=str(self.folder / n))
            for n in (names or tuple(MEMBER_SPECS))
        ]


def train_members(folder: Path) -> TrainedMembers:
    for name, doc in MEMBER_SPECS.items():
        doc = dict(doc)
        window = doc.pop("window", None)
        spec = TrainingRunSpec.model_validate(doc)
        if window is not None:
            spec = spec.model_copy(update={"env": spec.env.model_copy(update={"window": window})})
        train(spec, str(folder / name), log=lambda _: None)
    return TrainedMembers(folder)
