"""The benchmark harness: suites parse, runs resume, failures are contained, backends agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ppdistill.bench import load_suite, read_records, run_suite
from ppdistill.bench.execute import _run_local
from ppdistill.bench.report import build_report
from ppdistill.core.errors import PPDistillError
from ppdistill.experiment.config import ConfigError

from ..conftest import zoo_path

REPO = Path(__file__).resolve().parents[2]
SUITES = sorted((REPO / "benchmarks" / "suites").glob("*.yaml"))


def cli(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "ppdistill.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def tiny_suite(tmp_path, extra=""):
    path = tmp_path / "tiny.yaml"
    path.write_text(
        "name: tiny\nseeds: [0]\nstudents: [smaller]\ntimesteps: 1024\neval_freq: 512\n"
        "eval_episodes: 1\nfinal_episodes: 2\n" + extra + "envs:\n"
        "  - {env: CartPole-v1, teacher: 'package:cartpole-teacher.zip'}\n"
    )
    return path


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_every_shipped_suite_parses_and_expands(path):
    suite = load_suite(path)
    runs = suite.runs()
    assert runs and len({rid for rid, _, _ in runs}) == len(runs)


def test_strategies_suite_builds_pipelines_and_schedules_with_equal_budgets():
    runs = {rid: spec for rid, spec, _ in load_suite(REPO / "benchmarks/suites/strategies.yaml").runs()}
    assert len(runs) == 54
    ft = runs["LunarLander-v3__sd-ft__32,16__s0"]
    assert (ft.method, ft.timesteps, ft.finetune_steps, ft.hp["critic_warmup"]) == (
        "student-distill",
        30000,
        70000,
        10000,
    )
    assert ft.hp["finetune_hp"]["learning_rate"] == 3e-4  # completed from the config's ppo section
    dtf = runs["LunarLander-v3__ppd-dtf__32,16__s0"]
    assert dtf.hp["lambda_schedule"] == "distill-then-finetune:0.3"
    # (a): every method of the low-capacity comparison gets the same env steps
    budgets = {rid.split("__")[1]: spec.total_timesteps for rid, spec in runs.items() if "__32,16__" in rid}
    assert set(budgets.values()) == {100_000}
    assert {"ppo", "ppd", "sd-ft", "sd-ft-nowarmup", "student-distill"} <= set(budgets)
    taus = {spec.hp["temperature"] for rid, spec in runs.items() if "__ppd-tau" in rid}
    assert taus == {0.01, 0.1, 1.0}


def test_runs_sharing_an_id_are_refused(tmp_path):
    path = tiny_suite(tmp_path, "methods: [ppd]\n")
    path.write_text(path.read_text() + "  - {env: CartPole-v1, teacher: 'package:cartpole-teacher.zip'}\n")
    with pytest.raises(ConfigError, match="share the id CartPole-v1__ppd__smaller__s0"):
        load_suite(path).runs()


def test_paper_suite_dry_runs():
    proc = cli("bench", "run", REPO / "benchmarks/suites/paper.yaml", "--out", "unused", "--dry-run")
    assert "paper: 1140 runs" in proc.stdout  # 19 envs x 4 methods x 3 sizes x 5 seeds
    assert "Humanoid-v5" in proc.stdout and "procgen/ninja" in proc.stdout
    assert not Path("unused").exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nenvs: []\n", "non-empty 'envs'"),
        ("name: x\nfoo: 1\nenvs: [{env: CartPole-v1, teacher: t.zip}]\n", "unknown key 'foo'"),
        ("name: x\nmethods: [bc]\nenvs: [{env: CartPole-v1, teacher: t.zip}]\n", "unknown method 'bc'"),
        (
            "name: x\nhp: {ppd: {lr: 1}}\nenvs: [{env: CartPole-v1, teacher: t.zip}]\n",
            "unknown hyperparameter 'lr'",
        ),
        ("name: x\nenvs: [{env: CartPole-v1}]\n", "needs 'env' and 'teacher'"),
        (
            "name: x\nhp: {ppd: {zoo_hyperparameters: true}}\nenvs: [{env: CartPole-v1, teacher: t.zip}]\n",
            "zoo_hyperparameters applies to ppo",
        ),
        (
            "name: x\nhp: {ppo: {zoo_hyperparameters: true}}\n"
            "envs: [{env: CartPole-v1, teacher: 'package:cartpole-teacher.zip'}]\n",
            "needs an rl-zoo run folder with a config.yml",
        ),
        (
            "name: x\nenvs: [{env: CartPole-v1, teacher: t.zip, "
            "corrupt: {sigma: 0.1, seed: 1, seeds: [2]}}]\n",
            "either seed or a non-empty list of seeds",
        ),
        (
            "name: x\nenvs: [{env: CartPole-v1, teacher: t.zip, corrupt: {sigma: 0.1, sead: 1}}]\n",
            "corrupt takes calibration_episodes, seed, seeds, sigma, target_fraction, not sead",
        ),
        (
            "name: x\nenvs: [{env: CartPole-v1, teacher: t.zip, "
            "corrupt: {target_fraction: 0.5, calibration_episodes: 0}}]\n",
            "corrupt.calibration_episodes must be a positive integer",
        ),
        (
            "name: x\nenvs: [{env: CartPole-v1, teacher: t.zip, corrupt: 0.05}]\n",
            "corrupt must be a mapping such as {sigma: 0.05, seed: 0}, got 0.05",
        ),
        (
            "name: x\nenvs: [{env: CartPole-v1, teacher: t.zip, corrupt: {}}]\n",
            "corrupt must be a mapping such as {sigma: 0.05, seed: 0}, got {}",
        ),
        (
            "name: x\nenvs: [{env: CartPole-v1, teacher: t.zip, "
            "corrupt: {sigma: 0.1, target_fraction: 0.5}}]\n",
            "corrupt takes sigma or target_fraction",
        ),
        (
            "name: x\nenvs: [{env: CartPole-v1, teacher: t.zip, "
            "corrupt: {sigma: 0.1, calibration_episodes: 30}}]\n",
            "corrupt.calibration_episodes applies only with target_fraction",
        ),
        (
            "name: x\nenvs: [{env: CartPole-v1, teacher: t.zip, half: test}]\n",
            "half is 'test'; use tune or verify",
        ),
        (
            "name: x\nenvs: [{env: CartPole-v1, teacher: t.zip, half: tune},\n"
            "       {env: Acrobot-v1, teacher: t.zip}]\n",
            "Acrobot-v1 names no half",
        ),
        (
            "name: x\nenvs: [{env: CartPole-v1, teacher: t.zip, methods: [ppd]},\n"
            "       {env: CartPole-v1, teacher: t.zip, methods: [student-distill], deterministic: false}]\n",
            "score one teacher of CartPole-v1 both deterministically and with sampled actions; give one",
        ),
        (
            "name: x\nfrozen_defaults_sha256: 123\nenvs: [{env: CartPole-v1, teacher: t.zip}]\n",
            "frozen_defaults_sha256 must be 64 hexadecimal digits in quotes",
        ),
    ],
)
def test_bad_suites_are_one_line_errors(tmp_path, text, message, capsys):
    from ppdistill.cli.main import main

    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_suite(path)
    assert main(["bench", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and message.split("'")[0] in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_smoke_suite_runs_resumes_and_reports(tmp_path):
    out = tmp_path / "smoke"
    proc = cli("bench", "run", REPO / "benchmarks/suites/smoke.yaml", "--out", out, "--jobs", "2")
    assert "8 runs ok, 0 failed" in proc.stdout
    records = read_records(out)
    assert len(records) == 8 and all(r["status"] == "ok" for r in records)
    first = records[0]
    for key in ("curve", "score", "teacher_score", "random_score", "normalized_score", "steps_to_90",
                "train_time_s", "env_steps_per_s", "versions", "machine", "spec"):  # fmt: skip
        assert key in first, key
    assert first["spec"]["final_episodes"] == 3 and len(first["returns"]) == 3
    again = cli("bench", "run", REPO / "benchmarks/suites/smoke.yaml", "--out", out)
    assert "8 runs already done, 0 to run" in again.stdout
    assert len(read_records(out)) == 8
    cli("bench", "report", out, "--reps", "100")
    report = (out / "report.md").read_text()
    for label in ("teacher-distill", "student-distill", "PPD", "PPO from scratch"):
        assert label in report
    assert (out / "aggregate.png").is_file() and (out / "curves-smoke-CartPole-v1.png").is_file()


@pytest.mark.slow
def test_a_failing_run_is_retried_once_recorded_and_contained(tmp_path):
    # SB3's PPO refuses batch_size=1: that variant fails at construction, every time
    suite = load_suite(
        tiny_suite(
            tmp_path, "variants: {broken: {method: ppd, hp: {batch_size: 1}}}\nmethods: [ppd, broken]\n"
        )
    )
    messages = []
    records = run_suite(suite, tmp_path / "out", jobs=2, log=messages.append)
    by_label = {r["id"].split("__")[1]: r for r in records}
    assert by_label["ppd"]["status"] == "ok"
    assert by_label["broken"]["status"] == "error" and by_label["broken"]["attempt"] == 2
    assert "batch_size" in by_label["broken"]["error"] or "AssertionError" in by_label["broken"]["error"]
    assert any("retrying once" in m for m in messages)
    # a rerun retries the failed run only
    messages.clear()
    run_suite(suite, tmp_path / "out", jobs=1, log=messages.append)
    assert any("1 runs already done, 1 to run" in m for m in messages)


def test_a_worker_that_dies_without_a_record_is_an_error_record(tmp_path):
    payload = {"id": "x__ppd__smaller__s0", "suite": "t", "spec": {"nonsense": 1}, "reference": {}}
    (tmp_path / "logs").mkdir()
    results = list(_run_local([payload], tmp_path, jobs=1))
    assert len(results) == 1
    _, record = results[0]
    # the spec cannot be decoded, so the worker process dies before writing any record
    assert record["status"] == "error" and "worker exited with status 1" in record["error"]


def test_a_bench_stopped_early_leaves_no_worker_running(tmp_path, monkeypatch):
    from ppdistill.bench import execute

    started = []

    class Recorded(subprocess.Popen):
        def __init__(self, cmd, **kwargs):
            # the first run's worker ends at once without a record; the second runs on
            script = "pass" if not started else "import time; time.sleep(120)"
            super().__init__([sys.executable, "-c", script], **kwargs)
            started.append(self)

    monkeypatch.setattr(execute.subprocess, "Popen", Recorded)
    payloads = [{"id": f"x__ppd__smaller__s{i}", "suite": "t", "spec": {}} for i in range(2)]
    runner = _run_local(payloads, tmp_path, jobs=2)
    _, record = next(runner)  # the first worker's end, while the second still runs
    assert record["status"] == "error" and started[1].poll() is None
    runner.close()  # what Ctrl-C or SIGTERM does to the loop collecting the records
    assert started[1].poll() is not None  # terminated and waited for, not left running


@pytest.mark.slow
def test_ray_backend_gives_the_same_records_as_local(tmp_path):
    pytest.importorskip("ray")
    suite = load_suite(tiny_suite(tmp_path, "methods: [ppd, student-distill]\n"))
    local = run_suite(suite, tmp_path / "local", jobs=2, backend="local", log=lambda m: None)
    remote = run_suite(suite, tmp_path / "ray", jobs=2, backend="ray", log=lambda m: None)

    def scores(records):
        return {
            r["id"]: (r["score"], r["normalized_score"], [c["mean"] for c in r["curve"]]) for r in records
        }

    assert all(r["status"] == "ok" for r in local + remote)
    assert scores(local) == scores(remote)
    assert json.loads((tmp_path / "ray" / "references.json").read_text()) == json.loads(
        (tmp_path / "local" / "references.json").read_text()
    )


def test_read_records_takes_a_folder_or_a_records_file_kept_aside(tmp_path):
    lines = [{"id": "a", "status": "ok"}, {"id": "b", "status": "error"}]
    (tmp_path / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"torn')
    aside = tmp_path / "old-records.jsonl"
    aside.write_text((tmp_path / "records.jsonl").read_text())
    assert read_records(tmp_path) == read_records(aside) == lines
    assert read_records(tmp_path / "missing") == []


def test_suite_teachers_resolve_from_the_suites_folder_wherever_ppdistill_is_installed(tmp_path, monkeypatch):
    """Relative and ``zoo:`` teachers are found from the suite file's folder upward (a wheel
    install puts the package far from the repository)."""
    from ppdistill.bench.suite import resolve_teacher

    suite = tmp_path / "project" / "benchmarks" / "suites" / "s.yaml"
    suite.parent.mkdir(parents=True)
    (tmp_path / "project" / "teachers").mkdir()
    (tmp_path / "project" / "teachers" / "t.zip").write_bytes(b"")
    zoo_run = tmp_path / "shared" / "teachers" / "rl-zoo" / "ppo" / "X_1"
    zoo_run.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("PPDISTILL_ZOO_DIR", raising=False)
    assert resolve_teacher("teachers/t.zip", suite) == tmp_path / "project" / "teachers" / "t.zip"
    assert resolve_teacher("zoo:ppo/X_1", suite) == zoo_run
    monkeypatch.setenv("PPDISTILL_ZOO_DIR", str(elsewhere))
    assert resolve_teacher("zoo:ppo/X_1", suite) == elsewhere / "ppo" / "X_1"


def test_corruption_seeds_make_one_teacher_each_with_their_own_run_ids(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nseeds: [7]\nmethods: [ppd]\nstudents: [smaller]\n"
        "envs: [{env: CartPole-v1, teacher: t.zip, corrupt: {sigma: 0.05, seeds: [100, 101]}}]\n"
    )
    suite = load_suite(path)
    assert [e.corrupt for e in suite.envs] == [{"sigma": 0.05, "seed": 100}, {"sigma": 0.05, "seed": 101}]
    assert [rid for rid, _, _ in suite.runs()] == [
        "CartPole-v1__ppd__smaller__s7__c100",
        "CartPole-v1__ppd__smaller__s7__c101",
    ]


def test_ppo_takes_the_teachers_zoo_hyperparameters_instead_of_the_distillation_ones(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nseeds: [0]\nmethods: [ppo, ppd]\nstudents: [smaller]\n"
        "hp: {ppo: {zoo_hyperparameters: true, n_epochs: 7}}\n"
        f"envs: [{{env: HalfCheetah-v5, teacher: '{zoo_path('ppo/HalfCheetah-v3_1')}'}}]\n"
    )
    specs = {spec.method: spec for _, spec, _ in load_suite(path).runs()}
    ppo = specs["ppo"].hp
    # the zoo's tuned values (config.yml of that run), the suite's override on top
    assert ppo["learning_rate"] == 2.0633e-05 and ppo["gamma"] == 0.98 and ppo["n_envs"] == 1
    assert ppo["n_epochs"] == 7 and ppo["normalize_reward"] is True
    assert ppo["policy_kwargs"] == {"log_std_init": -2, "ortho_init": False, "activation_fn": "relu"}
    assert "zoo_hyperparameters" not in ppo and "n_timesteps" not in ppo
    assert specs["ppd"].hp["gamma"] == 0.999  # the distillation settings stay PPD's


def references_suite(tmp_path):
    path = tmp_path / "refs.yaml"
    path.write_text(
        "name: refs\nseeds: [0, 1, 2]\nstudents: [smaller]\ntimesteps: 1024\nfinal_episodes: 3\n"
        "envs:\n  - {env: CartPole-v1, teacher: 'package:cartpole-teacher.zip'}\n"
    )
    return load_suite(path)


def test_references_taken_side_by_side_equal_those_taken_one_by_one(tmp_path):
    from ppdistill.bench.execute import prepare_references

    suite = references_suite(tmp_path)
    serial = prepare_references(suite, tmp_path / "serial", log=lambda m: None, jobs=1)
    parallel = prepare_references(suite, tmp_path / "parallel", log=lambda m: None, jobs=2)
    assert serial == parallel
    (item,) = serial.values()
    assert sorted(item["seeds"]) == ["0", "1", "2"]
    # each seed's episodes are its own: a random policy's returns differ from seed to seed
    randoms = [tuple(item["seeds"][s]["random_returns"]) for s in ("0", "1", "2")]
    assert len(set(randoms)) == 3


def test_references_of_another_episode_seeding_are_taken_again_and_current_ones_kept(tmp_path, monkeypatch):
    from ppdistill.bench import execute
    from ppdistill.envs.episode_seeds import SCHEME

    suite = references_suite(tmp_path)
    out = tmp_path / "out"
    first = execute.prepare_references(suite, out, log=lambda m: None)
    (key,) = first
    assert first[key]["episode_seeding"] == SCHEME

    def refuse(task):
        raise AssertionError("references taken again although they were current")

    monkeypatch.setattr(execute, "_score_references", refuse)
    assert execute.prepare_references(suite, out, log=lambda m: None) == first

    stale = json.loads((out / "references.json").read_text())
    del stale[key]["episode_seeding"]  # a folder made when seeds were counted up
    for scores in stale[key]["seeds"].values():
        scores["teacher_score"] = -1.0
    (out / "references.json").write_text(json.dumps(stale))
    monkeypatch.undo()
    lines: list[str] = []
    again = execute.prepare_references(suite, out, log=lines.append)
    assert again == first and any("older episode seeding" in line for line in lines)


def _whole_rollouts(budget: int, hp: dict) -> int:
    rollout = int(hp.get("n_steps", 2048)) * int(hp.get("n_envs", 1))
    return -(-budget // rollout) * rollout


@pytest.mark.parametrize(
    "name", ["claims", "imperfect-calibrated", "imperfect-sigma005", "finetune-choose", "finetune-verify"]
)
def test_reporting_suites_give_every_method_the_same_env_steps(name):
    """SB3 collects whole rollouts: a budget that is not a multiple of a method's rollout gives
    that method more steps (the zoo's 16 x 1024 PPO rollout made 50,000 into 65,536). A
    pipeline's two phases each take whole rollouts of their own."""
    steps: dict[str, set[int]] = {}
    for _, spec, _ in load_suite(REPO / "benchmarks" / "suites" / f"{name}.yaml").runs():
        taken = _whole_rollouts(spec.timesteps, spec.hp)
        if spec.finetune_steps:
            taken += _whole_rollouts(spec.finetune_steps, spec.hp["finetune_hp"])
        steps.setdefault(spec.env_id, set()).add(taken)
    assert all(len(taken) == 1 for taken in steps.values()), steps


def test_a_prepared_teacher_is_kept_even_if_a_later_one_fails(tmp_path, monkeypatch):
    from ppdistill.bench import execute

    path = tmp_path / "two.yaml"
    path.write_text(
        "name: two\nseeds: [0]\nstudents: [smaller]\ntimesteps: 1024\nfinal_episodes: 2\nenvs:\n"
        "  - {env: CartPole-v1, teacher: 'package:cartpole-teacher.zip', corrupt: {sigma: 0.1, seed: 1}}\n"
        "  - {env: CartPole-v1, teacher: 'package:cartpole-teacher.zip', corrupt: {sigma: 0.2, seed: 2}}\n"
    )
    suite = load_suite(path)
    made = []

    def teacher_of(entry, out, log):
        if made:
            raise KeyboardInterrupt  # the session ends while the second teacher is calibrated
        made.append(entry)
        return {"env": entry.env, "teacher": entry.teacher, "sigma": 0.1, "corrupted_from": entry.teacher}

    monkeypatch.setattr(execute, "_teacher_of", teacher_of)
    with pytest.raises(KeyboardInterrupt):
        execute.prepare_references(suite, tmp_path / "out", log=lambda m: None)
    kept = json.loads((tmp_path / "out" / "references.json").read_text())
    assert len(kept) == 1 and next(iter(kept.values()))["sigma"] == 0.1


def halves_suite(tmp_path, frozen=""):
    path = tmp_path / "halves.yaml"
    path.write_text(
        "name: halves\nseeds: [0]\nstudents: [smaller]\nmethods: [ppd]\ntimesteps: 1024\n"
        + frozen
        + "envs:\n"
        "  - {env: CartPole-v1, teacher: 'package:cartpole-teacher.zip', half: tune}\n"
        "  - {env: CartPole-v1, teacher: 'package:cartpole-teacher.zip', half: verify, timesteps: 2048}\n"
    )
    return path


def test_env_runs_some_entries_now_and_the_whole_suite_skips_them_later(tmp_path, capsys):
    from ppdistill.cli.main import main

    path = tmp_path / "two.yaml"
    path.write_text(
        "name: two\nseeds: [0]\nstudents: [smaller]\nmethods: [student-distill]\ntimesteps: 512\n"
        "eval_freq: 512\neval_episodes: 1\nfinal_episodes: 1\nenvs:\n"
        "  - {env: CartPole-v1, teacher: 'package:cartpole-teacher.zip'}\n"
        f"  - {{env: Acrobot-v1, teacher: '{zoo_path('ppo/Acrobot-v1_1')}'}}\n"
    )
    only = load_suite(path).only_envs(["CartPole-v1"])
    assert only.name == "two" and [s.env_id for _, s, _ in only.runs()] == ["CartPole-v1"]
    # where an env has several teachers, ENV[TAG] picks one of them
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text(
        path.read_text().replace("cartpole-teacher.zip'}", "cartpole-teacher.zip', tag: a}")
        + "  - {env: CartPole-v1, tag: b, teacher: 'package:cartpole-teacher.zip'}\n"
    )
    ids = [run_id for run_id, _, _ in load_suite(tagged).only_envs(["CartPole-v1[b]"]).runs()]
    assert len(ids) == 1 and ids[0].endswith("__b")
    assert len(load_suite(tagged).only_envs(["CartPole-v1"]).runs()) == 2
    # an env the suite does not have: one line naming those it has, nothing written
    assert main(["bench", "run", str(path), "--out", str(tmp_path / "out"), "--env", "Pendulum-v1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "its envs: Acrobot-v1, CartPole-v1" in err
    assert not (tmp_path / "out").exists()
    # one entry now (say, the one whose teacher exists); the whole suite later finds it done
    assert main(["bench", "run", str(path), "--out", str(tmp_path / "out"), "--env", "CartPole-v1"]) == 0
    assert [r["spec"]["env_id"] for r in read_records(tmp_path / "out")] == ["CartPole-v1"]
    messages: list[str] = []
    run_suite(load_suite(path), tmp_path / "out", log=messages.append)
    assert any("1 runs already done, 1 to run" in m for m in messages)
    assert sorted(r["spec"]["env_id"] for r in read_records(tmp_path / "out")) == [
        "Acrobot-v1",
        "CartPole-v1",
    ]


def test_a_suite_in_halves_runs_one_half_at_a_time(tmp_path, capsys):
    from ppdistill.cli.main import main

    path = halves_suite(tmp_path)
    tune = load_suite(path).half("tune")
    assert tune.name == "halves-tune" and [s.timesteps for _, s, _ in tune.runs()] == [1024]
    # both halves at once would mix choosing with verifying: refused in one line
    assert main(["bench", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "has a tune and a verify half: run one with --half" in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="has no halves"):
        load_suite(tiny_suite(tmp_path)).half("tune")
    # a half's records say which half they are, and the report names the command that made them
    path.write_text(
        path.read_text().replace("timesteps: 1024\n", "timesteps: 512\neval_episodes: 1\nfinal_episodes: 1\n")
    )
    assert main(["bench", "run", str(path), "--half", "tune", "--out", str(tmp_path / "out")]) == 0
    (record,) = read_records(tmp_path / "out")
    assert (record["suite"], record["half"], record["status"]) == ("halves-tune", "tune", "ok")
    report = build_report(tmp_path / "out", reps=50).read_text()
    assert "`ppdistill bench run benchmarks/suites/halves.yaml --half tune --out " in report


def test_the_verify_half_runs_only_on_the_frozen_defaults(tmp_path, capsys):
    from ppdistill.cli.main import main
    from ppdistill.experiment.config import shipped_config_sha256

    current = shipped_config_sha256()
    with pytest.raises(ConfigError, match=f"write 'frozen_defaults_sha256: \"{current}\"'"):
        load_suite(halves_suite(tmp_path)).half("verify")
    stale = halves_suite(tmp_path, f"frozen_defaults_sha256: '{'ab' * 32}'\n")
    assert main(["bench", "run", str(stale), "--half", "verify", "--out", str(tmp_path / "out")]) == 2
    assert "the defaults changed after freezing" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    frozen = load_suite(halves_suite(tmp_path, f"frozen_defaults_sha256: '{current}'\n")).half("verify")
    assert frozen.name == "halves-verify" and [s.timesteps for _, s, _ in frozen.runs()] == [2048]


def test_several_teachers_of_one_env_are_told_apart_by_their_tags(tmp_path):
    path = tmp_path / "tags.yaml"
    path.write_text(
        "name: tags\nseeds: [0]\nstudents: [smaller]\nmethods: [ppd]\ntimesteps: 1024\nenvs:\n"
        "  - &a {env: CartPole-v1, teacher: 'package:cartpole-teacher.zip', tag: bundled}\n"
        "  - {<<: *a, tag: bundled-imperfect, corrupt: {sigma: 0.1, seeds: [3]}}\n"
    )
    ids = [rid for rid, _, _ in load_suite(path).runs()]
    assert ids == [
        "CartPole-v1__ppd__smaller__s0__bundled",
        "CartPole-v1__ppd__smaller__s0__bundled-imperfect__c3",
    ]
    # the report groups runs by env and tag (the task); without a tag, by env as before
    from ppdistill.bench.execute import _payloads, _references_key
    from ppdistill.bench.stats import task_of

    suite = load_suite(path)
    refs = {_references_key(e): {"teacher": e.teacher, "seeds": {"0": {}}} for _, _, e in suite.runs()}
    tasks = [p["task"] for p in _payloads(suite, refs)]
    assert tasks == ["CartPole-v1 [bundled]", "CartPole-v1 [bundled-imperfect]"]
    assert task_of({"task": tasks[0], "spec": {"env_id": "CartPole-v1"}}) == "CartPole-v1 [bundled]"
    assert task_of({"task": None, "spec": {"env_id": "CartPole-v1"}}) == "CartPole-v1"
    # a corrupted copy's file is named by its tag too (two tags corrupted alike, two files)
    from ppdistill.bench.execute import _teacher_of

    corrupted = suite.envs[1]
    made = _teacher_of(corrupted, tmp_path / "out", log=lambda line: None)
    assert Path(made["teacher"]).name == "CartPole-v1-bundled-imperfect-sigma0.1-seed3.zip"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nenvs: [{env: CartPole-v1, teacher: t.zip, tag: 'a b'}]\n")
    with pytest.raises(ConfigError, match="tag 'a b' may hold letters, digits"):
        load_suite(bad)


def test_a_teacher_scored_with_sampled_actions_has_references_of_its_own(tmp_path, monkeypatch):
    """Under a tag, one teacher may be scored both ways; each entry's runs are normalized by
    references taken its own way, never by the other mode's."""
    from ppdistill.bench import execute

    path = tmp_path / "modes.yaml"
    path.write_text(
        "name: modes\nseeds: [0]\nstudents: [smaller]\nmethods: [ppd]\ntimesteps: 1024\n"
        "final_episodes: 2\nenvs:\n"
        "  - &a {env: CartPole-v1, teacher: 'package:cartpole-teacher.zip'}\n"
        "  - {<<: *a, tag: sampled, deterministic: false}\n"
    )
    suite = load_suite(path)
    argmax, sampled = (execute._references_key(e) for e in suite.envs)
    assert argmax == f"CartPole-v1|{suite.envs[0].teacher}|null"  # keys of existing folders unchanged
    assert sampled == f"{argmax}|sampled"

    def score(task):  # the mode each reference is taken in, as its teacher score
        return {
            "teacher_score": float(task["deterministic"]),
            "original_teacher_score": None,
            "random_score": -1.0,
            "teacher_returns": [],
            "original_teacher_returns": None,
            "random_returns": [],
        }

    monkeypatch.setattr(execute, "_score_references", score)
    references = execute.prepare_references(suite, tmp_path / "out", log=lambda m: None)
    assert references[argmax]["seeds"]["0"]["teacher_score"] == 1.0
    assert references[sampled]["seeds"]["0"]["teacher_score"] == 0.0
    payloads = {p["id"]: p for p in execute._payloads(suite, references)}
    assert payloads["CartPole-v1__ppd__smaller__s0"]["reference"]["teacher_score"] == 1.0
    assert payloads["CartPole-v1__ppd__smaller__s0__sampled"]["reference"]["teacher_score"] == 0.0


def test_a_folder_whose_finished_runs_had_other_settings_is_refused_before_any_work(tmp_path):
    from dataclasses import asdict

    from ppdistill.bench.execute import check_finished_runs

    suite = load_suite(tiny_suite(tmp_path, "methods: [ppd]\n"))
    ((rid, spec, _),) = suite.runs()
    out = tmp_path / "out"
    out.mkdir()

    def finished(**hp):
        record = {"id": rid, "status": "ok", "spec": json.loads(json.dumps(asdict(spec)))}
        record["spec"]["hp"].update(hp)
        record["spec"]["teacher"] = "/another/checkout/teacher.zip"  # where it ran from: not compared
        (out / "records.jsonl").write_text(json.dumps(record) + "\n")

    finished()
    check_finished_runs(suite, out)  # the same settings: resumed
    finished(learning_rate=0.5, n_epochs=99)
    with pytest.raises(PPDistillError, match=f"run {rid} was made with other settings "
                       r"\(hp.learning_rate, hp.n_epochs\)"):  # fmt: skip
        check_finished_runs(suite, out)
    with pytest.raises(PPDistillError, match="other settings"):
        run_suite(suite, out, log=lambda m: None)
    assert not (out / "references.json").exists()  # refused before the references


def test_a_calibrated_corruption_is_scored_on_the_entrys_calibration_episodes(tmp_path, monkeypatch):
    from ppdistill.bench import execute

    path = tmp_path / "c.yaml"
    path.write_text(
        "name: c\nseeds: [0]\nmethods: [ppd]\nstudents: [smaller]\nenvs:\n"
        "  - {env: CartPole-v1, teacher: 'package:cartpole-teacher.zip', "
        "corrupt: {target_fraction: 0.5, seeds: [3], calibration_episodes: 30}}\n"
    )
    (entry,) = load_suite(path).envs
    seen = {}

    def calibrate(source, env_id, target_fraction, **kwargs):
        seen.update(kwargs, target_fraction=target_fraction)
        return {"sigma": 0.125}

    monkeypatch.setattr(execute, "calibrate_sigma", calibrate)
    teacher = execute._teacher_of(entry, tmp_path / "out", log=lambda m: None)
    assert (seen["episodes"], seen["seed"], seen["target_fraction"]) == (30, 3, 0.5)
    assert teacher["sigma"] == 0.125 and Path(teacher["teacher"]).exists()
    # an entry that names none leaves calibrate_sigma its own default
    path.write_text(path.read_text().replace(", calibration_episodes: 30", ""))
    seen.clear()
    execute._teacher_of(load_suite(path).envs[0], tmp_path / "out2", log=lambda m: None)
    assert "episodes" not in seen and seen["seed"] == 3
