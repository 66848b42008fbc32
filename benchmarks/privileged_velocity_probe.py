"""Why masked LunarLander is hard for a recurrent student: how fast an LSTM learns the velocities.

Issue 18's positions-only LunarLander student must infer the lander's velocities from its
positions, which move by a hundredth (x) to a twentieth (the angle) of the observed velocity per
step. This probe takes that out of RL: it plays the zoo teacher (ε-greedy, ε 0.2) for 60
training and 15 held-out episodes, then fits, by supervised regression on 64-step windows, the
three velocities (vx, vy, angular) from

- ``mlp``: the positions of the current step only (no memory: the floor);
- ``lstm``: the positions, through an LSTM (64 units), as the recurrent student sees them;
- ``diff``: the positions and 100 × their change since the last step, through the same LSTM
  (what a finite difference would hand it: the ceiling).

It prints the held-out R² of each velocity after 250, 1,000, 2,000 and 4,000 Adam steps (lr 1e-3,
64 windows a step), and the wall time. One seed; a probe for where to look, not a benchmark.

Usage::

    python benchmarks/privileged_velocity_probe.py ../shared/teachers/rl-zoo/ppo/LunarLander-v2_1
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ppdistill import load_teacher

POSITIONS = [0, 1, 4, 6, 7]  # x, y, angle, the two leg contacts (envs/masked.py's view)
VELOCITIES = [2, 3, 5]  # vx, vy, angular velocity
WINDOW = 64
WARMUP = 8  # steps of each window not scored: the LSTM has seen too little there
CHECKPOINTS = (250, 1000, 2000, 4000)


def _episodes(teacher: object, n: int, first_seed: int, rng: np.random.Generator) -> list[np.ndarray]:
    env = gym.make("LunarLander-v3")
    out = []
    for i in range(n):
        obs, _ = env.reset(seed=first_seed + i)
        states = [obs]
        done = False
        while not done:
            if rng.random() < 0.2:
                action = env.action_space.sample()
            else:
                action = int(teacher.predict(obs[None], deterministic=True)[0][0])  # type: ignore[attr-defined]
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            states.append(obs)
        out.append(np.array(states, dtype=np.float32))
    return out


def _windows(episodes: list[np.ndarray]) -> torch.Tensor:
    chunks = [e[s : s + WINDOW] for e in episodes for s in range(0, len(e) - WINDOW, WINDOW // 2)]
    return torch.tensor(np.array(chunks))


def _inputs(x: torch.Tensor, kind: str) -> torch.Tensor:
    p = x[..., POSITIONS]
    if kind != "diff":
        return p
    d = torch.zeros_like(p)
    d[:, 1:] = (p[:, 1:] - p[:, :-1]) * 100.0
    return torch.cat([p, d], -1)


class _Probe(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        n_in = 10 if kind == "diff" else 5
        self.rnn = None if kind == "mlp" else nn.LSTM(n_in, 64, batch_first=True)
        width = n_in if self.rnn is None else 64
        self.head = nn.Sequential(nn.Linear(width, 64), nn.Tanh(), nn.Linear(64, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x if self.rnn is None else self.rnn(x)[0])


def _r2(net: _Probe, x: torch.Tensor, kind: str) -> np.ndarray:
    with torch.no_grad():
        y = x[..., VELOCITIES][:, WARMUP:]
        p = net(_inputs(x, kind))[:, WARMUP:]
        return (1 - ((p - y) ** 2).sum((0, 1)) / ((y - y.mean((0, 1))) ** 2).sum((0, 1))).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("teacher", help="the zoo's LunarLander PPO run folder (or any LunarLander teacher)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    teacher = load_teacher(args.teacher)
    rng = np.random.default_rng(0)
    start = time.time()
    train, test = _windows(_episodes(teacher, 60, 0, rng)), _windows(_episodes(teacher, 15, 1000, rng))
    took = time.time() - start
    print(f"{len(train)} training and {len(test)} held-out windows of {WINDOW} steps ({took:.0f} s)")
    print("| input | " + " | ".join(f"R² vx, vy, ω after {n:,} steps" for n in CHECKPOINTS) + " | time |")
    print("|---" * (len(CHECKPOINTS) + 2) + "|")
    for kind in ("mlp", "lstm", "diff"):
        torch.manual_seed(0)
        net = _Probe(kind)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        start = time.time()
        cells = []
        for step in range(1, CHECKPOINTS[-1] + 1):
            x = train[torch.randint(len(train), (64,))]
            loss = ((net(_inputs(x, kind))[:, WARMUP:] - x[..., VELOCITIES][:, WARMUP:]) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step in CHECKPOINTS:
                cells.append(", ".join(f"{v:.2f}" for v in _r2(net, test, kind)))
        print(f"| {kind} | " + " | ".join(cells) + f" | {time.time() - start:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
