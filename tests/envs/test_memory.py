"""The memory task: a cue shown to the student once, to the teacher always."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from ppdistill.envs.make import make_vec_env
from ppdistill.envs.memory import MEMORY_ENV_ID, CueMemory


def play(env: gym.Env, policy, seed: int) -> tuple[float, list[dict]]:
    obs, _ = env.reset(seed=seed)
    seen, total, done = [obs], 0.0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(policy(obs, len(seen) - 1))
        seen.append(obs)
        total += reward
        done = terminated or truncated
    return total, seen


def test_it_is_made_by_id_with_its_two_groups():
    env = gym.make(MEMORY_ENV_ID)
    assert set(env.observation_space.spaces) == {"policy", "privileged"}
    vec = make_vec_env(MEMORY_ENV_ID, n_envs=2, seed=0)
    obs = vec.reset()
    assert obs["policy"].shape == (2, 3) and obs["privileged"].shape == (2, 2)
    vec.close()


@pytest.mark.parametrize("seed", range(6))
def test_the_cue_is_shown_to_the_student_once_and_to_the_teacher_always(seed):
    env = CueMemory(n_cues=3, length=5)
    total, seen = play(env, lambda obs, t: 0, seed)
    cue = int(np.argmax(seen[0]["privileged"]))
    assert [int(np.argmax(o["privileged"])) for o in seen] == [cue] * 6
    assert seen[0]["policy"][:3].tolist() == np.eye(3)[cue].tolist()
    assert all(not o["policy"][:3].any() for o in seen[1:])  # gone after the first step
    assert [round(float(o["policy"][3]), 3) for o in seen] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert total == pytest.approx(1.0 if cue == 0 else 0.0)


def test_returns_the_teacher_a_memoryless_and_a_remembering_student_can_reach():
    env = CueMemory()  # 2 cues, 8 steps
    teacher = [play(env, lambda obs, t: int(np.argmax(obs["privileged"])), s)[0] for s in range(20)]
    assert teacher == pytest.approx([1.0] * 20)
    remembered: dict[str, int] = {}

    def remembering(obs, t):
        if t == 0:
            remembered["cue"] = int(np.argmax(obs["policy"][:2]))
        return remembered["cue"]

    assert [play(env, remembering, s)[0] for s in range(20)] == pytest.approx([1.0] * 20)
    # memoryless: right at the first step, then whatever it answers without the cue (here 0)
    memoryless = [play(env, lambda obs, t: int(np.argmax(obs["policy"][:2])) if t == 0 else 0, s)[0]
                  for s in range(200)]  # fmt: skip
    assert np.mean(memoryless) == pytest.approx((1 + 7 / 2) / 8, abs=0.05)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="n_cues >= 2"):
        CueMemory(n_cues=1)
