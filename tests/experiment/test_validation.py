"""Every value of a run is checked before any work: one line on stderr, exit 2, nothing written.

Issue 14, items 4 (NaN and infinity), 7 (a rollout larger than the budget; the evaluation
frequency a run really uses), 8 (types and ranges of hyperparameters), 9 (sizes that cannot
be allocated) and 12 (messages that name the option the value came from).
"""

from __future__ import annotations

import math
import re
from importlib import resources

import pytest
import yaml
from torch import nn

from ppdistill.cli.main import main
from ppdistill.core.errors import PPDistillError
from ppdistill.core.schedules import Linear
from ppdistill.experiment import validation
from ppdistill.experiment.config import (
    ACTIVATIONS,
    HYPERPARAMETERS,
    METHODS,
    ConfigError,
    check_policy_kwargs,
    check_values,
    hyperparameters,
    parse_overrides,
    resolve_policy_kwargs,
)
from ppdistill.experiment.spec import RunSpec
from ppdistill.experiment.validation import MAX_PARAMETERS, validate_run
from ppdistill.networks.cnn import NatureCNNExtractor

from ..conftest import zoo_path
from ..helpers import CARTPOLE


def distill(tmp_path, capsys, *extra, timesteps="1024"):
    """``ppdistill distill`` in this process: (exit status, stderr lines)."""
    argv = ["distill", "--teacher", str(zoo_path(CARTPOLE)), "--env", "CartPole-v1", "--timesteps", timesteps,
            "--out", str(tmp_path / "out"), "--no-progress", *extra]  # fmt: skip
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    return code, capsys.readouterr().err.strip().splitlines()


def assert_refused(tmp_path, code, err, *fragments):
    assert code == 2, err
    assert len(err) == 1, err
    assert err[0].startswith("ppdistill: error: "), err[0]
    for fragment in fragments:
        assert fragment in err[0], (fragment, err[0])
    assert not (tmp_path / "out").exists()


def spec(method="ppd", timesteps=1024, student="8,8", **hp):
    settings = hyperparameters("CartPole-v1", method)
    settings.update(hp)
    return RunSpec("CartPole-v1", method, str(zoo_path(CARTPOLE)), timesteps, student=student, hp=settings)


# ---- items 4 and 8: bad values on the command line ---------------------------------------

BAD_HP = [
    # item 4: NaN, infinity and a negative λ; NaN in every other float hyperparameter
    (["--hp", "distill_lambda=nan"], ["distill_lambda", "finite", "--hp distill_lambda=", "--lambda"]),
    (["--hp", "distill_lambda=inf"], ["distill_lambda", "finite"]),
    (["--hp", "distill_lambda=-1"], ["distill_lambda", ">= 0"]),
    *[
        (["--hp", f"{key}=nan"], [key, "got nan"])
        for key in (
            "learning_rate",
            "clip_range",
            "clip_range_vf",
            "ent_coef",
            "vf_coef",
            "max_grad_norm",
            "gamma",
            "gae_lambda",
            "target_kl",
        )
    ],
    (["--temperature", "nan"], ["temperature", "finite", "--temperature"]),
    # item 8
    (["--hp", "learning_rate=abc"], ["learning_rate", "'abc'", "--hp learning_rate="]),
    (["--hp", "n_steps=-1"], ["n_steps", "whole number > 0", "got -1"]),
    (["--hp", "n_steps=0"], ["n_steps", "whole number > 0", "got 0"]),
    (["--hp", "batch_size=0"], ["batch_size", "got 0"]),
    (["--hp", "batch_size=1.5"], ["batch_size", "whole number", "got 1.5"]),
    (["--hp", "n_epochs=0"], ["n_epochs", "got 0"]),
    (["--hp", "clip_range=abc"], ["clip_range", "'abc'"]),
    (["--hp", "kl_direction=x"], ["kl_direction", "forward, reverse", "'x'"]),
    (["--hp", "policy_kwargs=abc"], ["policy_kwargs", "mapping", "'abc'"]),
    (["--hp", "policy_kwargs={activation_fn: torch.nn.ReLU}"], ["activation_fn", "relu", "'torch.nn.ReLU'"]),
    (["--hp", "policy_kwargs={net_arch: [0]}"], ["net_arch", "[0]"]),
    (["--hp", "policy_kwargs={features_extractor_class: NatureCNN}"], ["features_extractor_class", "Python"]),
    (["--hp", "policy_kwargs={netarch: [8]}"], ["'netarch'", "did you mean net_arch"]),
    (["--hp", "gamma=1.5"], ["gamma", "[0, 1]"]),
    (["--hp", "use_sde=maybe"], ["use_sde", "true or false"]),
    (["--hp", "student_obs_norm=always"], ["student_obs_norm", "teacher, none"]),
    (["--hp", "learning_rate=lin_abc"], ["learning_rate", "lin_X"]),
    (["--hp", "learning_rate=linear_0.001"], ["learning_rate", "lin_X"]),
    (["--hp", "clip_range=lin_-1"], ["clip_range", "lin_-1"]),
    (
        ["--method", "student-distill", "--hp", "value_target=critic"],
        ["value_target", "returns, teacher, none"],
    ),
    (["--student", "abc"], ["student size", "--student"]),
    # item 12: the fine-tuning PPO's values are named as --finetune-hp
    (
        ["--method", "student-distill", "--then-finetune", "2048", "--finetune-hp", "gamma=2"],
        ["finetune_hp gamma", "--finetune-hp gamma="],
    ),
    (
        ["--method", "student-distill", "--then-finetune", "2048", "--finetune-hp", "learning_rate=nan"],
        ["finetune_hp learning_rate", "--finetune-hp"],
    ),
    (
        ["--method", "student-distill", "--then-finetune", "2048", "--finetune-hp", "n_epochs=0"],
        ["finetune_hp n_epochs"],
    ),
    # item 12: ent_coef=inf is refused up front (not advised to lower the learning rate)
    (["--hp", "ent_coef=inf"], ["ent_coef", "finite"]),
]


@pytest.mark.parametrize(("extra", "fragments"), BAD_HP, ids=[" ".join(e) for e, _ in BAD_HP])
def test_bad_values_exit_2_with_one_line_before_anything_is_written(tmp_path, capsys, extra, fragments):
    code, err = distill(tmp_path, capsys, *extra)
    assert_refused(tmp_path, code, err, *fragments)


BAD_CONFIGS = [
    (
        "default:\n  ppd:\n    learning_rate: abc\n",
        ["learning_rate", "'abc'", "entry default.ppd", "fix it there"],
    ),
    ('CartPole-v1:\n  ppd:\n    policy_kwargs: "dict(net_arch=[8])"\n', ["policy_kwargs", "rl_zoo3", "YAML"]),
    ("default:\n  ppd:\n    n_epochs: 0\n", ["n_epochs", "got 0"]),
    ("default:\n  ppd:\n    gamma: .nan\n", ["gamma", "got nan"]),
]


@pytest.mark.parametrize(
    ("text", "fragments"), BAD_CONFIGS, ids=["lr-abc", "zoo-dict", "epochs-0", "gamma-nan"]
)
def test_bad_values_in_a_config_file_name_the_file_and_the_entry(tmp_path, capsys, text, fragments):
    config = tmp_path / "distill.yml"
    config.write_text(text)
    code, err = distill(tmp_path, capsys, "--config", str(config))
    assert_refused(tmp_path, code, err, str(config), *fragments)


def test_a_config_that_is_a_directory_says_so(tmp_path, capsys):
    (tmp_path / "configs").mkdir()
    code, err = distill(tmp_path, capsys, "--config", str(tmp_path / "configs"))
    assert_refused(tmp_path, code, err, "is a directory", "YAML file")
    assert "does not exist" not in err[0]


def test_parse_errors_name_the_option_the_value_came_from():
    with pytest.raises(ConfigError, match=r"^--finetune-hp expects KEY=VALUE, got 'gamma'$"):
        parse_overrides(["gamma"], option="--finetune-hp")
    with pytest.raises(ConfigError, match=r"^--finetune-hp gamma: cannot parse"):
        parse_overrides(["gamma=[0.9"], option="--finetune-hp")
    with pytest.raises(ConfigError, match=r"^--hp expects KEY=VALUE"):
        parse_overrides(["gamma"])


# ---- the table accepts what runs are made of ----------------------------------------------


def test_every_section_of_the_shipped_config_passes():
    shipped = yaml.safe_load(resources.files("ppdistill").joinpath("configs/distill.yml").read_text())
    for entry in shipped:
        for method in METHODS:
            check_values(method, hyperparameters(entry, method))
    for kind in shipped.get("teacher_kinds") or {}:
        for method in METHODS:
            check_values(method, hyperparameters("default", method, teacher_kind=kind))


@pytest.mark.parametrize(
    "hp",
    [
        {"batch_size": 4096},  # larger than a rollout: SB3 only warns
        {
            "learning_rate": 1,
            "clip_range": 0.1,
            "gamma": 1,
            "gae_lambda": 0,
            "ent_coef": 0,
            "target_kl": None,
        },
        {"learning_rate": lambda progress: 1e-3 * progress, "clip_range": Linear(0.2, 0.1)},  # from Python
        {"distill_lambda": 0.0, "detach_ratio": False, "kl_direction": "reverse", "student_obs_norm": "none"},
        {"distill_lambda": Linear(3.0, 0.0)},  # a λ schedule, from Python
        {"policy_kwargs": None},
        {
            "policy_kwargs": {
                "net_arch": [8, 8],
                "activation_fn": "relu",
                "ortho_init": False,
                "log_std_init": -1,
            }
        },
        {"policy_kwargs": {"net_arch": {"pi": [8], "vf": [16, 16]}, "activation_fn": nn.ELU}},
        {"policy_kwargs": {"net_arch": [{"pi": [8], "vf": [8]}], "activation_fn": "LeakY_ReLU"}},
        {"policy_kwargs": {"net_arch": [], "features_extractor_class": NatureCNNExtractor}},
        {"sde_sample_freq": -1, "use_sde": True, "normalize_advantage": False, "batch_size": 1},
    ],
)
def test_valid_values_pass(hp):
    spec(**hp)


def test_batch_size_null_is_the_whole_rollout_for_the_kl_baselines():
    for method in ("student-distill", "teacher-distill"):
        spec(method, batch_size=None, n_steps=5, n_epochs=1)


def test_every_activation_name_becomes_its_torch_class():
    for name, cls in ACTIVATIONS.items():
        check_policy_kwargs({"activation_fn": name})
        assert resolve_policy_kwargs({"activation_fn": name, "net_arch": [8]}) == {
            "activation_fn": cls,
            "net_arch": [8],
        }
    assert resolve_policy_kwargs({"activation_fn": "ReLU"})["activation_fn"] is nn.ReLU
    assert resolve_policy_kwargs({"activation_fn": nn.GELU})["activation_fn"] is nn.GELU
    assert resolve_policy_kwargs(None) == {}
    names = ", ".join(ACTIVATIONS)
    with pytest.raises(ConfigError, match=f"must be one of {names}"):
        check_policy_kwargs({"activation_fn": "nn.ReLU"})


def test_a_spec_keeps_the_values_it_was_given():
    kwargs = {"activation_fn": "tanh", "net_arch": [8]}
    made = spec(policy_kwargs=kwargs)
    assert (
        made.hp["policy_kwargs"] is kwargs and kwargs["activation_fn"] == "tanh"
    )  # JSON and YAML can write it


def test_every_rule_has_an_example_that_passes_it():
    for key, rule in HYPERPARAMETERS.items():
        if rule.example is not None:
            assert rule.check(rule.example), key


def test_a_value_error_is_a_ppdistill_error_of_one_line():
    with pytest.raises(PPDistillError) as info:
        spec(learning_rate=math.nan)
    assert "\n" not in str(info.value)


def test_the_specs_own_fields_are_checked():
    base = {"env_id": "CartPole-v1", "method": "ppd", "teacher": "t.zip", "timesteps": 1024}
    for changes, fragment in [
        ({"timesteps": 0}, "timesteps must be positive"),
        ({"timesteps": math.inf}, "timesteps must be positive"),
        ({"timesteps": "many"}, "timesteps must be positive"),
        ({"eval_freq": -1}, "eval_freq"),
        ({"eval_episodes": 0}, "eval_episodes"),
        ({"final_episodes": 1.5}, "final_episodes"),
        ({"student": "huge"}, "student size"),
        ({"hp": "abc"}, "hp must map"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            RunSpec(**{**base, **changes})
    assert RunSpec(**{**base, "timesteps": 1e5}).total_timesteps == 100_000  # YAML's 1e5


# ---- item 7: the evaluation frequency a run uses --------------------------------------------


def test_effective_eval_freq_is_the_one_the_run_uses():
    assert spec(timesteps=1000).effective_eval_freq == 100
    assert spec(timesteps=5).effective_eval_freq == 1
    made = RunSpec("CartPole-v1", "ppd", "t.zip", 1000, eval_freq=250)
    assert made.effective_eval_freq == 250
    pipeline = spec("student-distill", timesteps=1000, then_finetune=3000)
    assert pipeline.effective_eval_freq == 400  # a tenth of both phases


# ---- items 7 and 9: validate_run (needs the environment's spaces) --------------------------


def test_a_valid_run_passes(cartpole_teacher):
    validate_run(spec(n_envs=2, n_steps=64), cartpole_teacher)
    validate_run(spec(n_envs=2, n_steps=64))  # without the teacher: the env's spaces


def test_a_rollout_larger_than_the_budget_is_refused(cartpole_teacher):
    with pytest.raises(ConfigError) as info:
        validate_run(spec(timesteps=1000, n_envs=5000, n_steps=64), cartpole_teacher)
    message = str(info.value)
    assert (
        "one rollout of n_steps × n_envs = 64 × 5000 = 320000 env steps exceeds --timesteps 1000" in message
    )
    assert "lower --n-envs or n_steps" in message and "raise --timesteps" in message
    validate_run(spec(timesteps=1024, n_envs=16, n_steps=64), cartpole_teacher)  # exactly one rollout


def test_a_minibatch_larger_than_a_rollout_is_said_to_have_no_effect(cartpole_teacher, recwarn):
    """The whole rollout is then one minibatch: 128 of a 64-step rollout trains as 64 does."""
    with pytest.warns(UserWarning) as caught:
        validate_run(spec("student-distill", n_envs=8, n_steps=8, batch_size=128), cartpole_teacher)
    (message,) = [str(w.message) for w in caught if "batch_size" in str(w.message)]
    assert "batch_size 128 is larger than one rollout of n_steps × n_envs = 8 × 8 = 64" in message
    assert "no effect" in message and "--hp batch_size=N" in message and "\n" not in message
    recwarn.clear()
    validate_run(spec("student-distill", n_envs=8, n_steps=8, batch_size=64), cartpole_teacher)  # equal
    validate_run(spec("student-distill", n_envs=8, n_steps=8, batch_size=None), cartpole_teacher)
    assert not [w for w in recwarn if "batch_size" in str(w.message)]


def test_a_fine_tuning_rollout_larger_than_its_budget_is_refused(cartpole_teacher):
    finetune = {**hyperparameters("CartPole-v1", "ppo"), "n_envs": 8, "n_steps": 512}
    made = spec("student-distill", n_envs=2, then_finetune=2048, finetune_hp=finetune)
    with pytest.raises(
        ConfigError, match=r"fine-tuning rollout .* 4096 env steps exceeds --then-finetune 2048"
    ):
        validate_run(made, cartpole_teacher)


def test_a_rollout_buffer_that_does_not_fit_in_memory_is_refused(monkeypatch, cartpole_teacher):
    monkeypatch.setattr(validation, "memory_limit", lambda: 4 * 2**30)
    with pytest.raises(ConfigError) as info:
        validate_run(spec(timesteps=10**9, n_steps=100_000_000, n_envs=1), cartpole_teacher)
    assert "memory" in str(info.value) and "n_steps=N" in str(info.value)
    monkeypatch.setattr(validation, "memory_limit", lambda: None)  # unknown: only the budget applies
    validate_run(spec(timesteps=10**9, n_steps=100_000_000, n_envs=1), cartpole_teacher)


@pytest.mark.parametrize(
    ("hp", "fragment", "fine_without_normalizing"),
    [
        (
            {"batch_size": None},
            "batch_size null (the whole rollout in one batch) is for student-distill",
            False,
        ),
        ({"batch_size": 1}, "batch_size must be > 1 for ppd", True),
        ({"n_steps": 1, "n_envs": 1}, "n_steps × n_envs = 1 × 1 step; it needs at least 2", True),
    ],
)
def test_ppo_needs_two_samples_per_minibatch_and_rollout(
    cartpole_teacher, hp, fragment, fine_without_normalizing
):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        validate_run(spec(**hp), cartpole_teacher)
    if fine_without_normalizing:  # SB3 asserts these only while it normalizes advantages
        validate_run(spec(**hp, normalize_advantage=False), cartpole_teacher)


def test_the_fine_tuning_ppo_is_held_to_the_same_rules(cartpole_teacher):
    finetune = {**hyperparameters("CartPole-v1", "ppo"), "batch_size": 1}
    made = spec("student-distill", n_envs=2, then_finetune=2048, finetune_hp=finetune)
    with pytest.raises(ConfigError, match=re.escape("finetune_hp batch_size must be > 1 for ppo")) as info:
        validate_run(made, cartpole_teacher)
    assert "--finetune-hp batch_size=64" in str(info.value)


def test_a_student_too_large_to_build_is_refused(monkeypatch, cartpole_teacher):
    with pytest.raises(
        ConfigError, match=r"parameters, more than 1e\+09; choose smaller hidden sizes with --student"
    ):
        validate_run(spec(student="100000,100000", n_envs=2), cartpole_teacher)
    big = spec(policy_kwargs={"net_arch": [100_000, 100_000]}, n_envs=2)
    with pytest.raises(ConfigError, match="policy_kwargs"):
        validate_run(big, cartpole_teacher)
    monkeypatch.setattr(validation, "memory_limit", lambda: 2**30)  # 1 GiB: 72M parameters do not fit
    with pytest.raises(ConfigError, match="to train, more than half of this machine's memory"):
        validate_run(spec(student="6000,6000", n_envs=2), cartpole_teacher)
    assert (
        validation.student_parameters(
            spec(student="6000,6000"), cartpole_teacher.observation_space, cartpole_teacher.action_space
        )
        < MAX_PARAMETERS
    )


def test_memory_limit_is_known_here():
    limit = validation.memory_limit()
    assert limit is None or limit > 0


# The command line: these need Run.start to call validate_run (experiment/runner.py, owned by
# another change). Until it does they fail (the guard stops the training they would start);
# remove the xfail marker with that change.


@pytest.fixture
def no_training(monkeypatch):
    """Fail at once if a run gets as far as building its model."""
    from ppdistill.experiment import runner

    def refuse(*args, **kwargs):
        raise AssertionError("the run started work before refusing its values")

    monkeypatch.setattr(runner, "build_model", refuse)


def test_cli_refuses_a_rollout_larger_than_the_budget(tmp_path, capsys, no_training):
    code, err = distill(tmp_path, capsys, "--n-envs", "5000", timesteps="1000")
    assert_refused(tmp_path, code, err, "320000 env steps exceeds --timesteps 1000", "--n-envs")


def test_cli_refuses_a_rollout_buffer_larger_than_memory(tmp_path, capsys, monkeypatch, no_training):
    monkeypatch.setattr(validation, "memory_limit", lambda: 4 * 2**30)
    code, err = distill(tmp_path, capsys, "--hp", "n_steps=100000000", timesteps="1000000000")
    assert_refused(tmp_path, code, err, "memory", "n_steps")


def test_cli_refuses_a_student_too_large_to_build(tmp_path, capsys, no_training):
    code, err = distill(tmp_path, capsys, "--student", "100000,100000", "--hp", "n_envs=2")
    assert_refused(tmp_path, code, err, "parameters", "--student")


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_lambda_that_is_not_finite_is_refused_by_the_parser(tmp_path, capsys, value):
    code, err = distill(tmp_path, capsys, "--lambda", value)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("ppdistill distill: error: argument --lambda: expected a finite number"), err[0]
    assert not (tmp_path / "out").exists()


def test_running_statistics_on_image_observations_are_refused_before_the_run():
    from ppdistill.experiment.config import ConfigError, hyperparameters
    from ppdistill.experiment.spec import RunSpec
    from ppdistill.experiment.validation import validate_run

    hp = {**hyperparameters("MinAtar/Breakout-v1", "ppd"), "student_obs_norm": "running"}
    spec = RunSpec("MinAtar/Breakout-v1", "ppd", "teacher.zip", 1024, hp=hp)
    with pytest.raises(ConfigError, match="student_obs_norm 'running' needs a flat Box observation"):
        validate_run(spec)
