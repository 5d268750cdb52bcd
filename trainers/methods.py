"""The training methods by name: how to train each, its defaults, and its TRL config class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from harness.errors import FtbenchError
from trainers.config import TrainSettings


class TrainMethod(NamedTuple):
    """One method: its trainer, its default settings, and whether it makes a language model to evaluate."""

    train: Callable[[TrainSettings, bool], Any]
    defaults: dict[str, Any]
    trl_config: type
    language_model: bool


def _sft() -> TrainMethod:
    from trl import SFTConfig

    from trainers.sft import DEFAULTS, train_sft

    return TrainMethod(train_sft, DEFAULTS, SFTConfig, True)


def _dpo() -> TrainMethod:
    from trl import DPOConfig

    from trainers.dpo import DEFAULTS, train_dpo

    return TrainMethod(train_dpo, DEFAULTS, DPOConfig, True)


def _rloo() -> TrainMethod:
    from trl import RLOOConfig

    from trainers.rloo import DEFAULTS, train_rloo

    return TrainMethod(train_rloo, DEFAULTS, RLOOConfig, True)


def _reward() -> TrainMethod:
    from trl import RewardConfig

    from trainers.reward import DEFAULTS, train_reward

    return TrainMethod(train_reward, DEFAULTS, RewardConfig, False)


METHODS: dict[str, Callable[[], TrainMethod]] = {"sft": _sft, "dpo": _dpo, "rloo": _rloo, "reward": _reward}
"""Each method's loader; trainers import TRL, so a method is loaded only when used."""


def get_method(name: str) -> TrainMethod:
    """The method called ``name``.

    Raises:
        FtbenchError: no such method, listing the valid ones.
    """
    if name not in METHODS:
        raise FtbenchError(f"unknown training method {name!r}; choose from {', '.join(METHODS)}")
    return METHODS[name]()
