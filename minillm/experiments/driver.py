"""The main command: settings → plan → checks → stages → report.

    python -m minillm.experiments.driver [BASE_PATH] [MASTER_PORT] [GPUS_PER_NODE] [--force] [--dry-run]
    (scripts/run_comparison.sh is this, with MiniLLM's positional arguments)

PRESET picks the preset (tiny, gpt2, custom, stories); every setting can be overridden by an
environment variable of its name (`python -m minillm.experiments.settings --markdown tiny` lists
them). Before the first stage the settings are parsed and checked (every problem at once, each
naming its variable), the plan is built from the method registry, and the WORK folder is locked
against a second driver. Stages run side by side (JOBS) as their inputs become ready, locally or
as SLURM jobs (EXECUTOR); each one is skipped, resumed or run as `minillm/experiments/stages.py`
decides, with a log of its own under RESULTS/logs/. The driver's own log is RESULTS/driver.log
(and driver.jsonl, one JSON event per line); the plan it ran is RESULTS/driver.json, which the
report reads. SIGTERM or Ctrl-C stops the running stages (their building folders stay, so the
next run resumes them) and releases the lock.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from minillm.experiments import preflight
from minillm.experiments.executors import Launch, LocalExecutor, SubmititExecutor
from minillm.experiments.plan import Plan
from minillm.experiments.settings import DriverSettings, InstructionSettings, describe, env_name
from minillm.experiments.stages import (
    PLACEMENT_VARIABLES,
    REPO_ROOT,
    ContentHashes,
    Decision,
    Stage,
    StageBook,
    StageError,
    building_env,
    rewrite_outputs,
)
from minillm.fileio import atomic_write_json
from minillm.locks import HolderLock, LockHeld, describe as describe_holder

# The machine's own variables, passed to every stage; anything else a user exports is not (each
# stage gets its settings from the driver, so that its fingerprint holds all of them).
SYSTEM_NAMES = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "HOSTNAME",
                "VIRTUAL_ENV", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "http_proxy", "https_proxy", "no_proxy",
                "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "NNODES", "HOSTFILE", "MASTER_ADDR", "COLUMNS", "LINES"}
SYSTEM_PREFIXES = ("LC_", "PYTHON", "PYENV", "CONDA", "CUDA", "NCCL", "NVIDIA", "TORCH", "HF_", "TRANSFORMERS_",
                   "SLURM", "OPENBLAS", "KMP_", "XDG_", "DS_", "OMPI_", "PMI", "UCX_", "SSL_", "REQUESTS_", "PIP_")
POLL_SECONDS = 0.2
PROGRESS_SECONDS = 30.0


class Interrupted(Exception):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Say:
    """The driver's voice: the console, RESULTS/driver.log and RESULTS/driver.jsonl."""

    def __init__(self, results: Path | None):
        self.started = time.time()
        self.text = self.events = None
        if results is not None:
            results.mkdir(parents=True, exist_ok=True)
            self.text = open(results / "driver.log", "a")
            self.events = open(results / "driver.jsonl", "a")

    def clock(self) -> str:
        seconds = int(time.time() - self.started)
        return f"[{seconds // 60}m{seconds % 60:02d}s]"

    def __call__(self, line: str, event: str = "note", stream=None, **fields) -> None:
        print(line, file=stream or sys.stdout, flush=True)
        if self.text:
            self.text.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
            self.text.flush()
            self.events.write(json.dumps({"time": round(time.time(), 3), "event": event, **fields}) + "\n")
            self.events.flush()

    def close(self) -> None:
        for handle in (self.text, self.events):
            if handle:
                handle.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_path", nargs="?", default=".", help="the repository root (MiniLLM's BASE_PATH)")
    parser.add_argument("master_port", nargs="?", type=int, help="first port of multi-GPU stages")
    parser.add_argument("gpus_per_node", nargs="?", type=int, help="GPUs of every stage (STAGE_GPUS)")
    parser.add_argument("--force", action="store_true", help="rerun every stage (FORCE=1 too)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (one JSON line per stage: name, command, variables) and run nothing")
    return parser.parse_args(argv)


def system_environment(environ: dict[str, str], settings: DriverSettings, plan: Plan) -> dict[str, str]:
    """The variables of the machine every stage inherits; settings and stage variables excluded."""
    own = {env_name(name) for name, *_ in describe(settings)} | {name for stage in plan.stages for name in stage.env}
    return {name: value for name, value in environ.items()
            if (name in SYSTEM_NAMES or name.startswith(SYSTEM_PREFIXES)) and name not in own}


def exported_stage_variables(environ: dict[str, str], settings: DriverSettings, plan: Plan) -> list[str]:
    """Exported variables that the driver sets per stage itself (e.g. SEED, SAVE_PATH, EXTRA_ARGS)
    and that are no setting: a user who exports one expects it to matter, and it would not."""
    settings_names = {name for name, *_ in describe(settings)}
    stage_names = {name for stage in plan.stages for name in stage.env} - settings_names - set(PLACEMENT_VARIABLES)
    return sorted(name for name in stage_names if name in environ)


@dataclass
class Running:
    stage: Stage
    decision: Decision
    handle: object
    started: float
    log: Path
    gpus: list[int]


class Driver:
    def __init__(self, settings: DriverSettings, plan: Plan, environ: dict[str, str], force: bool, say: Say,
                 master_port: int | None):
        self.s, self.plan, self.force, self.say = settings, plan, force, say
        self.system = system_environment(environ, settings, plan)
        self.hashes = ContentHashes(settings.work / ".driver" / "content-hashes.json")
        self.book = StageBook(settings.results / "stages", self.hashes)
        self.logs = settings.results / "logs"
        self.port = master_port or (20000 + random.randrange(20000))
        self.executor = self._executor()
        self.free_gpus = self._gpus()

    def _executor(self):
        s = self.s
        if s.executor == "local":
            return LocalExecutor(s.jobs)
        extra = dict(word.split("=", 1) for word in (s.slurm_args or "").split())
        return SubmititExecutor("slurm" if s.executor == "slurm" else "local", s.results / "submitit", s.jobs,
                                s.stage_threads, s.stage_gpus, s.slurm_time, s.slurm_partition, extra)

    def _gpus(self) -> list[int]:
        if self.s.executor != "local":
            return []
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            return [int(d) for d in visible.split(",") if d.strip()]
        from minillm.experiments.settings import _gpu_count
        return list(range(_gpu_count()))

    def environment(self, stage: Stage, building: dict[Path, Path], gpus: list[int]) -> dict[str, str]:
        env = dict(self.system)
        python_path = os.pathsep.join(filter(None, [str(self.s.base_path), self.system.get("PYTHONPATH")]))
        env.update({"PYTHONPATH": python_path, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                    "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": str(stage.threads),
                    "MKL_NUM_THREADS": str(stage.threads)})
        env.update(building_env(stage.env, building))
        self.port = 20000 + (self.port - 20000 + 1) % 40000
        env["MASTER_PORT"] = str(self.port)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpus))
        return env

    def argv(self, stage: Stage, building: dict[Path, Path], gpus: list[int]) -> list[str]:
        argv = rewrite_outputs(stage.command, building)
        if argv[0] != "python":
            return argv
        if len(gpus) > 1 and stage.kind == "eval":  # evaluate.py shards prompts over ranks
            return ["deepspeed", "--num_gpus", str(len(gpus)), "--master_port", str(self.port), *argv[1:]]
        return [sys.executable, *argv[1:]]

    def run_stages(self, stages: list[Stage]) -> bool:
        """Run (or skip) `stages` as their inputs become ready, at most JOBS at a time; True when
        every one finished. After a failure no new stage starts; running ones finish."""
        producers = {stage.name: [p.name for p in self.plan.producers(stage)] for stage in stages}
        names = {stage.name for stage in stages}
        pending = list(stages)
        done: set[str] = set()
        running: dict[str, Running] = {}
        failed: list[str] = []
        last_progress = 0.0
        try:
            while pending or running:
                started_any = False
                if not failed:
                    for stage in list(pending):
                        if len(running) >= self.s.jobs:
                            break
                        if any(dep not in done for dep in producers[stage.name] if dep in names):
                            continue
                        pending.remove(stage)
                        outcome = self.start(stage)
                        if outcome is None:
                            done.add(stage.name)
                        elif isinstance(outcome, Running):
                            running[stage.name] = outcome
                            started_any = True
                        else:
                            failed.append(stage.name)
                            break
                finished = self.collect(running, done, failed)
                if failed and not running:
                    break
                if not finished and not started_any:
                    if pending and not running and not failed:
                        raise StageError(f"stages {', '.join(s.name for s in pending)} wait for inputs no stage writes")
                    if self.s.jobs > 1 and time.time() - last_progress > PROGRESS_SECONDS and running:
                        self.progress(running, done, pending)
                        last_progress = time.time()
                    time.sleep(POLL_SECONDS)
        except Interrupted as stop:
            for entry in running.values():
                self.executor.stop(entry.handle)
                self.say(f"{self.say.clock()} [stage {entry.stage.name}] stopped ({stop}); its building folder "
                         f"stays and the next run resumes it", "stopped", stage=entry.stage.name)
            raise
        finally:
            self.hashes.save()
        if failed:
            self.say(f"{self.say.clock()} stopped after the failure of {', '.join(failed)}"
                     + (f"; not started: {', '.join(s.name for s in pending)}" if pending else ""), "failed",
                     stages=failed)
        return not failed

    def start(self, stage: Stage) -> Running | None | bool:
        """Skip (None), start (its Running) or fail before starting (False)."""
        try:
            decision = self.book.decide(stage, self.force)
        except StageError as err:
            self.say(f"{self.say.clock()} {err}", "failed", stream=sys.stderr, stage=stage.name)
            return False
        if decision.skip:
            record = self.book.record(stage.name) or {}
            self.say(f"[stage {stage.name}] skipped: outputs exist and inputs are unchanged (took "
                     f"{record.get('seconds') or 0:.0f} s on {record.get('finished_at')}; FORCE=1 reruns)", "skipped",
                     stage=stage.name)
            return None
        gpus = self.take_gpus(stage)
        self.book.begin(decision)
        log = self.logs / f"{stage.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as handle:
            handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {stage.name}: {decision.reason}\n")
        launch = Launch(stage.name, self.argv(stage, decision.building, gpus),
                        self.environment(stage, decision.building, gpus), REPO_ROOT, log, gpus)
        verb = "resuming an interrupted run with the same inputs" if decision.resume else f"running ({decision.reason})"
        self.say(f"\n=== {self.say.clock()} {stage.name}\n[stage {stage.name}] {verb}", "started", stage=stage.name,
                 reason=decision.reason, log=str(log))
        return Running(stage, decision, self.executor.submit(launch), time.time(), log, gpus)

    def take_gpus(self, stage: Stage) -> list[int]:
        if not self.free_gpus:
            return []
        count = min(self.s.stage_gpus, len(self.free_gpus))
        taken, self.free_gpus = self.free_gpus[:count], self.free_gpus[count:]
        return taken

    def collect(self, running: dict[str, Running], done: set[str], failed: list[str]) -> bool:
        finished = False
        for name, entry in list(running.items()):
            status = self.executor.poll(entry.handle)
            if status is None:
                continue
            finished = True
            del running[name]
            self.free_gpus += entry.gpus
            seconds = time.time() - entry.started
            if status == 0:
                try:
                    self.book.complete(entry.decision, seconds, entry.log)
                except StageError as err:
                    failed.append(name)
                    self.say(f"{self.say.clock()} [stage {name}] failed its check: {err}", "failed",
                             stream=sys.stderr, stage=name)
                    continue
                done.add(name)
                self.say(f"{self.say.clock()} [stage {name}] done in {seconds:.0f} s", "done", stage=name,
                         seconds=round(seconds, 1))
            else:
                failed.append(name)
                tail = "" if self.s.jobs == 1 and self.s.executor == "local" else self.tail(entry.log)
                where = self.executor.where(entry.handle) if hasattr(self.executor, "where") else str(entry.log)
                self.say(f"{self.say.clock()} [stage {name}] failed with exit status {status} (log: {entry.log}; "
                         f"{where}){tail}\nA crash of the machine needs only a rerun of the driver (this stage "
                         f"resumes); anything else needs its cause fixed first", "failed", stream=sys.stderr,
                         stage=name, status=status)
        return finished

    @staticmethod
    def tail(log: Path, lines: int = 30) -> str:
        text = log.read_text(errors="replace").splitlines()[-lines:] if log.is_file() else []
        return "".join(f"\n  | {line}" for line in text)

    def progress(self, running: dict[str, Running], done: set[str], pending: list[Stage]) -> None:
        now = time.time()
        busy = ", ".join(f"{name} ({now - entry.started:.0f} s)" for name, entry in running.items())
        self.say(f"{self.say.clock()} {len(done)} done · running: {busy} · {len(pending)} waiting", "progress")


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def main(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int:
    args = parse_args(argv)
    environ = dict(os.environ if environ is None else environ)
    base_path = Path(args.base_path).resolve()
    preset = environ.get("PRESET", "tiny")
    overrides = {"stage_gpus": args.gpus_per_node} if args.gpus_per_node else {}
    force = args.force or environ.get("FORCE", "0") not in ("", "0")
    try:
        settings, plan = preflight.load_plan(preset, base_path, environ, overrides)
    except preflight.PlanError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    problems = preflight.settings_problems(settings, plan)
    stray = exported_stage_variables(environ, settings, plan)
    problems += [f"{name}={environ[name]!r} is exported, but the driver sets {name} for each stage itself, so it "
                 f"would change nothing; unset it (the settings are listed by `python -m minillm.experiments.settings "
                 f"--markdown {preset}`)" for name in stray]
    if problems:
        print("error: the comparison cannot run with these settings (nothing was started):", file=sys.stderr)
        print("\n".join(f"  - {problem}" for problem in problems), file=sys.stderr)
        return 1
    if args.dry_run:
        for note in plan.notes:
            print(note)
        for stage in plan.stages:
            print(json.dumps({"name": stage.name, "command": stage.command, "env": stage.env,
                              "inputs": [str(p) for p in stage.inputs], "outputs": [str(p) for p in stage.outputs],
                              "threads": stage.threads}))
        return 0
    lock = HolderLock(settings.work / ".driver.lock")
    try:
        previous = lock.acquire()
    except LockHeld as held:
        print(f"error: another driver is running on WORK={settings.work}: {describe_holder(held.holder)}. Wait "
              f"for it to finish or stop it (kill {held.holder.get('pid', 'its pid')}); two drivers on one WORK "
              f"would write the same run folders", file=sys.stderr)
        return 1
    say = Say(settings.results)
    previous_handlers = {signum: signal.signal(signum, _raise_interrupted) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        if previous:
            say(f"took over the lock of a driver that is gone ({describe_holder(previous)})", "lock")
        return run(settings, plan, environ, force, say, args.master_port)
    except Interrupted as stop:
        say(f"{say.clock()} stopped by {stop}: the lock is released; rerun to resume", "interrupted")
        return 128 + stop.signum
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
        say.close()
        lock.release()


def run(settings: DriverSettings, plan: Plan, environ: dict[str, str], force: bool, say: Say,
        master_port: int | None) -> int:
    s = settings
    say(f"preset {s.preset}: results in {s.results}; executor {s.executor}, {s.jobs} stage(s) at a time, "
        f"{s.stage_threads} thread(s) each", "plan")
    say("settings: " + " ".join(f"{name}={shlex.quote(value)}" + ("" if source == "preset" else f" ({source})")
                                for name, value, source in describe(s)), "settings")
    for note in plan.notes:
        say(note)
    if isinstance(s, InstructionSettings):
        say(f"budget: teacher {s.teacher_epochs} epochs; DSS teacher +{s.dss_teacher_epochs} epochs; every "
            f"token-level student {s.student_epochs} epochs of global batch {s.batch_size} questions; on-policy arms "
            f"+{s.minillm_steps} steps ({s.num_rollouts} rollouts per collection, mini-batch {s.mini_batch}) from "
            f"the student they continue; methods: {' '.join(plan.record['methods'])}; training seeds "
            f"{' '.join(map(str, s.train_seeds))}")
    driver = Driver(s, plan, environ, force, say, master_port)
    first = [stage for stage in plan.stages if stage.name == "inputs"]
    if isinstance(s, InstructionSettings):
        if first and not driver.run_stages(first):
            return 1
        problems = preflight.model_problems(s, plan)
        if not problems:
            report, missing = preflight.cost_estimate(s, plan)
            if missing:
                say(f"warning: {missing}", "warning")
            else:
                say(f"cost estimate:\n{report.table()}", "estimate", seconds=round(report.total_seconds, 1),
                    wall_seconds=round(report.wall_seconds, 1), jobs=s.jobs, gflops=report.gflops)
                for warning in report.warnings:
                    say(f"warning: {warning}", "warning")
                problems = report.refusals
        if problems:
            say("error: the comparison cannot run with these models (nothing else was started):\n"
                + "\n".join(f"  - {problem}" for problem in problems), "refused", stream=sys.stderr)
            return 1
    atomic_write_json(s.results / "driver.json", plan.record)
    if not driver.run_stages([stage for stage in plan.stages if stage not in first]):
        return 1
    say(f"\n=== {say.clock()} report", "report")
    if plan.report:
        import subprocess
        env = driver.environment(Stage("report", [], []), {}, [])
        status = subprocess.run([sys.executable, *plan.report[1:]], cwd=REPO_ROOT, env=env).returncode
        if status:
            return status
    table = s.results / "comparison" / "comparison.md"
    if not plan.report and table.is_file():
        print(table.read_text(), end="")
    say(f"{say.clock()} done", "done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
