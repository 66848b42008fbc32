"""Checks that stop training on NaN or infinite values, with a message that says what and where.

They are placed where they cost almost nothing: one ``isfinite`` per rollout for the
teacher's outputs, the rewards and the observations; per minibatch, the loss's finiteness
travels with a number the update already reads (no extra device synchronization).
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from ppdistill.core.errors import NonFiniteError
from ppdistill.core.finite import check_finite, first_nonfinite, first_nonfinite_named


def check_rollout(rollout_buffer: Any, last_obs: Any, step: int) -> None:
    """The rewards and observations of a collected rollout (and the observation after it).

    :param rollout_buffer: an SB3 rollout buffer, full
    :param last_obs: the model's ``_last_obs``
    :param step: env steps so far
    """
    where = f"in the rollout ending at env step {step}"
    hint = "the environment (or a wrapper) produced it; check it with gymnasium's env checker"
    check_finite(rollout_buffer.rewards, "a reward", where, hint)
    check_finite(rollout_buffer.observations, "an observation", where, hint)
    check_finite(last_obs, "an observation", where, hint)


def diagnose_value_error(model: Any) -> NonFiniteError | None:
    """Why torch refused to build the student's distribution, if the cause is a NaN or infinity.

    torch's distributions reject non-finite parameters with a ValueError; these come from a
    non-finite observation or from non-finite weights.

    :param model: the SB3 model whose rollout failed
    :return: the error to raise instead, or None when the cause is something else
    """
    step = int(model.num_timesteps)
    bad = first_nonfinite(model._last_obs) if model._last_obs is not None else None
    if bad is not None:
        return NonFiniteError(
            f"an observation is {bad} at env step {step}; the environment (or a wrapper) produced it"
        )
    return nonfinite_weights(model)


def nonfinite_weights(model: Any) -> NonFiniteError | None:
    """The error naming the student's first NaN or infinite weight, or None when all are finite.

    :param model: an SB3 model
    """
    found = first_nonfinite_named(model.policy.named_parameters())
    if found is None:
        return None
    name, bad = found
    return NonFiniteError(
        f"the student's weight {name} is {bad} at env step {int(model.num_timesteps)}; training diverged: "
        "lower the learning rate"
    )


def teacher_distribution_error(exc: ValueError, where: str, params: Any = None) -> Exception:
    """What to raise when torch refused a distribution built from the teacher's output.

    :param exc: torch's error
    :param where: when ("at env step 640")
    :param params: the teacher's output, when it could be recomputed, to say which kind of value was bad
    :return: a :class:`NonFiniteError` when torch found non-finite parameters, else ``exc``
    """
    if "invalid values" not in str(exc):  # torch's wording for parameters outside their support
        return exc
    bad = first_nonfinite(params) if params is not None else None
    return NonFiniteError(
        f"the teacher's output is {bad or 'NaN or infinite'} {where} although its inputs were finite; "
        "the teacher is damaged or saw inputs far outside its training range"
    )


def nonfinite_loss(name: str, update: int, step: int) -> NonFiniteError:
    """The error for a loss that became NaN or infinite (the inputs to it were checked already).

    :param name: which loss ("the PPD loss")
    :param update: the update's number
    :param step: env steps so far
    """
    return NonFiniteError(
        f"{name} is NaN or infinite in update {update} (env step {step}) although the teacher's outputs, "
        "rewards and observations were finite: the student diverged; lower the learning rate"
    )


class FiniteRollouts(BaseCallback):
    """The rollout checks of the distillation algorithms, for SB3's own (e.g. PPO from scratch)."""

    def _on_rollout_end(self) -> None:
        check_rollout(self.model.rollout_buffer, self.model._last_obs, self.model.num_timesteps)  # type: ignore[attr-defined]

    def _on_step(self) -> bool:
        return True
