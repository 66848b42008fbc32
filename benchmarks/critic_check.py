"""Whether a student's critic knows its policy's values: saturation and explained variance.

    python benchmarks/critic_check.py runs/cp/distilled.zip CartPole-v1 --gamma 0.98

Plays the student on 5 seeded episodes (seeds 1000-1004; sampled actions, as PPO collects its
data, or ``--deterministic``) and prints, over the visited states: the discounted Monte Carlo
return at ``--gamma`` (what the critic's target estimates; an episode cut by the time limit
counts its rewards only), the critic's value, their std, the explained variance
``1 − Var(R − V) / Var(R)``, their correlation (which does not depend on the value's scale, so it
also reads a critic trained on normalized rewards), and for each tanh layer of the critic the
fraction of units at ``|h| > 0.99``: a saturated unit passes almost no gradient, so a critic
whose units sit there cannot learn other values by itself.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.policies import ActorCriticPolicy

from ppdistill.teachers.loading import load_agent


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("student", help="a student's zip (distilled.zip, student.zip)")
    parser.add_argument("env_id")
    parser.add_argument("--gamma", type=float, required=True, help="the discount the critic learned with")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--deterministic", action="store_true")
    args = parser.parse_args(argv)
    agent = load_agent(args.student, args.env_id, role="student")
    policy = getattr(agent, "policy", None)
    if not isinstance(policy, ActorCriticPolicy):
        raise SystemExit(f"error: {args.student} has no actor-critic policy to read a critic from")
    env = gym.make(args.env_id)
    states: list[np.ndarray] = []
    returns: list[float] = []
    lengths = []
    for seed in range(1000, 1000 + args.episodes):
        obs, _ = env.reset(seed=seed)
        rewards = []
        while True:
            states.append(np.asarray(obs, dtype=np.float32))
            action, _ = agent.predict(obs, deterministic=args.deterministic)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(float(reward))
            if terminated or truncated:
                break
        total, backwards = 0.0, []
        for reward in reversed(rewards):
            total = reward + args.gamma * total
            backwards.append(total)
        returns.extend(reversed(backwards))
        lengths.append(len(rewards))
    x = th.as_tensor(np.stack(states))
    saturation = []
    with th.no_grad():
        values = policy.predict_values(x).squeeze(-1).numpy()
        features = policy.extract_features(x, policy.vf_features_extractor)
        hidden = features
        for layer in policy.mlp_extractor.value_net:
            hidden = layer(hidden)
            if isinstance(layer, th.nn.Tanh):
                saturation.append(float((hidden.abs() > 0.99).float().mean()))
    r = np.asarray(returns)
    explained = 1.0 - np.var(r - values) / np.var(r) if np.var(r) > 0 else float("nan")
    corr = float(np.corrcoef(r, values)[0, 1]) if values.std() > 0 and r.std() > 0 else float("nan")
    print(f"{args.student} on {args.env_id}: {args.episodes} episodes, lengths {lengths}")
    print(f"  return (gamma {args.gamma}): mean {r.mean():.2f}, std {r.std():.3f}")
    print(f"  critic's value:             mean {values.mean():.2f}, std {values.std():.3f}")
    print(f"  explained variance {explained:.3f}, correlation {corr:.3f}")
    print(
        "  saturated tanh units (|h| > 0.99), by critic layer: "
        + (", ".join(f"{s:.2f}" for s in saturation) or "no tanh layer")
    )


if __name__ == "__main__":
    main()
