"""Distill, then fine-tune: a KL-distilled student carries on as plain PPO.

Student-distill or teacher-distill trains the student's policy on the teacher's KL alone (PPD
on the KL and the reward); :func:`finetune_model` then hands the same network to SB3's
``PPO``, which goes on from the environment's reward. The handover copies every weight of the
policy (actor, critic, log-std, any observation normalization inside the network) into a PPO
built with the student's policy class, ``policy_kwargs`` and ``use_sde``; PPO gets a fresh
optimizer, its own hyperparameters, and fresh training environments.
:func:`ppdistill.experiment.runner.run` runs both phases as one run (hp keys
``then_finetune``, ``critic_warmup``, ``finetune_hp``).

Critic warm-up (:class:`CriticWarmup`): PPO's first updates see advantages from a critic
that may know nothing of the policy it now serves (with ``value_target="none"``, or
``"teacher"`` when the teacher's γ or reward scale differ), and its policy-gradient steps
would then undo the distillation. During the warm-up the actor's parameters are frozen with
``requires_grad = False``, so only the critic learns; afterwards everything learns.

Critic reset (``finetune_critic_reset``): the critic's own layers and head start again from
SB3's initialization at the switch, the actor kept. A distilled critic can be no critic at all:
it learned to predict unnormalized returns (tens to hundreds) through a small tanh network, and
on CartPole from the corrupted teacher of ``results/finetune-blind2`` every unit of the distilled
student's second critic layer sat at ±1, its values constant over states (std 0.018 against the
returns' 12.1, explained variance 0.00; ``benchmarks/critic_check.py``), and stayed so through
102,400 steps of fine-tuning. A saturated tanh passes almost no gradient, so the critic cannot
learn the policy's values again by itself. Measured in ``results/finetune-probe-critic``, the
reset alone ties the shipped pipeline (a reset critic saturates again within the fine-tuning,
and one that knows the values, under normalized rewards, did not help either): an option, not a
default. The reset draws from its own generator seeded by the fine-tuning's seed, so the run's
other random numbers are those of a run without it.

KL anchor (``finetune_anchor``): the fine-tuning model is then a
:class:`~ppdistill.algorithms.PPD` whose teacher is a frozen copy of the distilled student
itself, with λ fading linearly to 0 over ``finetune_anchor_steps``
(:class:`~ppdistill.core.schedules.Fading`). The anchor holds the policy near what was
distilled while the critic and the advantages settle, and lets go as the reward takes over; at
λ 0 the update is PPO's (and the anchor is not run). The distilled student rather than the
teacher, because it is what fine-tuning starts from and must not forget; PPD with a decaying
λ (``lambda_schedule: linear``) is the form that anchors to the teacher.
``requires_grad`` rather than an optimizer parameter group with a learning rate of 0,
because SB3 sets one learning rate on every group at each update (``update_learning_rate``),
and because Adam would still accumulate the frozen parameters' moments from policy-gradient
losses and release them, stale, at the first real step; a parameter without a gradient is
skipped by Adam altogether, so the actor is exactly unchanged and starts with a clean state.
A features extractor shared by actor and critic (SB3's default for CNN policies) counts as
the actor's: the distilled policy depends on its features, and training it for the critic
would move the policy the warm-up is meant to hold still. The critic then learns through its
own layers only (for the CNN presets, the value head on top of the shared trunk). With
``share_features_extractor=False`` the critic's own extractor learns too.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.vec_env import VecEnv

from ppdistill.algorithms.ppd import PPD
from ppdistill.core.errors import PPDistillError
from ppdistill.core.schedules import Fading, Phase, Schedule
from ppdistill.experiment.config import class_kwargs
from ppdistill.teachers.actor_critic import ActorCriticTeacher

# The student's network decides these: the fine-tuning PPO takes the student's values.
POLICY_KEYS = ("policy_kwargs", "use_sde")


def critic_parameters(policy: ActorCriticPolicy) -> list[th.nn.Parameter]:
    """The parameters only the critic uses: its layers, its head, and its own features
    extractor when it has one (a shared extractor is the actor's; see the module docstring).

    :param policy: an SB3 actor-critic policy
    """
    modules = critic_modules(policy, purpose="critic warm-up", off="critic_warmup=0")
    return [p for module, _ in modules for p in module.parameters()]


def actor_parameters(policy: ActorCriticPolicy) -> list[th.nn.Parameter]:
    """Every parameter of the policy that is not :func:`critic_parameters` (log-std included).

    :param policy: an SB3 actor-critic policy
    """
    critic = {id(p) for p in critic_parameters(policy)}
    return [p for p in policy.parameters() if id(p) not in critic]


def critic_modules(
    policy: ActorCriticPolicy, purpose: str = "a critic reset", off: str = "finetune_critic_reset=false"
) -> list[tuple[th.nn.Module, float]]:
    """The modules only the critic uses, each with the gain SB3's orthogonal initialization
    gives it (:meth:`ActorCriticPolicy._build`): its layers, its head, its own extractor.

    :param policy: an SB3 actor-critic policy
    :param purpose: what needs them, for the error a policy without SB3's MlpExtractor gets
    :param off: the setting that does without, named in that error
    """
    value_layers = getattr(policy.mlp_extractor, "value_net", None)
    if not isinstance(value_layers, th.nn.Module):
        raise PPDistillError(
            f"{purpose} needs SB3's MlpExtractor (with value_net); "
            f"{type(policy.mlp_extractor).__name__} has none: use {off}"
        )
    modules: list[tuple[th.nn.Module, float]] = [
        (value_layers, float(np.sqrt(2))),
        (policy.value_net, 1.0),
    ]
    if not policy.share_features_extractor:
        modules.append((policy.vf_features_extractor, float(np.sqrt(2))))
    return modules


def reset_critic(policy: ActorCriticPolicy, seed: int) -> None:
    """Initialize the critic's own layers and head again, as SB3 initializes a new policy;
    the actor (and a features extractor it shares with the critic) is left exactly as it is.

    :param policy: an SB3 actor-critic policy
    :param seed: seed of the new weights (torch's global generators are left as they were)
    """
    modules = critic_modules(policy)
    # manual_seed seeds every CUDA device too: fork them all, not only the policy's
    with th.random.fork_rng(devices=range(th.cuda.device_count())):
        th.manual_seed(seed)
        for module, gain in modules:
            if policy.ortho_init:
                module.apply(partial(policy.init_weights, gain=gain))
            else:  # torch's own initialization, as SB3 leaves it without ortho_init
                for layer in module.modules():
                    reset = getattr(layer, "reset_parameters", None)
                    if callable(reset):
                        reset()


def set_actor_frozen(policy: ActorCriticPolicy, frozen: bool) -> None:
    """Freeze (or release) the actor's parameters; the critic's always learn.

    :param policy: an SB3 actor-critic policy
    :param frozen: True: the actor gets no gradient, so the optimizer leaves it exactly as it is
    """
    for p in actor_parameters(policy):
        p.requires_grad_(not frozen)


class CriticWarmup(BaseCallback):
    """Only the critic learns in the updates after the rollouts that begin in the first
    ``steps`` env steps from ``start`` (so the warm-up is rounded up to whole rollouts).

    Decided at every rollout start from the step counter alone, so a resumed run freezes
    and releases at the same updates as an uninterrupted one.

    :param start: env step where fine-tuning began
    :param steps: env steps of critic-only learning
    """

    def __init__(self, start: int, steps: int) -> None:
        super().__init__()
        self.start, self.steps = int(start), int(steps)

    def _policy(self) -> ActorCriticPolicy:
        policy = self.model.policy
        if not isinstance(policy, ActorCriticPolicy):
            raise PPDistillError(f"critic warm-up needs an actor-critic policy, not {type(policy).__name__}")
        return policy

    def _on_rollout_start(self) -> None:
        frozen = self.model.num_timesteps - self.start < self.steps
        set_actor_frozen(self._policy(), frozen)

    def _on_training_end(self) -> None:
        set_actor_frozen(self._policy(), False)  # leave a model that trains normally

    def _on_step(self) -> bool:
        return True


def warmup_end(start: int, steps: int, rollout: int) -> int:
    """Env step of the first rollout whose update trains the actor again.

    :param start: env step where fine-tuning began
    :param steps: critic warm-up steps
    :param rollout: env steps per rollout (``n_steps × n_envs``)
    """
    return start + -(-steps // rollout) * rollout


def anchor_end(start: int, steps: int, total: int) -> int:
    """Env step where the anchor's λ reaches 0: ``start + steps``, or the run's end.

    :param start: env step where fine-tuning begins
    :param steps: env steps over which λ fades to 0 (0: the whole fine-tuning phase)
    :param total: env steps of the whole run
    """
    return total if steps <= 0 else min(total, start + steps)


def anchor_schedule(value: float, start: int, steps: int, total: int, rollout: int) -> Fading:
    """The anchor's λ over the whole run's budget: ``value`` for the first fine-tuning update,
    then fading linearly to 0 at env step ``start + steps`` (or at ``total``).

    λ is read after each rollout, at the step count the update sees: the first update, at
    ``start + rollout``, gets ``value``; the fading starts from there.

    :param value: λ at the start of fine-tuning
    :param start: env step where fine-tuning begins
    :param steps: env steps over which λ fades to 0 (0: the whole fine-tuning phase)
    :param total: env steps of the whole run (distillation and fine-tuning)
    :param rollout: env steps per fine-tuning rollout (``n_steps × n_envs``)
    """
    end = anchor_end(start, steps, total)
    begin = min(start + rollout, end)
    return Fading(float(value), begin / total, end / total)


def distilled_policy(policy: BasePolicy, weights: Mapping[str, th.Tensor]) -> BasePolicy:
    """A network of ``policy``'s architecture holding ``weights``, in eval mode: the distilled
    student again, beside the policy that fine-tuning moved on.

    :param policy: a policy of the distilled student's architecture (the distilled model's, or
        the fine-tuning model's made from it)
    :param weights: the distilled student's weights (its ``state_dict`` at the switch)
    """
    # built anew rather than deep-copied: a policy holds its last distribution's (non-leaf) tensors
    copy = type(policy)(**policy._get_constructor_parameters()).to(policy.device)
    copy.load_state_dict(dict(weights))
    copy.set_training_mode(False)
    return copy


def anchor_teacher(policy: ActorCriticPolicy, weights: Mapping[str, th.Tensor]) -> ActorCriticTeacher:
    """A frozen network of ``policy``'s architecture holding ``weights``: the teacher of the
    fine-tuning's KL anchor.

    :param policy: the distilled student's policy (its architecture; it keeps learning)
    :param weights: the distilled student's weights (its ``state_dict`` at the switch)
    """
    frozen = distilled_policy(policy, weights)
    assert isinstance(frozen, ActorCriticPolicy)
    info = {"kind": "actor-critic", "role": "anchor: the distilled student"}
    teacher = ActorCriticTeacher(frozen, info=info)
    teacher.freeze()
    return teacher


def finetune_model(
    distilled: BaseAlgorithm,
    hp: dict[str, Any],
    env: VecEnv,
    seed: int,
    verbose: int = 0,
    tensorboard_log: str | None = None,
    anchor: tuple[Mapping[str, th.Tensor], Schedule] | None = None,
    share: float = 1.0,
    critic_reset: bool = False,
) -> PPO:
    """A PPO that continues ``distilled``: same policy class, ``policy_kwargs`` and weights.

    The network (its class, ``policy_kwargs``, ``use_sde``) is the student's; ``hp`` gives
    every other PPO hyperparameter (runner keys such as ``n_envs`` are ignored here; a
    ``policy_kwargs`` or ``use_sde`` in ``hp`` is overridden by the student's). The step
    counter continues from the student's, and SB3's ``progress_remaining`` with it when the
    model is continued with ``learn(..., reset_num_timesteps=False)``, as
    :func:`ppdistill.experiment.runner.run` does; so a learning rate or clip range schedule in
    ``hp`` (rl_zoo3's ``lin_X``) is run over the fine-tuning's ``share`` of the run
    (:class:`~ppdistill.core.schedules.Phase`): it starts at X at the switch, as the zoo's PPO
    starts its own training.

    :param distilled: the trained student (StudentDistill, TeacherDistill, or any SB3 actor-critic)
    :param hp: PPO's hyperparameters
    :param env: the fine-tuning environments
    :param seed: seed of the PPO (its random states and its environments)
    :param verbose: SB3 verbosity
    :param tensorboard_log: TensorBoard folder
    :param anchor: the distilled student's weights (``state_dict``) and λ's schedule: a
        :class:`~ppdistill.algorithms.PPD` held to those weights (see the module docstring)
        instead of a plain PPO
    :param share: the fine-tuning's share of the run's env steps, in (0, 1]
    :param critic_reset: initialize the critic's own layers and head again (seeded by
        ``seed``) instead of keeping the distilled ones (see the module docstring)
    """
    if not isinstance(distilled.policy, ActorCriticPolicy):
        raise PPDistillError(
            f"only actor-critic students can be fine-tuned with PPO, not {type(distilled).__name__}"
        )
    kwargs = class_kwargs(hp, exclude=POLICY_KEYS)
    for key in ("learning_rate", "clip_range", "clip_range_vf"):
        if callable(kwargs.get(key)):
            kwargs[key] = Phase(kwargs[key], share)
    use_sde = bool(getattr(distilled, "use_sde", False))
    if not use_sde:
        kwargs.pop("sde_sample_freq", None)
    elif "sde_sample_freq" not in kwargs:
        kwargs["sde_sample_freq"] = distilled.sde_sample_freq
    if anchor is not None:
        # the student's own normalization and log-std are in its weights: nothing to inherit
        kwargs.update(
            teacher=anchor_teacher(distilled.policy, anchor[0]),
            distill_lambda=anchor[1],
            student_obs_norm="none",
            log_std_from_teacher=False,
        )
    model = (PPD if anchor is not None else PPO)(
        type(distilled.policy),
        env,
        policy_kwargs=dict(distilled.policy_kwargs),
        use_sde=use_sde,
        seed=seed,
        verbose=verbose,
        tensorboard_log=tensorboard_log,
        device=distilled.device,
        **kwargs,
    )
    model.policy.load_state_dict(distilled.policy.state_dict(), strict=True)
    if critic_reset:
        assert isinstance(model.policy, ActorCriticPolicy)
        reset_critic(model.policy, seed)
    model.num_timesteps = distilled.num_timesteps
    # what it was distilled from, saved with it: readers know it is a student (a vecnormalize.pkl
    # found beside its zip is not its own)
    if getattr(distilled, "teacher_info", None) is not None:
        model.teacher_info = distilled.teacher_info  # type: ignore[attr-defined]
    return model
