"""Evaluate students, teachers and any SB3 model the same way."""

from __future__ import annotations

import copy
import functools
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.preprocessing import maybe_transpose
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize, unwrap_vec_normalize

from ppdistill.core.distributions import params_from_distribution
from ppdistill.core.errors import NonFiniteError
from ppdistill.core.losses import action_agreement
from ppdistill.envs.episode_seeds import EpisodeSeeds
from ppdistill.envs.make import env_spaces, make_vec_env
from ppdistill.envs.recipe import EnvRecipe, agent_recipe
from ppdistill.envs.views import find_student_view
from ppdistill.networks.forward import actor_critic_forward
from ppdistill.teachers.base import Teacher


class Agent(Protocol):
    """Anything with SB3's ``predict`` (SB3 models, ppdistill teachers)."""

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[np.ndarray, Any]: ...


def interquartile_mean(values: np.ndarray | list[float]) -> float:
    """Mean of the middle 50% (the 25% trimmed mean that rliable reports as IQM).

    :param values: scores
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size == 0:
        return float("nan")
    k = int(0.25 * x.size)
    return float(x[k : x.size - k].mean())


@dataclass
class EvalResult:
    """Episode returns and lengths, with summary statistics.

    :param returns: undiscounted return of each episode
    :param lengths: length of each episode
    :param observations: every observation the agent acted on (when asked for)
    :param teacher_observations: the environment's whole observation of the same steps, where
        the agent saw a part of it (a :class:`~ppdistill.envs.views.StudentView`); else the same
    :param paired: see the attribute
    """

    returns: np.ndarray
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    observations: Any = None
    teacher_observations: Any = None
    paired: bool = False
    """Whether ``returns[i]`` is the episode that every agent evaluated with the same seed and
    episode count plays i-th (same env copy, same seeded reset)."""

    @property
    def mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def std(self) -> float:
        """The returns' sample standard deviation (ddof 1; 0 for a single episode)."""
        return float(np.std(self.returns, ddof=1)) if self.returns.size > 1 else 0.0

    @property
    def iqm(self) -> float:
        return interquartile_mean(self.returns)

    @property
    def n_episodes(self) -> int:
        return int(self.returns.size)

    def as_dict(self) -> dict[str, Any]:
        """Plain numbers for JSON."""
        return {
            "mean": self.mean,
            "std": self.std,
            "iqm": self.iqm,
            "n_episodes": self.n_episodes,
            "returns": [float(r) for r in self.returns],
            "lengths": [int(n) for n in self.lengths],
        }

    def __str__(self) -> str:
        return f"{self.mean:.2f} ± {self.std:.2f} (IQM {self.iqm:.2f}, {self.n_episodes} episodes)"


def evaluate(
    agent: Agent,
    env: str | EnvRecipe | gym.Env | VecEnv,
    n_episodes: int = 20,
    deterministic: bool = True,
    seed: int | None = None,
    record_observations: bool = False,
    n_envs: int = 4,
) -> EvalResult:
    """Play ``n_episodes`` full episodes and report their returns.

    :param agent: a student, a teacher, or any SB3 model
    :param env: an environment id (built with :func:`ppdistill.envs.make_vec_env`, evaluation
        variant), an :class:`~ppdistill.envs.recipe.EnvRecipe` (an id with wrappers), an env,
        or a VecEnv
    :param n_episodes: number of episodes (> 0)
    :param deterministic: act with the mode of the policy (the paper's rule for Atari and
        MuJoCo; it used stochastic actions for Procgen)
    :param seed: seed of the environment's resets, for repeatable numbers, and with sampled
        actions of the sampling (torch's generator is given back as it was)
    :param n_envs: environments played side by side when ``env`` is an id (batched
        forward passes; SB3 splits the episodes evenly among them)
    :param record_observations: keep the observations acted on (e.g. for :func:`action_agreement_on`)
    :return: the returns and lengths, with ``.mean``, ``.std``, ``.iqm``
    """
    if n_episodes < 1:
        raise ValueError(f"n_episodes must be at least 1, got {n_episodes}")
    if isinstance(env, str):  # an agent that knows the wrappers it acts in gets them
        env = _agents_environment(agent, env)
    owned = isinstance(env, str | EnvRecipe)
    copies = max(1, min(n_envs, n_episodes))
    # with a seed, every episode its own (the same ones for every agent: paired returns)
    per_episode = functools.partial(EpisodeSeeds, base=seed) if seed is not None else None
    if isinstance(env, EnvRecipe):  # an environment with its wrappers (a zoo run's, a student's view)
        vec_env: VecEnv = env.make(n_envs=copies, training=False, wrapper_class=per_episode)
    elif isinstance(env, str):
        # the evaluation variant: Atari episodes are whole games, Procgen levels are unseen ones
        vec_env = make_vec_env(env, n_envs=copies, training=False, wrapper_class=per_episode)
    elif isinstance(env, VecEnv):
        vec_env = env
    else:
        single = env
        vec_env = DummyVecEnv([lambda: single if isinstance(single, Monitor) else Monitor(single)])
    paired = per_episode is not None and owned and _wrapped_by(vec_env, EpisodeSeeds)
    vec_env = _with_agents_normalization(agent, vec_env, owned)
    if seed is not None:
        vec_env.seed(seed)
    seen: list[Any] = []

    view = find_student_view(vec_env)
    seen_by_teacher: list[Any] = []

    finished_on: list[int] = []  # the env copy each episode ended on, in SB3's order

    def record(local_vars: dict[str, Any], _globals: dict[str, Any]) -> None:
        obs, i = local_vars["observations"], local_vars["i"]
        if local_vars["done"] and (not local_vars["is_monitor_wrapped"] or "episode" in local_vars["info"]):
            finished_on.append(i)  # SB3 counts this episode right after this call
        if not record_observations:
            return
        seen.append(_item(obs, i))
        if view is not None:  # the environment's whole observation of that step, the teacher's
            seen_by_teacher.append(_item(view.acted_on(), i))

    # sampled actions draw from torch's generator: with a seed, seeded here and given back as it
    # was, so that every agent samples alike whatever ran before it, and a training run that
    # evaluates goes on undisturbed
    sampling_seed = None if deterministic else seed
    try:
        with th.random.fork_rng(enabled=sampling_seed is not None):
            if sampling_seed is not None:
                th.manual_seed(sampling_seed)
            returns, lengths = _evaluate_policy_checked(
                agent,
                vec_env,
                n_eval_episodes=n_episodes,
                deterministic=deterministic,
                return_episode_rewards=True,
                warn=False,
                callback=record,
            )
    finally:
        if owned:
            vec_env.close()
    # SB3 lists episodes as they end, which depends on the agent; listed by env copy, then in
    # the order they were played on it, the i-th episode starts from the same seeded reset for
    # every agent evaluated with the same seed and count: returns can be compared pairwise.
    order = np.argsort(np.asarray(finished_on, dtype=np.int64), kind="stable")
    if len(order) != len(returns):  # not seen by the callback (cannot happen with SB3's loop)
        order = np.arange(len(returns))
    result = EvalResult(
        np.asarray(returns, np.float64)[order], np.asarray(lengths, np.int64)[order], paired=paired
    )
    if record_observations and seen:
        result.observations = _stacked(seen)
        result.teacher_observations = _stacked(seen_by_teacher) if seen_by_teacher else result.observations
    return result


def _wrapped_by(vec_env: VecEnv, wrapper: type) -> bool:
    """Whether every copy has ``wrapper`` (a native VecEnv, Procgen's, has no copies to wrap)."""
    try:
        return all(vec_env.env_is_wrapped(wrapper))
    except (AttributeError, NotImplementedError):
        return False


def _item(batch: Any, i: int) -> Any:
    return {k: v[i] for k, v in batch.items()} if isinstance(batch, dict) else batch[i]


def _stacked(items: list[Any]) -> Any:
    if isinstance(items[0], dict):
        return {k: np.stack([o[k] for o in items]) for k in items[0]}
    return np.stack(items)


def _agents_environment(agent: Agent, env_id: str) -> str | EnvRecipe:
    """``env_id`` with the wrappers, frame stack and view the agent was trained with, when it
    says (a teacher read from an rl-zoo run, a student that recorded its ``env_recipe``)."""
    recipe = agent_recipe(agent)
    if recipe is None or recipe.plain:
        return env_id
    return replace(recipe, env_id=env_id)


def _with_agents_normalization(agent: Agent, vec_env: VecEnv, owned: bool) -> VecEnv:
    """An SB3 model trained inside VecNormalize acts on normalized observations: evaluate it
    through a frozen copy of its statistics (returns stay the environment's, from the Monitor).
    A VecEnv the caller built is used as given, with a warning when it does not normalize."""
    get = getattr(agent, "get_vec_normalize_env", None)
    stats = get() if callable(get) else None
    if stats is None or not stats.norm_obs or unwrap_vec_normalize(vec_env) is not None:
        return vec_env
    if not owned:
        warnings.warn(
            "the model was trained inside VecNormalize, but this VecEnv does not normalize "
            "observations: pass the env id to evaluate with the model's own statistics",
            stacklevel=3,
        )
        return vec_env
    frozen = VecNormalize(
        vec_env,
        training=False,
        norm_obs=True,
        norm_reward=False,
        clip_obs=stats.clip_obs,
        epsilon=stats.epsilon,
    )
    frozen.obs_rms = copy.deepcopy(stats.obs_rms)
    return frozen


def _evaluate_policy_checked(agent: Agent, vec_env: VecEnv, **kwargs: Any) -> Any:
    try:
        return evaluate_policy(agent, vec_env, **kwargs)
    except ValueError as exc:
        if "invalid values" not in str(exc):  # torch's words for NaN distribution parameters
            raise
        raise NonFiniteError(
            "the policy's output became NaN or infinite during evaluation "
            "(a non-finite observation from the environment, or non-finite weights)"
        ) from exc


def action_agreement_on(
    student: Any, teacher: Teacher, observations: Any, teacher_observations: Any = None
) -> float:
    """Teacher–student action agreement on given (raw) observations.

    Same definition as the ``distill/agreement`` training diagnostic
    (:func:`ppdistill.core.losses.action_agreement`).

    :param student: an SB3 actor-critic model (PPD, StudentDistill, TeacherDistill, PPO, A2C)
    :param teacher: the teacher
    :param observations: a batch of raw observations
    :param teacher_observations: the teacher's observations of the same steps, where they are not
        the student's (the student saw a part of them)
    :return: a number in [0, 1]
    """
    with th.no_grad():
        obs_t, _ = student.policy.obs_to_tensor(observations)
        dist, _ = actor_critic_forward(student.policy, obs_t, with_values=False)
        student_params = params_from_distribution(dist)
        if teacher_observations is not None:  # shaped as the teacher's space, not the student's
            raw = teacher_observations
            if isinstance(raw, np.ndarray):
                raw = maybe_transpose(raw, teacher.observation_space)
            obs_t = obs_as_tensor(raw, teacher.device)
        # obs_to_tensor has moved image channels first, as both policies take them
        teacher_obs = (
            {k: v.to(teacher.device) for k, v in obs_t.items()}
            if isinstance(obs_t, dict)
            else obs_t.to(teacher.device)
        )
        teacher_params = teacher(teacher_obs).params.to(student_params.device)
    return action_agreement(teacher.action_space, teacher_params, student_params)


class RandomAgent:
    """Uniformly random actions: the floor of normalized scores.

    :param action_space: the environment's action space
    :param seed: seed of the action sampler
    """

    def __init__(self, action_space: Any, seed: int = 0) -> None:
        self.action_space = action_space
        self.action_space.seed(seed)

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False
    ) -> tuple[np.ndarray, None]:
        n = len(next(iter(observation.values()))) if isinstance(observation, dict) else len(observation)
        return np.stack([self.action_space.sample() for _ in range(n)]), None


def random_policy_result(env: str | EnvRecipe, n_episodes: int = 20, seed: int | None = None) -> EvalResult:
    """The episodes of uniformly random actions on ``env``.

    :param env: environment id, or a recipe (an id with wrappers)
    :param n_episodes: episodes
    :param seed: seed of the resets and the actions
    """
    _, action_space = env.spaces() if isinstance(env, EnvRecipe) else env_spaces(env)
    return evaluate(RandomAgent(action_space, seed or 0), env, n_episodes, False, seed=seed)


def random_policy_score(env: str | EnvRecipe, n_episodes: int = 20, seed: int | None = None) -> float:
    """Mean return of uniformly random actions on ``env`` (:func:`random_policy_result`'s mean).

    :param env: environment id, or a recipe (an id with wrappers)
    :param n_episodes: episodes
    :param seed: seed of the resets and the actions
    """
    return random_policy_result(env, n_episodes, seed).mean
