"""Whether a student's critic knows its policy's values: saturation and explained variance.

    python benchmarks/critic_check.py runs/cp/distilled.zip CartPole-v1 --gamma 0.98

Plays the student on 5 seeded episodes (seeds 1000-1004, torch seeded alike, so sampled actions
repeat; sampled, as PPO collects its data, or ``--deterministic``) in the plain ``gym.make(ENV)``
and prints, over the visited states: the discounted Monte Carlo return at ``--gamma`` (what the
critic's target estimates), the critic's value, their std, the explained variance
``1 − Var(R − V) / Var(R)``, their correlation (which does not depend on the value's scale, so it
also reads a critic trained on normalized rewards), and for each tanh layer of the critic the
fraction of units at ``|h| > 0.99`` after the tanh: a saturated unit passes almost no gradient,
so a critic whose units sit there cannot learn other values by itself. In an episode cut by the
time limit the states of its last ``3 / (1 − γ)`` steps are left out (their return depends on
what would have followed; the count is printed). Students that see another view of the env than
``gym.make`` gives (an env recipe saved with them) are refused.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.save_util import load_from_zip_file
from stable_baselines3.common.utils import explained_variance

from ppdistill.teachers.loading import load_agent


def discounted_returns(rewards: Sequence[float], gamma: float) -> list[float]:
    """Each step's discounted return to the episode's end.

    :param rewards: one episode's rewards
    :param gamma: the discount
    """
    total, backwards = 0.0, []
    for reward in reversed(rewards):
        total = reward + gamma * total
        backwards.append(total)
    return list(reversed(backwards))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("student", help="a student's zip (distilled.zip, student.zip)")
    parser.add_argument("env_id")
    parser.add_argument("--gamma", type=float, required=True, help="the discount the critic learned with")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--deterministic", action="store_true")
    args = parser.parse_args(argv)
    data, _, _ = load_from_zip_file(args.student, load_data=True, device="cpu")
    if data and data.get("env_recipe"):
        raise SystemExit(f"error: {args.student} sees another view of {args.env_id} than gym.make's")
    agent = load_agent(args.student, args.env_id, role="student")
    policy = getattr(agent, "policy", None)
    if not isinstance(policy, ActorCriticPolicy):
        raise SystemExit(f"error: {args.student} has no actor-critic policy to read a critic from")
    env = gym.make(args.env_id)
    horizon = int(np.ceil(3 / (1 - args.gamma))) if args.gamma < 1 else None
    states: list[np.ndarray] = []
    returns: list[float] = []
    lengths, left_out = [], 0
    for seed in range(1000, 1000 + args.episodes):
        th.manual_seed(seed)
        obs, _ = env.reset(seed=seed)
        visited, rewards = [], []
        while True:
            visited.append(np.asarray(obs, dtype=np.float32))
            action, _ = agent.predict(obs, deterministic=args.deterministic)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            if terminated or truncated:
                break
        kept = len(visited)
        if truncated and not terminated:
            kept = 0 if horizon is None else max(0, kept - horizon)
        left_out += len(visited) - kept
        states.extend(visited[:kept])
        returns.extend(discounted_returns(rewards, args.gamma)[:kept])
        lengths.append(len(rewards))
    print(f"{args.student} on {args.env_id}: {args.episodes} episodes, lengths {lengths}")
    if not states:
        print("  every state was left out (every episode was cut by the time limit)")
        return
    x = th.as_tensor(np.stack(states))
    saturation = []
    with th.no_grad():
        values = policy.predict_values(x).squeeze(-1).numpy()
        hidden = policy.extract_features(x, policy.vf_features_extractor)
        for layer in policy.mlp_extractor.value_net:
            hidden = layer(hidden)
            if isinstance(layer, th.nn.Tanh):
                saturation.append(float((hidden.abs() > 0.99).float().mean()))
    r = np.asarray(returns)
    explained = explained_variance(values, r)  # SB3's, as PPO logs it
    corr = float(np.corrcoef(r, values)[0, 1]) if values.std() > 0 and r.std() > 0 else float("nan")
    print(f"  states: {len(states)} (left out near a time-limit cut: {left_out})")
    print(f"  return (gamma {args.gamma}): mean {r.mean():.2f}, std {r.std():.3f}")
    print(f"  critic's value:             mean {values.mean():.2f}, std {values.std():.3f}")
    print(f"  explained variance {explained:.3f}, correlation {corr:.3f}")
    print(
        "  saturated tanh units (|h| > 0.99), by critic layer: "
        + (", ".join(f"{s:.2f}" for s in saturation) or "no tanh layer")
    )


if __name__ == "__main__":
    main()
