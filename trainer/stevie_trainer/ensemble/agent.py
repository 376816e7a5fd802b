"""A loaded member: its own view of the bars (features, window) and its action probabilities.

Each member builds its observation from the same bars with its own spec, exactly as its
environment did in training: the window of its features at bar t, then the four account
values of the account the ensemble trades (:class:`AccountState`, the same formulas as the
simulator's, which a test checks). Probabilities: a PPO member's policy distribution (the
softmax of its action logits), a DQN member's softmax over its Q-values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
import torch

from stevie_trainer.common import storage
from stevie_trainer.common.storage import StorageError
from stevie_trainer.ensemble.members import MemberError, ResolvedMember
from stevie_trainer.env.accounts import Accounts
from stevie_trainer.env.market import MarketData, sim_params
from stevie_trainer.rl.agent import AgentPolicy, load_model

__all__ = ["AccountState", "Member", "load_member", "softmax"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def softmax(x: F64) -> F64:
    """Row-wise softmax, stable for any finite logits."""
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float64)


@dataclass(frozen=True)
class AccountState:
    """The account the ensemble trades, as its members observe it."""

    position: float = 0.0  # the target held (0: flat)
    weight: float = 0.0  # what the position weighs in equity now
    unrealised: float = 0.0  # equity / equity at entry - 1
    bars_in: int = 0  # bars since the position was opened
    drawdown: float = 0.0  # equity / peak equity - 1 (<= 0)

    @classmethod
    def of(cls, accounts: Accounts, i: int = 0) -> AccountState:
        pos = float(accounts.pos[i])
        equity = float(accounts.equity[i])
        return cls(
            position=pos,
            weight=float(accounts.weight[i]),
            unrealised=equity / float(accounts.entry_eq[i]) - 1.0 if pos != 0.0 else 0.0,
            bars_in=int(accounts.bars_in[i]),
            drawdown=equity / float(accounts.peak[i]) - 1.0,
        )

    def features(self, window: int) -> F32:
        """The observation's 4 account floats (as stevie_trainer.env.kernel computes them)."""
        unreal = self.unrealised * 10.0 if self.position != 0.0 else 0.0
        return np.array(
            [
                min(max(self.weight, -10.0), 10.0),
                min(max(unreal, -10.0), 10.0),
                self.bars_in / (self.bars_in + window),
                max(self.drawdown * 10.0, -10.0),
            ],
            dtype=np.float32,
        )


FLAT = AccountState()


class Member:
    """One voting agent: its spec, its model's layers and its action levels."""

    def __init__(self, resolved: ResolvedMember, policy: AgentPolicy) -> None:
        self.resolved = resolved
        self.name = resolved.name
        self.spec = resolved.spec
        self.env = resolved.spec.env
        self.window = self.env.window
        self.levels: F64 = np.asarray(sim_params(self.env).levels, dtype=np.float64)
        self.policy = policy
        self._warm_up: int | None = None

    @property
    def warm_up(self) -> int:
        """Bars of history before its first observation (feature warm-up + window - 1)."""
        if self._warm_up is None:
            self._warm_up = int(self.env.window) - 1 + _feature_warm_up(self)
        return self._warm_up

    def market(self, frame: pd.DataFrame, bars_per_year: float | None = None) -> MarketData:
        """The bars as this member sees them (its features, its window)."""
        return MarketData.from_frame(
            frame, self.env, name=self.name, bars_per_year_override=bars_per_year
        )

    def observations(self, market: MarketData, bars: I64, account: AccountState = FLAT) -> F32:
        """Observations at decision bars ``bars`` (each >= market.first_obs), all seen from
        ``account``: [len(bars), window x features + 4]."""
        bars = np.asarray(bars, dtype=np.int64)
        if len(bars) and int(bars.min()) < market.first_obs:
            raise ValueError(
                f"member {self.name!r} first observes bar {market.first_obs} (got {bars.min()})"
            )
        w = self.window
        rows = bars[:, None] + np.arange(-w + 1, 1)[None, :]
        windows = market.observed[rows].reshape(len(bars), -1)
        extra = np.broadcast_to(account.features(w), (len(bars), 4))
        return np.ascontiguousarray(np.concatenate([windows, extra], axis=1), dtype=np.float32)

    def probabilities(self, obs: F32) -> F64:
        """Action probabilities [N, actions]: PPO's policy distribution, DQN's softmax of Q."""
        with torch.no_grad():
            x = torch.as_tensor(obs, dtype=torch.float32, device=self.policy.device)
            for layer in self.policy.layers:
                x = layer(x)
            logits = x.cpu().numpy().astype(np.float64)
        return softmax(logits)


def _feature_warm_up(member: Member) -> int:
    """Rows before every feature of the member is defined, measured on a synthetic series."""
    from stevie_trainer.data.features import compute_features
    from stevie_trainer.env.market import indicator_params

    n = 2000
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(0).normal(0.0, 0.01, n)))
    frame = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0},
        index=pd.date_range("2000-01-01", periods=n, freq="1h", tz="UTC"),
    )
    return compute_features(frame, member.env.features, indicator_params(member.env)).first_valid


def load_member(resolved: ResolvedMember) -> Member:
    """Load the member's model from its resolved folder (and only from there)."""
    try:
        data = storage.read_bytes(resolved.model_uri)
    except (StorageError, FileNotFoundError) as err:
        raise MemberError(resolved.name, f"cannot read {resolved.model_uri}: {err}") from err
    try:
        model = load_model(resolved.spec, data)
    except Exception as err:  # a zip SB3 cannot read: corrupt or not a Stevie model
        raise MemberError(
            resolved.name, f"{resolved.model_uri} is not a loadable model ({err})"
        ) from err
    expected = resolved.spec.env.window * len(resolved.spec.env.features) + 4
    shape = getattr(model.observation_space, "shape", None)
    if shape != (expected,):
        raise MemberError(
            resolved.name,
            f"its model observes {shape}, but its spec.json describes {expected} floats",
        )
    n_actions = int(getattr(model.action_space, "n", -1))
    member = Member(resolved, AgentPolicy(model, resolved.name))
    if n_actions != len(member.levels):
        raise MemberError(
            resolved.name,
            f"its model has {n_actions} actions, its spec {len(member.levels)} position levels",
        )
    return member
