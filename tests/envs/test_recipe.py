"""Zoo runs as the zoo made them: a teacher trained inside wrappers (a time feature, a frame
stack) is read with them, and the student sees its observation or the environment's own."""

from __future__ import annotations

import collections
import json

import numpy as np
import pytest
import yaml
from gymnasium import spaces
from sb3_contrib.common.wrappers import TimeFeatureWrapper
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
from stable_baselines3.common.vec_env import VecFrameStack

from ppdistill import PPD, evaluate, load_teacher
from ppdistill.cli.main import main
from ppdistill.core.errors import PPDistillError, SpaceMismatchError
from ppdistill.envs.recipe import EnvRecipe, ObservationSlice, RecipeError, WrapperSpec, raw_view

TIME_FEATURE = "sb3_contrib.common.wrappers.TimeFeatureWrapper"


def zoo_yaml(pairs: dict) -> str:
    """What rl-zoo writes: PyYAML's dump of an OrderedDict, with its Python tag."""
    return yaml.dump(collections.OrderedDict(pairs))


@pytest.fixture(scope="module")
def time_feature_run(tmp_path_factory):
    """A PPO trained a few hundred steps inside TimeFeatureWrapper, saved as an rl-zoo run folder."""
    env = sb3_make_vec_env("Pendulum-v1", n_envs=2, seed=0, wrapper_class=TimeFeatureWrapper)
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16, 16]})  # fmt: skip
    model.learn(256)
    run = tmp_path_factory.mktemp("zoo") / "ppo" / "Pendulum-v1_1"
    (run / "Pendulum-v1").mkdir(parents=True)
    model.save(run / "Pendulum-v1.zip")
    (run / "Pendulum-v1" / "config.yml").write_text(zoo_yaml({"env_wrapper": TIME_FEATURE, "n_envs": 2}))
    (run / "Pendulum-v1" / "args.yml").write_text(zoo_yaml({"algo": "ppo", "env": "Pendulum-v1"}))
    return run, model


def test_zoo_yaml_is_what_the_loader_reads(time_feature_run):
    run, _ = time_feature_run
    text = (run / "Pendulum-v1" / "config.yml").read_text()
    assert text.startswith("!!python/object/apply:collections.OrderedDict\n- - - env_wrapper")


def test_a_time_feature_teacher_acts_as_the_model_did_on_a_thousand_observations(time_feature_run):
    run, model = time_feature_run
    teacher = load_teacher(run, env_id="Pendulum-v1")
    assert teacher.observation_space.shape == (4,)
    assert teacher.info["env"]["wrappers"] == [{"path": TIME_FEATURE, "kwargs": {}}]
    env = sb3_make_vec_env("Pendulum-v1", n_envs=8, seed=3, wrapper_class=TimeFeatureWrapper)
    obs, seen = env.reset(), []
    for _ in range(125):
        seen.append(obs)
        obs, *_ = env.step(np.stack([env.action_space.sample() for _ in range(8)]))
    batch = np.concatenate(seen)
    assert batch.shape == (1000, 4) and len(np.unique(batch[:, -1])) > 50  # the time feature moves
    ours, _ = teacher.predict(batch, deterministic=True)
    theirs, _ = model.predict(batch, deterministic=True)
    np.testing.assert_array_equal(ours, theirs)


def test_without_its_wrappers_the_teacher_is_a_space_mismatch_naming_both(time_feature_run, tmp_path):
    run, _ = time_feature_run
    bare = tmp_path / "Pendulum-v1.zip"
    bare.write_bytes((run / "Pendulum-v1.zip").read_bytes())
    with pytest.raises(SpaceMismatchError, match=r"\(4,\).*\(3,\)"):
        load_teacher(bare, env_id="Pendulum-v1")


def test_a_wrapper_named_by_a_file_is_imported_only_from_known_modules(time_feature_run, tmp_path):
    run, _ = time_feature_run
    copy = tmp_path / "run"
    (copy / "Pendulum-v1").mkdir(parents=True)
    (copy / "Pendulum-v1.zip").write_bytes((run / "Pendulum-v1.zip").read_bytes())
    (copy / "Pendulum-v1" / "config.yml").write_text(zoo_yaml({"env_wrapper": "os.system"}))
    with pytest.raises(PPDistillError, match="not imported from a file"):
        load_teacher(copy, env_id="Pendulum-v1")


def test_the_raw_view_takes_out_a_time_feature_and_a_frame_stack():
    stacked = EnvRecipe("Pendulum-v1", wrappers=(WrapperSpec(TIME_FEATURE),), frame_stack=3)
    view = raw_view(stacked)
    assert view == ObservationSlice(-4, -1)
    frames = np.arange(12.0).reshape(1, 12)  # three frames of (x, y, ω, time)
    np.testing.assert_array_equal(view(frames), [[8.0, 9.0, 10.0]])  # the newest frame, no time
    obs_space, _ = stacked.spaces()
    assert obs_space.shape == (12,) and view.space(obs_space).shape == (3,)
    assert raw_view(EnvRecipe("Pendulum-v1", frame_stack=2)) == ObservationSlice(-3, None)
    with pytest.raises(RecipeError, match="does not undo"):
        raw_view(EnvRecipe("Pendulum-v1", wrappers=(WrapperSpec("gymnasium.wrappers.ClipAction"),)))


def test_a_raw_student_never_receives_the_teachers_input_but_the_teacher_does(time_feature_run):
    """The buffer holds the student's 3 entries and, for the teacher, the 4 of the environment."""
    run, _ = time_feature_run
    teacher = load_teacher(run, env_id="Pendulum-v1")
    recipe = EnvRecipe.from_dict(teacher.info["env"])
    student_recipe = EnvRecipe(recipe.env_id, wrappers=recipe.wrappers, student_view=raw_view(recipe))
    env = student_recipe.make(n_envs=2, seed=0)
    seen = []
    original = teacher.forward

    def spy(obs, with_values=False):
        seen.append(tuple(obs.shape))
        return original(obs, with_values)

    teacher.forward = spy  # type: ignore[method-assign]
    model = PPD(
        "MlpPolicy", env, teacher=teacher, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu"
    )
    model.learn(64)
    assert model.observation_space.shape == (3,)
    assert model.rollout_buffer.observations.shape[-1] == 3
    assert seen and all(shape[-1] == 4 for shape in seen)


@pytest.mark.parametrize(("student_obs", "width"), [("teacher", 4), ("raw", 3)])
def test_distill_on_a_zoo_folder_with_a_time_feature_runs_end_to_end(time_feature_run, tmp_path, capsys,
                                                                       student_obs, width):  # fmt: skip
    run, _ = time_feature_run
    out = tmp_path / "out"
    small = ["--hp", "n_envs=1", "--hp", "n_steps=64", "--student", "8,8", "--eval-episodes", "1",
             "--final-episodes", "2", "--no-progress"]  # fmt: skip
    code = main(["distill", "--teacher", str(run), "--env", "Pendulum-v1", "--timesteps", "256", *small,
                 "--student-obs", student_obs, "--out", str(out)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "the teacher acts in Pendulum-v1 + TimeFeatureWrapper" in printed
    result = json.loads((out / "results.json").read_text())
    assert result["env"]["teacher"]["wrappers"][0]["path"] == TIME_FEATURE
    assert (result["env"]["student"]["student_view"] is None) == (student_obs == "teacher")
    student = PPD.load(out / "student.zip", device="cpu")
    assert isinstance(student.observation_space, spaces.Box) and student.observation_space.shape == (width,)
    assert 0.0 <= result["agreement"] <= 1.0
    # the student's zip records the environment it acts in: evaluate and load_agent build it
    assert (
        main(["evaluate", "--model", str(out / "student.zip"), "--env", "Pendulum-v1", "--episodes", "1"])
        == 0
    )
    assert evaluate(load_teacher(run), "Pendulum-v1", n_episodes=1).n_episodes == 1  # the teacher, by its id


def test_frame_stacked_recipe_builds_what_the_zoo_built():
    recipe = EnvRecipe("Pendulum-v1", frame_stack=2)
    env = recipe.make(n_envs=1, seed=0)
    assert isinstance(env, VecFrameStack) and env.observation_space.shape == (6,)
    env.close()


@pytest.fixture(scope="module")
def stacked_run(tmp_path_factory):
    """A PPO trained with a time feature and 2 stacked frames, in rl-zoo layout."""
    env = VecFrameStack(
        sb3_make_vec_env("Pendulum-v1", n_envs=2, seed=0, wrapper_class=TimeFeatureWrapper), 2
    )
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"net_arch": [16, 16]})  # fmt: skip
    model.learn(128)
    run = tmp_path_factory.mktemp("zoo-stacked") / "Pendulum-v1_1"
    (run / "Pendulum-v1").mkdir(parents=True)
    model.save(run / "Pendulum-v1.zip")
    settings = {"env_wrapper": [{TIME_FEATURE: {"max_steps": 200}}], "frame_stack": 2}
    (run / "Pendulum-v1" / "config.yml").write_text(zoo_yaml(settings))
    return run


def test_a_raw_student_of_a_stacked_teacher_resumes_bit_for_bit(stacked_run, tmp_path, monkeypatch):
    """The frame stack's frames and the teacher's observation behind the student's view are part
    of the checkpoint, as the environments' replay is."""
    from ppdistill.experiment.config import hyperparameters
    from ppdistill.experiment.runner import resume, run
    from ppdistill.experiment.spec import RunSpec

    from ..helpers import Interrupt, assert_same_tensors, weights

    teacher = load_teacher(stacked_run, env_id="Pendulum-v1")
    assert teacher.observation_space.shape == (8,)
    hp = {
        **hyperparameters("Pendulum-v1", "ppd"),
        "n_envs": 2,
        "n_steps": 32,
        "batch_size": 64,
        "use_sde": False,
    }
    spec = RunSpec("Pendulum-v1", "ppd", str(stacked_run), 512, student="8,8", seed=2, hp=hp, eval_episodes=1,
                   final_episodes=1, student_obs="raw")  # fmt: skip
    whole = run(spec, out=tmp_path / "whole", checkpoint_freq=128)
    assert whole["env"]["student"]["student_view"] == [-4, -1]
    train, calls = PPD.train, [0]

    def failing_train(self):  # on the class: a model holding the wrappers' objects is not picklable
        calls[0] += 1
        if calls[0] > 5:
            raise Interrupt
        train(self)

    monkeypatch.setattr(PPD, "train", failing_train)
    with pytest.raises(Interrupt):
        run(spec, out=tmp_path / "cut", checkpoint_freq=128)
    monkeypatch.setattr(PPD, "train", train)
    result = resume(tmp_path / "cut")
    assert all(r["exact"] for r in result["resumed"])
    cut, kept = tmp_path / "cut" / "student.zip", tmp_path / "whole" / "student.zip"
    assert_same_tensors(weights(cut), weights(kept))


def test_a_recipe_reads_back_what_it_wrote_view_included():
    recipe = EnvRecipe("Pendulum-v1", {"g": 9.0}, (WrapperSpec(TIME_FEATURE, {"max_steps": 50}),), 2,
                       ObservationSlice(-4, -1))  # fmt: skip
    assert EnvRecipe.from_dict(json.loads(json.dumps(recipe.as_dict()))) == recipe
    assert EnvRecipe.from_dict(EnvRecipe("CartPole-v1").as_dict()).plain
