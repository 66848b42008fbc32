"""Running a suite: records, resume, retries, and the local and Ray backends.

Layout of an output folder::

    DIR/records.jsonl      one JSON record per finished run (appended by the parent only)
    DIR/references.json    per env: the teacher used; per seed, its score and a random policy's
                           on that seed's final-evaluation episodes
    DIR/teachers/          corrupted teachers of an imperfect suite
    DIR/logs/<run id>.log  a run's stderr (local backend)

A record holds the run's spec, its evaluation curve against env steps, the final score over
``final_episodes`` episodes, the teacher's and a random policy's scores, the normalized
score ``(R - R_random) / (R_teacher - R_random)``, the env steps to reach 90% of the
teacher, wall time, env steps/s, package versions and the machine. Re-running skips the
runs that already have an ``ok`` record. A run that fails is retried once; its error is
recorded, and it never stops the others: the local backend runs every run in its own
process, Ray in its own task.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import torch as th

from ppdistill.bench.stats import normalized, steps_to_fraction
from ppdistill.bench.suite import EnvEntry, Suite
from ppdistill.core.errors import PPDistillError, one_line
from ppdistill.core.extras import require_extra
from ppdistill.core.files import atomic_write, check_out_folder
from ppdistill.core.seeds import SeedPlan
from ppdistill.envs.episode_seeds import SCHEME
from ppdistill.evaluation import evaluate, random_policy_result
from ppdistill.experiment.runner import run
from ppdistill.experiment.spec import RunSpec
from ppdistill.experiment.teacher_prep import calibrate_sigma, corrupt_teacher
from ppdistill.teachers.loading import load_teacher

Backend = Literal["local", "ray"]
RECORDS = "records.jsonl"
REFERENCES = "references.json"
LEGACY_BASELINES = "baselines.json"  # what ppdistill 0.1 called it


def read_records(out: Path) -> list[dict[str, Any]]:
    """All records of an output folder, or of a records file kept aside (a torn last line from a
    killed parent is ignored)."""
    path = Path(out) if Path(out).is_file() else Path(out) / RECORDS
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def _append_record(out: Path, record: dict[str, Any]) -> None:
    with (out / RECORDS).open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def _references_key(entry: EnvEntry) -> str:
    key = f"{entry.env}|{entry.teacher}|{json.dumps(entry.corrupt, sort_keys=True)}"
    # references taken with sampled actions are other numbers than the argmax policy's: their
    # own key, so that neither mode is normalized by the other's (deterministic keys unchanged)
    return key if entry.deterministic else f"{key}|sampled"


def _teacher_of(entry: EnvEntry, out: Path, log: Any) -> dict[str, Any]:
    """The teacher an env entry distills from: the given one, or a corrupted copy of it."""
    if not entry.corrupt:
        return {"env": entry.env, "teacher": entry.teacher, "sigma": None, "corrupted_from": None}
    noise_seed = int(entry.corrupt.get("seed", 0))
    if "target_fraction" in entry.corrupt:
        found = calibrate_sigma(
            Path(entry.teacher),
            entry.env,
            float(entry.corrupt["target_fraction"]),
            seed=noise_seed,
            deterministic=entry.deterministic,
            log=lambda line, env=entry.env: log(f"calibrating {env}: {line}"),
            # calibrate_sigma's own default where the entry names none
            **(
                {"episodes": int(entry.corrupt["calibration_episodes"])}
                if "calibration_episodes" in entry.corrupt
                else {}
            ),
        )
        sigma = float(found["sigma"])
    else:
        sigma = float(entry.corrupt.get("sigma", 0.05))
    # a tag in the name: two tagged teachers of one env corrupted alike must not share a file
    named = entry.env.replace("/", "-") + (f"-{entry.name}" if entry.name else "")
    target = out / "teachers" / f"{named}-sigma{sigma:.4g}-seed{noise_seed}.zip"
    corrupt_teacher(Path(entry.teacher), target, sigma, noise_seed)
    return {"env": entry.env, "teacher": str(target), "sigma": sigma, "corrupted_from": entry.teacher}


def _score_references(task: dict[str, Any]) -> dict[str, Any]:
    """One seed's references (in a worker process with ``jobs`` > 1): the teacher's, the
    uncorrupted teacher's and a random policy's returns on that seed's final episodes."""
    th.set_num_threads(1)
    episodes_seed = SeedPlan(task["seed"]).final_evaluation
    env, episodes, deterministic = task["env"], task["episodes"], task["deterministic"]
    teacher = load_teacher(task["teacher"], env_id=env)
    played = evaluate(teacher, env, episodes, deterministic, seed=episodes_seed)
    randomly = random_policy_result(env, episodes, seed=episodes_seed)
    scores: dict[str, Any] = {
        "teacher_score": played.mean,
        "original_teacher_score": None,
        "random_score": randomly.mean,
        # episode by episode, in the order of their seeds (the students' are too): what the
        # report's paired statistics resample
        "teacher_returns": [float(x) for x in played.returns],
        "original_teacher_returns": None,
        "random_returns": [float(x) for x in randomly.returns],
    }
    if task["original"] is not None:
        original = load_teacher(task["original"], env_id=env)
        uncorrupted = evaluate(original, env, episodes, deterministic, seed=episodes_seed)
        scores["original_teacher_score"] = uncorrupted.mean
        scores["original_teacher_returns"] = [float(x) for x in uncorrupted.returns]
    return scores


def prepare_references(suite: Suite, out: Path, log: Any = print, jobs: int = 1) -> dict[str, dict[str, Any]]:
    """Per env: the teacher (corrupted if the suite says so), and per seed the returns that the
    runs of that seed are normalized by.

    The teacher, the uncorrupted teacher (an imperfect suite's reference) and a random policy
    are each scored on the final evaluation's episodes of that seed
    (``SeedPlan(seed).final_evaluation``, ``final_episodes`` of them), the very episodes the
    students of that seed are scored on, so that a normalized score compares like with like.
    Kept in ``references.json`` and reused when the suite is run again, unless they were
    taken under another episode seeding (:data:`ppdistill.envs.episode_seeds.SCHEME`), when
    they are taken again. Seeds are scored ``jobs`` at a time, each in its own process.

    :param suite: the parsed suite
    :param out: the suite's output folder
    :param log: where progress lines go
    :param jobs: processes scoring seeds side by side
    """
    path = out / REFERENCES
    cached: dict[str, dict[str, Any]] = json.loads(path.read_text()) if path.exists() else {}
    old = out / LEGACY_BASELINES
    if not cached and old.exists():  # a folder of ppdistill 0.1: keep its (corrupted) teachers
        legacy = json.loads(old.read_text())
        cached = {k: {key: v.get(key) for key in ("env", "teacher", "sigma")} for k, v in legacy.items()}
        log(f"{old.name} of ppdistill 0.1: its teachers are kept; scores are taken again, per seed")
    tasks: list[tuple[str, int, dict[str, Any]]] = []
    for entry in suite.envs:
        key = _references_key(entry)
        if key not in cached:
            cached[key] = _teacher_of(entry, out, log)
            # a calibrated corrupted teacher takes minutes: kept at once, not after the last one
            atomic_write(path, json.dumps(cached, indent=2).encode())
        item = cached[key]
        item.setdefault("corrupted_from", entry.teacher if entry.corrupt else None)
        if item.get("episode_seeding") != SCHEME:
            if item.get("seeds"):
                log(f"references {entry.env}: taken under an older episode seeding; taking them again")
            item["seeds"], item["episode_seeding"] = {}, SCHEME
        by_seed: dict[str, Any] = item.setdefault("seeds", {})
        for seed in suite.seeds:
            if str(seed) not in by_seed:
                task = {
                    "env": entry.env,
                    "teacher": item["teacher"],
                    "original": entry.teacher if entry.corrupt else None,
                    "episodes": suite.final_episodes,
                    "deterministic": entry.deterministic,
                    "seed": seed,
                }
                tasks.append((key, seed, task))
    atomic_write(path, json.dumps(cached, indent=2).encode())

    def keep(key: str, seed: int, scores: dict[str, Any]) -> None:
        cached[key]["seeds"][str(seed)] = scores
        atomic_write(path, json.dumps(cached, indent=2).encode())  # each seed kept as it comes
        log(
            f"references {cached[key]['env']}, seed {seed}: teacher {scores['teacher_score']:.1f}"
            + (
                f" (uncorrupted {scores['original_teacher_score']:.1f})"
                if scores["original_teacher_score"] is not None
                else ""
            )
            + f", random {scores['random_score']:.1f}"
        )

    if jobs > 1 and len(tasks) > 1:
        # spawn, not fork: the parent has torch loaded (and maybe its threads started)
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=context) as pool:
            futures = {pool.submit(_score_references, task): (key, seed) for key, seed, task in tasks}
            for future in concurrent.futures.as_completed(futures):
                keep(*futures[future], future.result())
    else:
        for key, seed, task in tasks:
            keep(key, seed, _score_references(task))
    return cached


def _identity(payload: dict[str, Any]) -> dict[str, Any]:
    """The keys that name a run in its record: id, suite, task, and the suite's half if any."""
    half = {"half": payload["half"]} if "half" in payload else {}
    return {"id": payload["id"], "suite": payload["suite"], "task": payload.get("task"), **half}


def execute_run(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one grid point and return its record (never raises)."""
    th.set_num_threads(int(payload.get("threads", 1)))

    spec = RunSpec(**payload["spec"])
    base = payload["reference"]
    record: dict[str, Any] = {
        **_identity(payload),
        "label": payload.get("label", spec.method),
        "spec": asdict(spec),
    }
    t0 = time.perf_counter()
    try:
        result = run(spec, teacher_score=base["teacher_score"], random_score=base["random_score"])
    except BaseException as exc:  # recorded, and the parent retries once
        record.update(
            status="error", error=f"{type(exc).__name__}: {exc}", wall_time_s=time.perf_counter() - t0
        )
        return record
    reference = (
        base["original_teacher_score"]
        if base.get("original_teacher_score") is not None
        else base["teacher_score"]
    )
    result.pop("spec", None)
    record.update(result)
    original = base.get("original_teacher_returns")
    record.update(
        status="ok",
        teacher_path=base["teacher"],
        random_score=base["random_score"],
        reference_score=reference,
        # the references' episodes (same seeds as the student's final ones; None in folders
        # made before they were kept)
        teacher_returns=base.get("teacher_returns"),
        reference_returns=original if original is not None else base.get("teacher_returns"),
        random_returns=base.get("random_returns"),
        normalized_score=normalized(result["score"], reference, base["random_score"]),
        steps_to_90=steps_to_fraction(result["curve"], reference, base["random_score"]),
        wall_time_s=round(time.perf_counter() - t0, 2),
    )
    return record


def _worker_main(payload_file: str, record_file: str) -> None:
    payload = json.loads(Path(payload_file).read_text())
    record = execute_run(payload)
    atomic_write(Path(record_file), json.dumps(record).encode())


def _payloads(suite: Suite, references: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    payloads = []
    for rid, spec, entry in suite.runs():
        item = references[_references_key(entry)]
        base = {"teacher": item["teacher"], **item["seeds"][str(spec.seed)]}
        spec_dict = asdict(spec)
        spec_dict["teacher"] = base["teacher"]
        label = rid.split("__")[1]
        task = f"{entry.env} [{entry.name}]" if entry.name else None
        payloads.append(
            {
                "id": rid,
                "suite": suite.name,
                # so that the report names the command that made it (suite file and --half)
                **({"half": suite.which_half} if suite.which_half else {}),
                "task": task,
                "label": label,
                "spec": spec_dict,
                "reference": base,
            }
        )
    return payloads


def _run_local(todo: list[dict[str, Any]], out: Path, jobs: int) -> Any:
    """Each run in its own process, at most ``jobs`` at a time; yields records as they finish."""
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ppdistill-bench-"))
    queue = list(todo)
    running: list[tuple[subprocess.Popen[bytes], dict[str, Any], Path, Any]] = []
    try:
        yield from _supervise(queue, running, scratch, logs, jobs)
    finally:
        # stopped early (Ctrl-C, SIGTERM, an error): no worker may outlive the parent, running on
        # with no one to collect its record and beside the runs a resume starts again
        for proc, *_ in running:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10.0  # one grace period for all of them, then kill
        for proc, _, _, log in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _supervise(
    queue: list[dict[str, Any]],
    running: list[tuple[subprocess.Popen[bytes], dict[str, Any], Path, Any]],
    scratch: Path,
    logs: Path,
    jobs: int,
) -> Any:
    """Start workers from ``queue`` into ``running``, at most ``jobs`` at a time; yield each
    payload with its record as its worker ends."""
    while queue or running:
        while queue and len(running) < jobs:
            payload = queue.pop(0)
            pfile = scratch / f"{payload['id']}.payload.json"
            rfile = scratch / f"{payload['id']}.record.json"
            rfile.unlink(missing_ok=True)
            pfile.write_text(json.dumps(payload))
            log = (logs / f"{payload['id']}.log").open("ab")
            cmd = [
                sys.executable,
                "-c",
                "import sys; from ppdistill.bench.execute import _worker_main; _worker_main(*sys.argv[1:])",
                str(pfile),
                str(rfile),
            ]
            env = {
                **os.environ,
                "OMP_NUM_THREADS": str(payload.get("threads", 1)),
                "PYTHONWARNINGS": "ignore",
            }
            try:
                proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
            except BaseException:
                log.close()
                raise
            running.append((proc, payload, rfile, log))
        time.sleep(0.2)
        for item in list(running):
            proc, payload, rfile, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            if rfile.exists():
                yield payload, json.loads(rfile.read_text())
            else:  # the process died without a record: a crash (segfault, OOM kill, ...)
                yield (
                    payload,
                    {
                        **_identity(payload),
                        "spec": payload["spec"],
                        "status": "error",
                        "error": f"worker exited with status {proc.returncode} "
                        f"(see logs/{payload['id']}.log)",
                    },
                )


def _run_ray(todo: list[dict[str, Any]], jobs: int, address: str | None) -> Any:
    ray = require_extra("ray", "ray", "the ray backend")
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=jobs, include_dashboard=False, log_to_driver=False)
    remote = ray.remote(num_cpus=1, max_retries=0)(execute_run)
    pending = {remote.remote(p): p for p in todo}
    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            payload = pending.pop(done[0])
            try:
                record = ray.get(done[0])
            except Exception as exc:  # a crashed worker
                record = {
                    **_identity(payload),
                    "spec": payload["spec"],
                    "status": "error",
                    "error": one_line(exc),
                }
            yield payload, record
    finally:
        for ref in pending:  # stopped early: no task may run on with no one to collect its record
            ray.cancel(ref, force=True)
        if started_here:
            ray.shutdown()


def differing_settings(
    now: dict[str, Any], old: dict[str, Any], ignore: tuple[str, ...] = ("teacher",)
) -> list[str]:
    """The settings in which two runs' specs differ (``hp.learning_rate`` for a hyperparameter),
    over the fields both have (a record of an older ppdistill lacks some), less ``ignore``.

    :param now: one spec, as a record holds it
    :param old: the other
    :param ignore: fields not compared (the teacher's path depends on where a suite ran from)
    """
    differ = []
    for k in sorted((now.keys() & old.keys()) - set(ignore)):
        a, b = now[k], old[k]
        if isinstance(a, dict) and isinstance(b, dict):
            differ += [f"{k}.{key}" for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)]
        elif a != b:
            differ.append(k)
    return differ


def check_finished_runs(suite: Suite, out: Path) -> set[str]:
    """The ids of the finished runs in ``out``, refused, before any work, if one was made with
    other settings than the suite now gives it (an edited suite or ``distill.yml``): runs are
    resumed by id, and such a run would be skipped as done and reported beside runs of the new
    settings.

    :param suite: the parsed suite
    :param out: its output folder
    :raises PPDistillError: naming the first such run and the settings that differ
    """
    finished = {r["id"]: r for r in read_records(out) if r.get("status") == "ok"}
    for rid, spec, _ in suite.runs():
        old = finished.get(rid)
        differ = differing_settings(json.loads(json.dumps(asdict(spec))), old["spec"]) if old else []
        if differ:
            raise PPDistillError(
                f"{out}: run {rid} was made with other settings ({', '.join(differ)}) than the suite now "
                "gives it; run the suite into another --out, or remove that run's record to run it again"
            )
    return set(finished)


def run_suite(
    suite: Suite,
    out: Path,
    jobs: int = 1,
    backend: Backend = "local",
    address: str | None = None,
    log: Any = print,
) -> list[dict[str, Any]]:
    """Run every unfinished run of ``suite`` into ``out``; return all records.

    :param suite: the parsed suite
    :param out: output folder (created; an existing one is resumed)
    :param jobs: runs at a time (each uses one CPU thread)
    :param backend: "local" (a process per run) or "ray"
    :param address: an existing Ray cluster (``ray://host:10001`` or ``auto``); None starts a local one
    :param log: where progress lines go
    """
    out = Path(out)
    check_out_folder(out)
    if jobs < 1:
        raise PPDistillError(f"--jobs must be at least 1, got {jobs}")
    out.mkdir(parents=True, exist_ok=True)
    done_ids = check_finished_runs(suite, out)
    references = prepare_references(suite, out, log, jobs=jobs if backend == "local" else 1)
    todo = [p for p in _payloads(suite, references) if p["id"] not in done_ids]
    total = len(todo)
    log(
        f"suite {suite.name}: {len(done_ids)} runs already done, {total} to run, {jobs} at a time ({backend})"
    )
    attempts: dict[str, int] = {}
    t0 = time.perf_counter()
    finished = 0
    while todo:
        retry = []
        runner = _run_local(todo, out, jobs) if backend == "local" else _run_ray(todo, jobs, address)
        with contextlib.closing(runner):  # stopped early: the backend's clean-up runs at once
            for payload, record in runner:
                attempts[payload["id"]] = attempts.get(payload["id"], 0) + 1
                record["attempt"] = attempts[payload["id"]]
                if record["status"] != "ok" and attempts[payload["id"]] < 2:
                    log(f"  {payload['id']}: {record.get('error')} - retrying once")
                    retry.append(payload)
                    continue
                _append_record(out, record)
                finished += 1
                elapsed = time.perf_counter() - t0
                eta = elapsed / finished * (total - finished)
                what = (
                    f"{record['normalized_score']:.2f} of teacher"
                    if record["status"] == "ok"
                    else f"ERROR {record['error']}"
                )
                log(
                    f"[{finished}/{total}] {payload['id']}: {what} ({elapsed:.0f}s elapsed, ~{eta:.0f}s left)"
                )
        todo = retry
    return read_records(out)


def dry_run(suite: Suite, log: Any = print) -> list[str]:
    """List the grid and check what can be checked without running; return the problems found."""
    problems = []
    runs = suite.runs()
    log(
        f"suite {suite.name}: {len(runs)} runs "
        f"({len(suite.envs)} envs x methods x students x {len(suite.seeds)} seeds)"
    )
    steps = 0
    for entry in suite.envs:
        budgets = [spec.total_timesteps for _, spec, e in runs if e is entry]  # a pipeline's both phases
        steps += sum(budgets)
        exists = Path(entry.teacher).exists()
        if not exists:
            problems.append(f"teacher for {entry.env} not found: {entry.teacher}")
        shown = sorted(set(budgets))
        per_run = " or ".join(str(b) for b in shown) if shown else str(entry.timesteps)
        log(
            f"  {entry.env}: {len(budgets)} runs x {per_run} steps, "
            f"students {entry.students}, methods {entry.methods}" + ("" if exists else "  [teacher missing]")
        )
    log(f"  total env steps: {steps:,}")
    return problems
