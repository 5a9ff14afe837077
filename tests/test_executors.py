"""The WORK lock (minillm/locks.py) and the executors (minillm/experiments/executors.py): a held
lock names its holder, a dead holder's lock is taken over; a stage killed inside a submitit job
resumes from its building folder when the driver runs it again."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minillm.experiments.executors import Launch, LocalExecutor, SubmititExecutor
from minillm.experiments.stages import ContentHashes, Stage, StageBook
from minillm.locks import HolderLock, LockHeld

HOLD = "import sys, time; from minillm.locks import HolderLock; lock = HolderLock(sys.argv[1]); lock.acquire(); print('held', flush=True); time.sleep(60)"


def test_a_held_lock_names_its_holder_and_a_dead_holders_lock_is_taken_over(tmp_path):
    path = tmp_path / ".driver.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld) as caught:
        HolderLock(path).acquire()
    assert caught.value.holder["pid"] == holder.pid and "started_at" in caught.value.holder
    holder.send_signal(signal.SIGKILL)  # dies without releasing: the kernel frees the flock
    holder.wait()
    lock = HolderLock(path)
    assert lock.acquire()["pid"] == holder.pid  # what the driver reports as taken over
    lock.release()
    assert HolderLock(path).acquire() is None  # a clean release leaves no holder behind


# A stage that needs two attempts: the first writes `partial` and waits to be killed, the second
# finds it (a resumed training run finds its saved state) and finishes.
RESUMABLE = ("import pathlib, sys, time; out = pathlib.Path(sys.argv[1]); out.mkdir(exist_ok=True); "
             "p = out / 'partial'; "
             "(out / 'done').write_text('resumed') if p.exists() else (p.touch(), time.sleep(120))")


def wait_for(poll, what: str, seconds: float = 120.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = poll()
        if value is not None and value is not False:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.parametrize("kind", ["local-pool", "submitit-local"])
def test_a_killed_stage_resumes_in_its_building_folder(tmp_path, kind, request):
    # started as nohup and background shells start processes, with SIGINT ignored: stop must still stop
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    request.addfinalizer(lambda: signal.signal(signal.SIGINT, ignored))
    stage = Stage("job", [sys.executable, "-c", RESUMABLE, str(tmp_path / "out")], [tmp_path / "out"],
                  resumable=True)
    book = StageBook(tmp_path / "stages", ContentHashes(None))
    executor = LocalExecutor(2) if kind == "local-pool" else SubmititExecutor(
        "local", tmp_path / "submitit", jobs=2, threads=1, gpus=0, time_min=10)

    def submit():
        decision = book.decide(stage)
        book.begin(decision)
        argv = [word.replace(str(tmp_path / "out"), str(decision.building[tmp_path / "out"])) for word in stage.command]
        launch = Launch("job", argv, dict(os.environ), tmp_path, tmp_path / "job.log", [])
        return decision, executor.submit(launch)

    decision, handle = submit()
    building = decision.building[tmp_path / "out"]
    wait_for(lambda: (building / "partial").exists(), "the first attempt to start")
    executor.stop(handle)  # preempted, cancelled, killed
    assert wait_for(lambda: executor.poll(handle), "the killed job to end") != 0
    assert not (tmp_path / "out").exists() and (building / "partial").exists()
    decision, handle = submit()
    assert decision.resume
    assert wait_for(lambda: executor.poll(handle) == 0 or None, "the second attempt") is True
    book.complete(decision, 1.0)
    assert (tmp_path / "out" / "done").read_text() == "resumed"


# run_command in a process that starts with SIGINT ignored (as a background shell starts it) and
# receives SIGTERM while subprocess.Popen starts the command (simulated: Popen sends it on return).
SIGNAL_WHILE_STARTING = """
import os, signal, subprocess, sys
from minillm.experiments import executors
signal.signal(signal.SIGINT, signal.SIG_IGN)
real_popen = subprocess.Popen
def popen_then_signal(*args, **kwargs):
    process = real_popen(*args, **kwargs)
    print(process.pid, flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    return process
executors.subprocess.Popen = popen_then_signal
executors.run_command([sys.executable, "-c", "import time; time.sleep(120)"], dict(os.environ), ".", sys.argv[1])
"""


def test_a_signal_that_arrives_while_the_command_starts_stops_it(tmp_path):
    started = time.time()
    result = subprocess.run([sys.executable, "-c", SIGNAL_WHILE_STARTING, str(tmp_path / "job.log")],
                            capture_output=True, text=True, timeout=90,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    child = int(result.stdout.split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # stopped (and reaped), not left sleeping
    assert time.time() - started < 60
