"""Where stages run: a local pool of processes, or one SLURM job per stage through submitit.

Both run a stage's command the same way (`run_command`: its own process group, output to the
stage's log file) and report its exit status to the driver, which keeps the schedule (a stage
starts once the stages writing its inputs have finished), the records and the swap of outputs
(`stages.StageBook`). An executor only starts, polls and stops commands:

  - `LocalExecutor(jobs)`: up to `jobs` commands side by side on this machine; with one job the
    command's output also streams to the console (progress bars included);
  - `SubmititExecutor("slurm" | "local", folder, ...)`: each command is a submitit job, on the
    cluster (sbatch) or as a local process running the same code path (tests). A job that SLURM
    preempts is requeued by submitit and its command starts again: training resumes from its
    last saved state in the stage's building folder. A job that is killed or cancelled fails;
    rerunning the driver resumes the stage the same way.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Launch:
    name: str
    argv: list[str]
    env: dict[str, str]  # the whole environment of the command
    cwd: Path
    log: Path
    gpus: list[int]  # the GPU ids it holds (local pool)


try:
    from submitit.helpers import Checkpointable
except ImportError:  # submitit is a dependency; without it only the local executor works
    Checkpointable = object


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR2)


def run_command(argv: list[str], env: dict[str, str], cwd: str, log: str) -> int:
    """Run one stage's command in a process group of its own, appending its output to `log`; a
    SIGTERM, SIGINT or SIGUSR2 (SLURM's warning before preemption or the time limit) to this
    process stops the whole group (bash, python and any launcher ranks) before it returns.

    The handlers are in place before the command starts: a signal that arrives while it is being
    started (its first output may already be written) is acted on as soon as it has started, where
    a handler installed afterwards would miss it (a background shell starts us with SIGINT ignored)
    and leave the command running."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    received: list[int] = []
    process: subprocess.Popen | None = None

    def stop(signum, frame):
        received.append(signum)
        if process is not None:
            terminate_group(process)
            raise SystemExit(128 + signum)
    previous = {signum: signal.signal(signum, stop) for signum in STOP_SIGNALS}
    try:
        with open(log, "ab") as sink:
            process = subprocess.Popen(argv, env=env, cwd=cwd, stdout=sink, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        if received:
            terminate_group(process)
            raise SystemExit(128 + received[0])
        return process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StageJob(Checkpointable):
    """A stage's command as a submitit job; requeued as it is when SLURM preempts it, so that the
    command starts again and resumes from its last saved state."""

    def __call__(self, argv: list[str], env: dict[str, str], cwd: str, log: str) -> int:
        return run_command(argv, env, cwd, log)


def _tee(process: subprocess.Popen, sink) -> None:
    out = sys.stdout.buffer
    for chunk in iter(lambda: process.stdout.read1(1 << 14), b""):
        sink.write(chunk)
        sink.flush()
        out.write(chunk)
        out.flush()


def terminate_group(process: subprocess.Popen, grace: float = 30.0) -> None:
    """SIGTERM to the command's process group, SIGKILL after `grace` seconds."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


class LocalExecutor:
    name = "local"

    def __init__(self, jobs: int):
        self.jobs = jobs

    def submit(self, launch: Launch):
        echo = self.jobs == 1
        if echo:  # the driver's own thread streams the output
            handle = _Thread(launch)
            handle.start()
            return handle
        log = open(launch.log, "ab")
        process = subprocess.Popen(launch.argv, env=launch.env, cwd=launch.cwd, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        log.close()
        return process

    def poll(self, handle) -> int | None:
        return handle.poll()

    def stop(self, handle) -> None:
        if isinstance(handle, _Thread):
            handle.stop()
        else:
            terminate_group(handle)


class _Thread(threading.Thread):
    """One command whose output streams to the console while it is logged."""

    def __init__(self, launch: Launch):
        super().__init__(daemon=True)
        self.launch, self.status, self.process = launch, None, None

    def run(self) -> None:
        with open(self.launch.log, "ab") as sink:
            self.process = subprocess.Popen(self.launch.argv, env=self.launch.env, cwd=self.launch.cwd,
                                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            _tee(self.process, sink)
            self.status = self.process.wait()

    def poll(self) -> int | None:
        return None if self.is_alive() else self.status

    def stop(self) -> None:
        if self.process is not None:
            terminate_group(self.process)
        self.join()


class SubmititExecutor:
    """One submitit job per stage: SLURM (`kind="slurm"`) or local processes (`kind="local"`)."""

    def __init__(self, kind: str, folder: Path, jobs: int, threads: int, gpus: int, time_min: int,
                 partition: str | None = None, extra: dict[str, str] | None = None):
        try:
            import submitit
        except ImportError as err:
            raise SystemExit("error: EXECUTOR=slurm needs submitit (pip install submitit==1.5.4, "
                             "a dependency of this package: rerun install.sh)") from err
        self.name = f"submitit-{kind}"
        self.jobs = jobs
        if kind == "slurm":
            self.executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
            parameters = {"timeout_min": time_min, "cpus_per_task": threads, "gpus_per_node": gpus,
                          "tasks_per_node": 1, "nodes": 1, "name": "minillm-stage"}
            if partition:
                parameters["slurm_partition"] = partition
            if extra:
                parameters["slurm_additional_parameters"] = extra
        else:
            self.executor = submitit.LocalExecutor(folder=folder)
            parameters = {"timeout_min": time_min}
        self.executor.update_parameters(**parameters)

    def submit(self, launch: Launch):
        # submitit's local controller stops its job on SIGINT (that is what cancel sends); started by a
        # process that ignores SIGINT (nohup, a background shell) it would ignore it too, and a stopped
        # stage would run on. A handler, unlike SIG_IGN, is not inherited.
        ignored = self.name == "submitit-local" and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        previous = signal.signal(signal.SIGINT, signal.default_int_handler) if ignored else None
        try:
            return self.executor.submit(StageJob(), launch.argv, launch.env, str(launch.cwd), str(launch.log))
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def poll(self, job) -> int | None:
        if not job.done():
            return None
        try:
            return int(job.result())
        except Exception:  # the job died (killed, cancelled, out of time): its submitit logs say why
            return 1

    def where(self, job) -> str:
        return f"submitit job {job.job_id}, logs {job.paths.stdout.parent}"

    def stop(self, job) -> None:
        job.cancel(check=False)
