"""Rollout buffers that also hold the teacher's outputs for the rollout.

The teacher runs once per rollout, on the whole buffer, after the environment steps are
collected; its outputs are kept as tensors on the student's device in the buffer's flat
sample order, so a minibatch only indexes them.

When the student's environment normalizes observations (VecNormalize), the teacher must
see raw observations through its own statistics instead: the buffer then records the raw
observation of every step from ``raw_obs_source`` (VecNormalize.get_original_obs). A teacher
whose target depends on the environment's action masks (MaskablePPO's) gets the masks of every
step the same way, from ``action_mask_source``; the buffers of a MaskablePPO student
(:class:`DistillMaskableRolloutBuffer`) hold them already.

A recurrent student (sb3-contrib's RecurrentPPO) trains on padded sequences, not on samples:
its buffers (:class:`DistillRecurrentRolloutBuffer`) cut the teacher's outputs of a minibatch
into the same sequences and pad them the same way, so that they line up with the student's
outputs step for step (padded steps are masked out of every loss).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch as th
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBuffer, MaskableRolloutBuffer
from sb3_contrib.common.recurrent.buffers import RecurrentDictRolloutBuffer, RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.vec_env import VecNormalize

from ppdistill.networks.forward import TensorObs

RawObs = np.ndarray | dict[str, np.ndarray]


class DistillRolloutBufferSamples(NamedTuple):
    """SB3's RolloutBufferSamples plus the teacher's outputs for the same samples."""

    observations: TensorObs
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    teacher_params: th.Tensor | None
    teacher_values: th.Tensor | None


class DistillMaskableRolloutBufferSamples(NamedTuple):
    """sb3-contrib's MaskableRolloutBufferSamples plus the teacher's outputs for the same samples."""

    observations: TensorObs
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    action_masks: th.Tensor
    teacher_params: th.Tensor | None
    teacher_values: th.Tensor | None


class DistillRecurrentRolloutBufferSamples(NamedTuple):
    """sb3-contrib's RecurrentRolloutBufferSamples plus the teacher's outputs, padded as the rest."""

    observations: TensorObs
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    lstm_states: RNNStates
    episode_starts: th.Tensor
    mask: th.Tensor
    teacher_params: th.Tensor | None
    teacher_values: th.Tensor | None
    privileged_targets: th.Tensor | None
    """What the student's memory is asked to predict at each step (the teacher's observation,
    standardized), padded as the rest; None unless the student was made with
    ``privileged_prediction``."""


class _TeacherStorage:
    """Mixin for SB3 rollout buffers; see the module docstring."""

    raw_obs_source: Callable[[], RawObs | None] | None = None
    action_mask_source: Callable[[], np.ndarray | None] | None = None
    keeps_action_masks: bool = False
    """Whether the buffer stores the action masks itself (a MaskablePPO student's does)."""
    samples_class: type[Any] = DistillRolloutBufferSamples
    teacher_skipped: bool = False
    teacher_params: th.Tensor | None = None
    teacher_values: th.Tensor | None = None
    # provided by the SB3 buffer class
    buffer_size: int
    n_envs: int
    observations: Any
    episode_starts: np.ndarray
    device: th.device

    def reset(self) -> None:
        super().reset()  # type: ignore[misc]
        self.teacher_params = None
        self.teacher_values = None
        self.teacher_skipped = False
        self._raw_obs: list[RawObs] = []
        self._pending_raw = self.raw_obs_source() if self.raw_obs_source is not None else None
        self._masks: list[np.ndarray] = []
        self._pending_masks = self.action_mask_source() if self.action_mask_source is not None else None

    def add(self, *args: Any, **kwargs: Any) -> None:
        if self._pending_raw is not None:
            # SB3 adds the observation the action was taken on after env.step(), so the
            # source already shows the next one: keep it for the next add().
            self._raw_obs.append(self._pending_raw)
            assert self.raw_obs_source is not None
            self._pending_raw = self.raw_obs_source()
        if self._pending_masks is not None:  # the same for the masks of that observation
            self._masks.append(self._pending_masks)
            assert self.action_mask_source is not None
            self._pending_masks = self.action_mask_source()
        super().add(*args, **kwargs)  # type: ignore[misc]

    def _flat(self, arr: np.ndarray) -> np.ndarray:
        # Same order as SB3's swap_and_flatten: index = env * n_steps + step.
        return arr.swapaxes(0, 1).reshape(self.buffer_size * self.n_envs, *arr.shape[2:])

    def teacher_inputs(self) -> RawObs:
        """All observations of the rollout, as the teacher must see them, in flat sample order."""
        if self._raw_obs:
            if isinstance(self._raw_obs[0], dict):
                keys = self._raw_obs[0].keys()
                return {k: self._flat(np.stack([o[k] for o in self._raw_obs])) for k in keys}
            return self._flat(np.stack(self._raw_obs))  # type: ignore[arg-type]
        if getattr(self, "generator_ready", False):
            return self.observations
        if isinstance(self.observations, dict):
            return {k: self._flat(v) for k, v in self.observations.items()}
        return self._flat(self.observations)

    def teacher_masks(self) -> np.ndarray | None:
        """The action masks of every step of the rollout (True where legal), in flat sample
        order ``(n_samples, mask_width)``; None when they were not recorded."""
        if len(self._masks) != self.buffer_size:
            return None
        masks = np.stack([np.asarray(m, dtype=bool).reshape(self.n_envs, -1) for m in self._masks])
        return self._flat(masks)

    def episode_starts_flat(self) -> np.ndarray:
        """Where each observation of the rollout starts an episode, in flat sample order."""
        if getattr(self, "generator_ready", False):  # SB3 has flattened its arrays already
            return np.asarray(self.episode_starts).reshape(-1)
        return self._flat(np.asarray(self.episode_starts))

    def set_teacher_outputs(self, params: th.Tensor, values: th.Tensor | None) -> None:
        """Store the teacher's outputs (flat sample order, on the student's device)."""
        n = self.buffer_size * self.n_envs
        if params.shape[0] != n or (values is not None and values.shape[0] != n):
            raise ValueError(f"teacher outputs for {params.shape[0]} samples, buffer holds {n}")
        self.teacher_params = params
        self.teacher_values = values

    def skip_teacher(self) -> None:
        """Mark this rollout as one that needs no teacher (samples then carry None)."""
        self.teacher_skipped = True

    def _with_teacher(self, base: Any, batch_inds: np.ndarray) -> DistillRolloutBufferSamples:
        if self.teacher_skipped:
            return self.samples_class._make((*base, None, None))
        if self.teacher_params is None:
            raise RuntimeError("the teacher's outputs were not computed for this rollout")
        idx = th.as_tensor(batch_inds, device=self.teacher_params.device)
        values = self.teacher_values[idx] if self.teacher_values is not None else None
        return self.samples_class._make((*base, self.teacher_params[idx], values))


class DistillRolloutBuffer(_TeacherStorage, RolloutBuffer):
    """:class:`~stable_baselines3.common.buffers.RolloutBuffer` with teacher outputs."""

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> DistillRolloutBufferSamples:
        return self._with_teacher(super()._get_samples(batch_inds, env), batch_inds)


class DistillDictRolloutBuffer(_TeacherStorage, DictRolloutBuffer):
    """:class:`~stable_baselines3.common.buffers.DictRolloutBuffer` with teacher outputs."""

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: VecNormalize | None = None
    ) -> DistillRolloutBufferSamples:
        return self._with_teacher(super()._get_samples(batch_inds, env), batch_inds)


class _OwnActionMasks:
    """For sb3-contrib's maskable buffers: the student's own recorded action masks are the
    teacher's, flattened as the teacher's outputs are."""

    samples_class = DistillMaskableRolloutBufferSamples
    keeps_action_masks = True
    action_masks: np.ndarray
    buffer_size: int
    n_envs: int
    generator_ready: bool

    def teacher_masks(self) -> np.ndarray | None:
        masks = np.asarray(self.action_masks, dtype=bool)
        if self.generator_ready:
            return masks.reshape(self.buffer_size * self.n_envs, -1)
        return self._flat(masks)  # type: ignore[attr-defined]


class DistillMaskableRolloutBuffer(_OwnActionMasks, DistillRolloutBuffer, MaskableRolloutBuffer):  # type: ignore[misc]
    """sb3-contrib's :class:`~sb3_contrib.common.maskable.buffers.MaskableRolloutBuffer` (a
    MaskablePPO student's) with teacher outputs; its own action masks are the teacher's."""


class DistillMaskableDictRolloutBuffer(_OwnActionMasks, DistillDictRolloutBuffer, MaskableDictRolloutBuffer):  # type: ignore[misc]
    """:class:`~sb3_contrib.common.maskable.buffers.MaskableDictRolloutBuffer` with teacher outputs."""


class _PaddedTeacher(_TeacherStorage):
    """The teacher's outputs of a minibatch of a recurrent buffer, cut into its sequences and
    padded as sb3-contrib pads the rest (``seq_start_indices`` of the minibatch); and, for a
    student that predicts the privileged part, its targets cut and padded the same way."""

    samples_class = DistillRecurrentRolloutBufferSamples
    seq_start_indices: Any  # set by sb3-contrib's _get_samples
    privileged_targets: th.Tensor | None = None

    def reset(self) -> None:
        super().reset()
        self.privileged_targets = None

    def set_privileged_targets(self, targets: th.Tensor) -> None:
        """Store what the student's memory predicts at each step (flat sample order, on the
        student's device), for this rollout."""
        n = self.buffer_size * self.n_envs
        if targets.shape[0] != n:
            raise ValueError(f"privileged targets for {targets.shape[0]} samples, buffer holds {n}")
        self.privileged_targets = targets

    def _padded(self, values: th.Tensor, batch_inds: np.ndarray) -> th.Tensor:
        rows = values[th.as_tensor(batch_inds, device=values.device)]
        starts = [int(i) for i in self.seq_start_indices]
        ends = [*starts[1:], len(batch_inds)]
        sequences = [rows[start:end] for start, end in zip(starts, ends)]
        padded = th.nn.utils.rnn.pad_sequence(sequences, batch_first=True, padding_value=0.0)
        return padded.reshape(-1, *rows.shape[1:])

    def _with_padded_teacher(self, base: Any, batch_inds: np.ndarray) -> DistillRecurrentRolloutBufferSamples:
        # the targets are the teacher's observations: there even when the teacher did not run (λ 0)
        targets = None
        if self.privileged_targets is not None:
            targets = self._padded(self.privileged_targets, batch_inds)
        if self.teacher_skipped:
            return self.samples_class._make((*base, None, None, targets))
        if self.teacher_params is None:
            raise RuntimeError("the teacher's outputs were not computed for this rollout")
        params = self._padded(self.teacher_params, batch_inds)
        values = self._padded(self.teacher_values, batch_inds) if self.teacher_values is not None else None
        return self.samples_class._make((*base, params, values, targets))


class DistillRecurrentRolloutBuffer(_PaddedTeacher, RecurrentRolloutBuffer):
    """sb3-contrib's :class:`~sb3_contrib.common.recurrent.buffers.RecurrentRolloutBuffer` (a
    RecurrentPPO student's) with teacher outputs."""

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env_change: np.ndarray, env: VecNormalize | None = None
    ) -> DistillRecurrentRolloutBufferSamples:
        base = super()._get_samples(batch_inds, env_change, env)  # sets seq_start_indices
        return self._with_padded_teacher(base, batch_inds)


class DistillRecurrentDictRolloutBuffer(_PaddedTeacher, RecurrentDictRolloutBuffer):
    """:class:`~sb3_contrib.common.recurrent.buffers.RecurrentDictRolloutBuffer` with teacher outputs."""

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env_change: np.ndarray, env: VecNormalize | None = None
    ) -> DistillRecurrentRolloutBufferSamples:
        base = super()._get_samples(batch_inds, env_change, env)  # sets seq_start_indices
        return self._with_padded_teacher(base, batch_inds)
