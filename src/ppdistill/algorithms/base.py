"""What every distillation algorithm shares: holding a teacher and running it once per rollout."""

from __future__ import annotations

import copy
import pathlib
from typing import Any, Literal, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.type_aliases import MaybeCallback
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from ppdistill.algorithms.buffers import DistillDictRolloutBuffer, DistillRolloutBuffer, RawObs
from ppdistill.algorithms.guards import check_rollout, diagnose_value_error, teacher_distribution_error
from ppdistill.core.errors import MissingTeacherError, PPDistillError, SpaceMismatchError
from ppdistill.core.finite import check_finite
from ppdistill.core.losses import KLDirection
from ppdistill.core.spaces import check_spaces_compatible
from ppdistill.envs.views import (
    EntriesWithChange,
    ObservationEntries,
    check_teacher_reads,
    find_student_view,
    statistics_view,
)
from ppdistill.networks.forward import TensorObs, actor_critic_forward
from ppdistill.networks.normalization import (
    NormalizationError,
    RunningNormalizedFlattenExtractor,
    running_normalization,
    with_normalization,
)
from ppdistill.teachers.base import Teacher
from ppdistill.teachers.loading import TARGET_KEYWORDS, load_teacher
from ppdistill.teachers.maskable import MaskedTeacher
from ppdistill.teachers.recurrent import RecurrentState, RecurrentTeacher

SelfDistill = TypeVar("SelfDistill", bound="DistillationMixin")

# Largest number of observation elements sent through the teacher at once (64 MB of floats):
# a whole MLP rollout goes in one call; image rollouts are cut into a few chunks.
_TEACHER_CHUNK_ELEMENTS = 1 << 24

StudentObsNorm = Literal["teacher", "none", "running"]
# where an SB3 actor-critic policy keeps its features extractors (shared, or one each)
_EXTRACTORS = ("features_extractor", "pi_features_extractor", "vf_features_extractor")


def counted(values: th.Tensor, mask: th.Tensor | None) -> th.Tensor:
    """The samples of a minibatch that count: all of them, or those of ``mask``.

    :param values: one value per sample
    :param mask: which samples count (None: all)
    """
    return values if mask is None else values[mask]


def _n_elements(obs_space: spaces.Space) -> int:
    if isinstance(obs_space, spaces.Dict):
        return sum(_n_elements(s) for s in obs_space.spaces.values())
    return int(np.prod(obs_space.shape or (1,)))


class DistillationMixin:
    """Teacher handling for SB3 on-policy algorithms (mixed in before ``PPO`` / ``OnPolicyAlgorithm``).

    - checks the teacher's spaces against the student's, moves it to the student's device;
    - computes its outputs once per rollout, without gradients, into the rollout buffer;
    - keeps it out of ``save()`` but records what it was (``teacher_info``);
    - refuses to ``learn()`` without one.
    """

    teacher: Teacher | None
    teacher_info: dict[str, Any] | None
    kl_direction: KLDirection
    student_obs_norm: StudentObsNorm

    # provided by SB3
    observation_space: spaces.Space
    action_space: spaces.Space
    device: th.device
    policy: Any  # an ActorCriticPolicy; typed loosely to match BaseAlgorithm's declaration
    policy_kwargs: dict[str, Any]
    rollout_buffer: RolloutBuffer
    rollout_buffer_class: type[RolloutBuffer] | None
    env: VecEnv | None

    # -- teacher ---------------------------------------------------------------------
    def _init_distillation(
        self,
        teacher: Teacher | str | pathlib.Path | None,
        kl_direction: KLDirection,
        student_obs_norm: StudentObsNorm,
        log_std_from_teacher: bool = False,
    ) -> None:
        if kl_direction not in ("forward", "reverse"):
            raise ValueError(f"kl_direction must be 'forward' or 'reverse', got {kl_direction!r}")
        if student_obs_norm not in ("teacher", "none", "running"):
            raise ValueError(
                f"student_obs_norm must be 'teacher', 'none' or 'running', got {student_obs_norm!r}"
            )
        self.kl_direction = kl_direction
        if student_obs_norm == "teacher" and self._sees_changes():
            # The teacher's statistics say nothing of a one-step change, a few percent of the
            # positions' scale; unscaled, students trail (results/privileged-change-running)
            student_obs_norm = "running"
        self.student_obs_norm = student_obs_norm
        self.log_std_from_teacher = log_std_from_teacher
        self._log_std_initialized = False
        self._teacher_state: Any = None  # a recurrent teacher's LSTM state, carried between rollouts
        self.teacher = None
        self.teacher_info = None
        self._rollout_to_normalize = False  # a trained-on rollout whose observations the stats take next
        if student_obs_norm == "running":
            vecnorm = self.get_vec_normalize_env()  # type: ignore[attr-defined]
            if vecnorm is not None and vecnorm.norm_obs:
                raise NormalizationError(
                    "student_obs_norm 'running' would normalize observations twice: the student's "
                    "VecNormalize already does (give it norm_obs=False, or use 'none')"
                )
            self.policy_kwargs = running_normalization(self.policy_kwargs, self.observation_space)
        if teacher is not None:
            self.set_teacher(teacher)
            if student_obs_norm == "teacher":
                self._inherit_teacher_normalization()

    def _sees_changes(self) -> bool:
        """Whether the student sees a view that asks for its own statistics (``own_statistics``:
        positions and their change) with no VecNormalize of its own normalizing it."""
        view = find_student_view(self.env)
        vecnorm = self.get_vec_normalize_env()  # type: ignore[attr-defined]
        normalized = vecnorm is not None and vecnorm.norm_obs
        return view is not None and getattr(view.view, "own_statistics", False) and not normalized

    def set_teacher(self, teacher: Teacher | str | pathlib.Path) -> None:
        """Attach (or replace) the teacher.

        :param teacher: a :class:`~ppdistill.teachers.Teacher`, or a path for :func:`~ppdistill.load_teacher`
        """
        if isinstance(teacher, str | pathlib.Path):
            teacher = load_teacher(teacher)
        if not isinstance(teacher, Teacher):
            raise TypeError(f"teacher must be a ppdistill Teacher or a path, got {type(teacher).__name__}")
        where = f"the teacher ({teacher.info.get('path') or teacher.info.get('kind', 'callable')})"
        recipe = teacher.env_recipe
        if recipe is not None and isinstance(recipe.student_view, ObservationEntries | EntriesWithChange):
            # It would be given the environment's observation, not the entries it learned on;
            # where the shapes agree (positions and their change on CartPole) nothing else stops
            # it. A student of groups or of the raw observation is given what it read.
            raise SpaceMismatchError(
                f"{where} is a student that saw {recipe.student_view.describe()} of "
                f"{recipe.env_id}'s observation; a teacher is given the environment's own "
                "observation, so it cannot teach: use a teacher trained on that"
            )
        check_spaces_compatible("action", teacher.action_space, self.action_space, where, "the student")
        view = find_student_view(self.env)
        if view is not None:  # the teacher reads its part of the environment's observation
            groups = getattr(view.teacher_view, "keys", None)
            check_teacher_reads(teacher.observation_space, view.teacher_observation_space, where, groups)
            check_spaces_compatible(
                "observation", teacher.observation_space, view.teacher_observation_space, where,
                "the environment's teacher observation",
            )  # fmt: skip
        else:
            check_spaces_compatible(
                "observation", teacher.observation_space, self.observation_space, where, "the student"
            )
        if isinstance(teacher, MaskedTeacher) and self.env is not None:
            self._check_action_masks(self.env)  # its target needs them: say so before any rollout
        teacher.to(self.device).freeze()
        self.teacher = teacher
        self.teacher_info = copy.deepcopy(teacher.info)

    def _inherit_teacher_normalization(self) -> None:
        """Give the student the teacher's frozen observation normalization, inside its network
        (where it cannot clash: see :func:`~ppdistill.networks.normalization.with_normalization`)."""
        assert self.teacher is not None
        vecnorm = self.get_vec_normalize_env()  # type: ignore[attr-defined]
        student_view = find_student_view(self.env)
        applies, cut = (
            statistics_view(student_view.view, student_view.teacher_view)
            if student_view is not None
            else (True, None)
        )
        self.policy_kwargs = with_normalization(
            self.policy_kwargs,
            self.teacher.obs_normalizer if applies else None,
            self.observation_space,
            env_normalizes=vecnorm is not None and vecnorm.norm_obs,
            view=cut,
        )

    @property
    def _needs_teacher_values(self) -> bool:
        """Whether the teacher's state values are stored with the rollout."""
        return False

    def _require_teacher(self) -> Teacher:
        if self.teacher is None:
            recorded = (self.teacher_info or {}).get("path")
            hint = f" It was distilled from {recorded}." if recorded else ""
            raise MissingTeacherError(
                f"{type(self).__name__} has no teacher.{hint} "
                f"Pass teacher=... to {type(self).__name__}.load() "
                "or call model.set_teacher(...) before learn(); to train without one, use PPO"
            )
        return self.teacher

    # -- SB3 hooks ---------------------------------------------------------------------
    def _setup_model(self) -> None:
        if self.rollout_buffer_class is None or not issubclass(
            self.rollout_buffer_class, DistillRolloutBuffer | DistillDictRolloutBuffer
        ):
            dict_obs = isinstance(self.observation_space, spaces.Dict)
            self.rollout_buffer_class = DistillDictRolloutBuffer if dict_obs else DistillRolloutBuffer
        super()._setup_model()  # type: ignore[misc]
        self._connect_rollout_buffer()

    def _connect_rollout_buffer(self) -> None:
        """Point the rollout buffer at what it records for the teacher besides the student's
        observations: the teacher's own observations and, for a masked teacher, the action masks."""
        self.rollout_buffer.raw_obs_source = self._raw_observations  # type: ignore[attr-defined]
        if not self.rollout_buffer.keeps_action_masks:  # type: ignore[attr-defined]
            self.rollout_buffer.action_mask_source = self._recorded_action_masks  # type: ignore[attr-defined]

    def _raw_observations(self) -> RawObs | None:
        """The teacher's current observation when it is not the student's: its part of the
        environment's observation when the student sees another (a
        :class:`~ppdistill.envs.views.StudentView`), the unnormalized one when the student's
        VecEnv normalizes."""
        view = find_student_view(self.env)
        if view is not None:
            return view.teacher_observations()
        vecnorm = self.get_vec_normalize_env()  # type: ignore[attr-defined]
        if vecnorm is not None and vecnorm.norm_obs:
            return vecnorm.get_original_obs()
        return None

    def _recorded_action_masks(self) -> np.ndarray | None:
        """The environment's current action masks when the teacher's target needs them
        recorded with the rollout (a :class:`~ppdistill.teachers.maskable.MaskedTeacher`);
        None otherwise, and the environment is not asked."""
        if not isinstance(self.teacher, MaskedTeacher) or self.env is None:
            return None
        return self._current_action_masks(self.env)

    def _current_action_masks(self, env: VecEnv) -> np.ndarray:
        """The masks of the environment's current observations, ``(n_envs, mask_width)``."""
        try:
            return np.asarray(get_action_masks(env), dtype=bool)
        except AttributeError:  # no action_masks() (said in one line), or one that failed inside
            self._check_action_masks(env)
            raise

    def _check_action_masks(self, env: VecEnv) -> None:
        if not is_masking_supported(env):
            raise PPDistillError(
                "the teacher is a MaskablePPO policy, whose target needs the environment's action "
                "masks, but the environment has no action_masks() method: wrap it with "
                "sb3_contrib.common.wrappers.ActionMasker(env, mask_fn)"
            )

    def _excluded_save_params(self) -> list[str]:
        # The teacher is never pickled into the student: teacher_info records where it came from.
        # The pending merge of running statistics refers to a rollout buffer that is not saved
        # (a loaded model starts with an empty one): a checkpoint is taken after the merge.
        return [*super()._excluded_save_params(), "teacher", "_rollout_to_normalize"]  # type: ignore[misc]

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
        **kwargs: Any,
    ) -> bool:
        self._update_running_normalization(rollout_buffer)
        try:
            complete = super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps, **kwargs)  # type: ignore[misc]
        except ValueError as exc:  # torch refuses to build a distribution from NaN parameters
            error = diagnose_value_error(self)
            if error is not None:
                raise error from exc
            raise
        if complete:
            check_rollout(rollout_buffer, self._last_obs, self.num_timesteps)  # type: ignore[attr-defined]
            self._store_teacher_outputs(rollout_buffer)
            self._rollout_to_normalize = self._keeps_running_statistics()
        return complete

    def _keeps_running_statistics(self) -> bool:
        """Whether this model moves its running observation statistics: only one made with
        ``student_obs_norm="running"`` (a model given such a student's network to go on
        training, a fine-tuning anchor's PPD say, keeps them as they are)."""
        return self.student_obs_norm == "running" and bool(self._running_normalizers())

    def _running_normalizers(self) -> list[RunningNormalizedFlattenExtractor]:
        """The student's running observation normalizations (``student_obs_norm="running"``):
        one, or the actor's and the critic's when they do not share a features extractor."""
        found = (getattr(self.policy, name, None) for name in _EXTRACTORS)
        unique = {id(e): e for e in found if isinstance(e, RunningNormalizedFlattenExtractor)}
        return list(unique.values())

    def _update_running_normalization(self, rollout_buffer: RolloutBuffer) -> None:
        """Move the running statistics with the rollout just trained on, if one is pending
        (before the next rollout is collected, and before the checkpoint at that boundary: a
        resumed run has them)."""
        if not self._rollout_to_normalize:
            return
        self._rollout_to_normalize = False
        for extractor in self._running_normalizers():
            extractor.update(rollout_buffer.observations)

    def _store_teacher_outputs(self, rollout_buffer: RolloutBuffer) -> None:
        buffer: DistillRolloutBuffer = rollout_buffer  # type: ignore[assignment]
        teacher = self._require_teacher()
        if teacher.recurrent:
            params, values = self._run_recurrent_teacher(buffer, with_values=self._needs_teacher_values)
        else:
            masks = None
            if isinstance(teacher, MaskedTeacher):  # its target is masked with each step's masks
                masks = buffer.teacher_masks()
                if masks is None:
                    assert self.env is not None
                    self._check_action_masks(self.env)
                    raise PPDistillError("the action masks of the rollout were not recorded for the teacher")
            params, values = self._run_teacher(
                buffer.teacher_inputs(), with_values=self._needs_teacher_values, masks=masks
            )
        self._attach_teacher_outputs(buffer, params, values)

    def _run_recurrent_teacher(
        self, buffer: DistillRolloutBuffer, with_values: bool
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """A recurrent teacher over the whole rollout in one call: ``n_envs`` sequences in time
        order, from the state it ended the previous rollout in, reset at episode starts."""
        teacher = self._require_teacher()
        assert isinstance(teacher, RecurrentTeacher)
        if self._teacher_state is None:
            self._teacher_state = teacher.initial_state(buffer.n_envs)
        obs = obs_as_tensor(buffer.teacher_inputs(), self.device)
        starts = th.as_tensor(buffer.episode_starts_flat(), dtype=th.float32, device=self.device)
        try:
            out, self._teacher_state = teacher.sequence(
                obs, starts, self._teacher_state, with_values=with_values
            )
        except ValueError as exc:  # torch refused the teacher's own distribution
            where = f"at env step {self.num_timesteps}"  # type: ignore[attr-defined]
            raise teacher_distribution_error(exc, where) from exc
        values = None if out.values is None else out.values.float()
        return out.params.float(), values

    def distillation_state(self) -> dict[str, Any]:
        """What training depends on besides SB3's state, as plain data (for checkpoints): a
        recurrent teacher's LSTM state, and whether a Gaussian student's log-std was already
        taken from the teacher (a resumed run must not take it again over the trained one)."""
        state = self._teacher_state
        return {
            "teacher_state": state.as_arrays() if state is not None else None,
            "log_std_initialized": bool(self._log_std_initialized),
        }

    def restore_distillation_state(self, state: dict[str, Any]) -> None:
        """Put back :meth:`distillation_state` (a checkpoint of ppdistill 0.1 has none: its
        log-std was taken on the first rollout, so any later checkpoint has it).

        :param state: what it returned, or an empty mapping
        """
        arrays = state.get("teacher_state")
        if arrays is not None:
            self._teacher_state = RecurrentState.from_arrays(arrays, self.device)
        started = int(self.num_timesteps) > 0  # type: ignore[attr-defined]
        self._log_std_initialized = bool(state.get("log_std_initialized", started))

    def _attach_teacher_outputs(
        self, buffer: DistillRolloutBuffer, params: th.Tensor, values: th.Tensor | None
    ) -> None:
        """The rollout's teacher outputs, checked, into the buffer; a Gaussian student's
        log-std taken from them on the first rollout (with ``log_std_from_teacher``)."""
        self._check_teacher_outputs(params, values)
        self._maybe_init_log_std(params)
        buffer.set_teacher_outputs(params, values)

    def _maybe_init_log_std(self, teacher_params: th.Tensor) -> None:
        """With ``log_std_from_teacher``: set a Gaussian student's log-std to the teacher's mean, once.

        Done on the first rollout's teacher outputs, before any update, so that the KL does
        not start at tens of nats from the std gap alone (a std of 1 against a teacher's 0.07).
        """
        if not self.log_std_from_teacher or self._log_std_initialized:
            return
        log_std = getattr(self.policy, "log_std", None)
        if isinstance(self.action_space, spaces.Box) and log_std is not None and log_std.dim() == 1:
            d = log_std.shape[0]
            with th.no_grad():
                log_std.copy_(teacher_params[:, d:].mean(dim=0).to(log_std.device))
        self._log_std_initialized = True

    def _run_teacher(
        self, inputs: RawObs, with_values: bool, masks: np.ndarray | None = None
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """The teacher over a whole flat batch of raw observations, in as few calls as memory
        allows (with their action masks, for a masked teacher)."""
        teacher = self._require_teacher()
        first = next(iter(inputs.values())) if isinstance(inputs, dict) else inputs
        n = int(first.shape[0])
        chunk = max(1, _TEACHER_CHUNK_ELEMENTS // max(1, _n_elements(self.observation_space)))
        params_parts: list[th.Tensor] = []
        value_parts: list[th.Tensor] = []
        for start in range(0, n, chunk):
            sl = slice(start, start + chunk)
            part = {k: v[sl] for k, v in inputs.items()} if isinstance(inputs, dict) else inputs[sl]
            try:
                if masks is None:
                    out = teacher(obs_as_tensor(part, self.device), with_values=with_values)
                else:
                    out = teacher(
                        obs_as_tensor(part, self.device), with_values=with_values, action_masks=masks[sl]
                    )
            except ValueError as exc:  # torch refused the teacher's own distribution
                where = f"at env step {self.num_timesteps}"  # type: ignore[attr-defined]
                raise teacher_distribution_error(exc, where) from exc
            params_parts.append(out.params)
            if out.values is not None:
                value_parts.append(out.values)
        params = params_parts[0] if len(params_parts) == 1 else th.cat(params_parts)
        values = None
        if value_parts:
            values = value_parts[0] if len(value_parts) == 1 else th.cat(value_parts)
        return params.float(), None if values is None else values.float()

    def _check_teacher_outputs(self, params: th.Tensor, values: th.Tensor | None) -> None:
        where = f"at env step {self.num_timesteps}"  # type: ignore[attr-defined]
        hint = "the teacher is damaged or saw inputs far outside its training range"
        check_finite(params, "the teacher's output", where, hint)
        if values is not None:
            check_finite(values, "the teacher's value", where, hint)

    def _student_forward(
        self, obs: TensorObs, with_values: bool = True
    ) -> tuple[Distribution, th.Tensor | None]:
        """The student's distribution and values in one forward pass."""
        return actor_critic_forward(self.policy, obs, with_values=with_values)

    def _minibatch_forward(
        self, batch: Any, with_values: bool
    ) -> tuple[Distribution, th.Tensor | None, th.Tensor | None]:
        """The student's distribution and values on a minibatch, and which of its samples count
        (None: all; a recurrent student's minibatch has padded steps)."""
        distribution, values = self._student_forward(batch.observations, with_values=with_values)
        return distribution, values, None

    def _auxiliary_loss(self, batch: Any, mask: th.Tensor | None) -> tuple[th.Tensor, th.Tensor] | None:
        """A loss added to each minibatch's besides the method's own, and its diagnostic value,
        for the minibatch just passed through :meth:`_minibatch_forward`; None: none (a
        recurrent student's privileged prediction is one)."""
        return None

    def learn(
        self: SelfDistill,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 1,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
        **kwargs: Any,
    ) -> SelfDistill:
        """SB3's ``learn``, after checking that a teacher is attached.

        :param total_timesteps: environment steps to collect (> 0)
        :param callback: SB3 callback(s)
        :param log_interval: log every this many rollouts
        :param tb_log_name: TensorBoard run name (default: the class name)
        :param reset_num_timesteps: start the step counter (and the λ schedule) from zero
        :param progress_bar: show a progress bar (tqdm + rich)
        :param kwargs: what the algorithm's own ``learn`` takes besides (MaskablePPO's ``use_masking``)
        """
        self._require_teacher()
        if int(total_timesteps) <= 0:
            raise ValueError(f"total_timesteps must be positive, got {total_timesteps}")
        return super().learn(  # type: ignore[misc]
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name or type(self).__name__,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
            **kwargs,
        )

    @classmethod
    def load(
        cls,
        path: str | pathlib.Path,
        env: VecEnv | None = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        teacher: Teacher | str | pathlib.Path | None = None,
        **kwargs: Any,
    ) -> Any:
        """SB3's ``load``, plus the teacher to continue distilling from.

        The teacher is not stored in the student's zip; ``model.teacher_info`` says what it
        was. Without ``teacher=``, the model predicts and evaluates but ``learn()`` raises.

        :param path: the saved student
        :param env: environment to continue on
        :param device: device of the student (and of the teacher)
        :param custom_objects: as in SB3
        :param print_system_info: as in SB3
        :param force_reset: as in SB3
        :param teacher: a :class:`~ppdistill.teachers.Teacher`, or a path to load one from with
            the target settings the student was distilled with (``teacher_info``'s
            ``temperature``, ``target_std``, ``squashed_target``, ``squashed_std_scale``)
        :param kwargs: attributes to override, as in SB3
        """
        model = super().load(  # type: ignore[misc]
            path,
            env=env,
            device=device,
            custom_objects=custom_objects,
            print_system_info=print_system_info,
            force_reset=force_reset,
            **kwargs,
        )
        model.teacher = None
        if isinstance(teacher, str | pathlib.Path):
            # as it was read when the student was saved: loading's defaults would change the target
            saved = model.teacher_info or {}
            teacher = load_teacher(teacher, **{k: saved[k] for k in TARGET_KEYWORDS if k in saved})
        if teacher is not None:
            model.set_teacher(teacher)
        return model
