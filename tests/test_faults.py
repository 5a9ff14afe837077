"""Runs that cannot silently go wrong (issue 12): each numbered reproduction of the issue, and a
fault-injection test that stops a run at every phase of a save.

Training runs in this process (one process group for the module) to keep the file fast; a
"kill" is an exception raised from `checkpoint.save_phase_hook` at the chosen phase, which stops
the run exactly there (a kill's one extra effect, the temporary folder an atomic save leaves
behind, is planted by hand).
"""
from __future__ import annotations

import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from world import MAX_LENGTH, MAX_PROMPT_LENGTH, REPO, load_tool

import train_minillm
import train_sft
from minillm.data.datasets import TokenDataset
from minillm.eval.evaluation import load_eval_set
from minillm.losses import divergence
from minillm.modeling import load_model, load_tokenizer
from minillm.ppo import losses as ppo
from minillm.train import checkpoint
from minillm.train.guard import SkippingAdamW

PROCESS_DOLLY = load_tool("process_data_dolly")
STEPS, EVAL_EVERY = 6, 2


class SimulatedKill(BaseException):
    """Raised at a save phase: nothing after it runs, as after kill -9."""


def in_process(main, argv: list[str]) -> None:
    """An entrypoint's main in this process; the environment it sets (RANK, ...) is put back after."""
    saved = dict(os.environ)
    try:
        main(argv)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def sft(world, save: Path, *extra: str, data: Path | None = None) -> None:
    in_process(train_sft.main, [
        "--model-path", str(world.student), "--data-dir", str(data or world.processed), "--save", str(save),
        "--max-length", str(MAX_LENGTH), "--max-prompt-length", str(MAX_PROMPT_LENGTH), "--batch-size", "8",
        "--micro-batch-size", "8", "--lr", "3e-3", "--total-steps", str(STEPS), "--eval-interval",
        str(EVAL_EVERY), "--eval-gen-num", "-1", "--log-interval", "1", "--dropout", "0", *extra])


@pytest.fixture(scope="module", autouse=True)
def one_process_group():
    yield
    if dist.is_initialized():
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def straight(world, tmp_path_factory) -> Path:
    """The uninterrupted run every other run is compared with."""
    save = tmp_path_factory.mktemp("straight") / "run"
    sft(world, save)
    return save


def weights(run: Path, step: int = STEPS) -> dict[str, torch.Tensor]:
    return load_file(run / str(step) / "model.safetensors")


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in open(run / "log.jsonl")]


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


# -- 1. NaN / inf ---------------------------------------------------------------------------------

def test_a_diverging_run_skips_non_finite_steps_then_stops_and_never_records_nan_as_best(world, tmp_path):
    save = tmp_path / "diverge"
    with pytest.raises(SystemExit, match=r"3 optimizer steps in a row had a non-finite loss"):
        sft(world, save, "--lr", "1e20", "--total-steps", "40", "--max-nonfinite-steps", "3")
    skips = [r for r in records(save) if r.get("event") == "skip"]
    assert len(skips) == 3 and skips[0]["reason"] == "non-finite loss" and len(skips[0]["items"]) == 8
    assert all(math.isfinite(entry["value"]) for entry in checkpoint.read_best(save).values())
    assert "non-finite loss; optimizer step skipped" in (save / "log.txt").read_text()



def test_a_resume_keeps_counting_the_non_finite_steps_in_a_row(world, tmp_path):
    save = tmp_path / "diverge"
    diverging = ("--lr", "1e20", "--total-steps", "40", "--max-nonfinite-steps", "3")
    sft(world, save, *diverging, "--stop-after-steps", "3")  # step 1 blows the weights up; 2 and 3 are skipped
    assert len([r for r in records(save) if r.get("event") == "skip"]) == 2
    with pytest.raises(SystemExit, match=r"steps 2-4: 3 optimizer steps in a row"):
        sft(world, save, *diverging, "--resume")

def test_a_diverging_minillm_run_skips_and_stops_too(world, tmp_path):
    assert process(world.data, tmp_path / "prompts", world.tokenizer, "--dev-num", "40", "--only-prompt") == 0
    save = tmp_path / "minillm"
    with pytest.raises(SystemExit, match=r"1 optimizer steps in a row had a non-finite loss"):
        in_process(train_minillm.main, [
            "--model-path", str(world.student), "--teacher-model-path", str(world.teacher),
            "--data-dir", str(tmp_path / "prompts" / "t"), "--save", str(save), "--max-length", str(MAX_LENGTH),
            "--max-prompt-length", str(MAX_PROMPT_LENGTH), "--max-new-tokens", "8", "--num-rollouts", "8",
            "--batch-size", "4", "--micro-batch-size", "4", "--ppo-epochs", "1", "--rollout-batch-size", "8",
            "--total-steps", "4", "--eval-gen-num", "2", "--lr", "1e20", "--warmup-steps", "0",
            "--max-nonfinite-steps", "1"])
    skip, = [r for r in records(save) if r.get("event") == "skip"]
    assert skip["step"] == 2 and len(skip["items"]) == 8  # the collection's (task stream, item) prompts


def test_sampling_from_diverged_weights_says_so():
    from transformers import GPT2Config, GPT2LMHeadModel

    from minillm.eval.generation import SamplingConfig, sample
    model = GPT2LMHeadModel(GPT2Config(vocab_size=20, n_layer=1, n_head=1, n_embd=8, n_positions=16)).eval()
    with torch.no_grad():
        model.lm_head.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="weights have diverged"):
        sample(model, torch.ones(1, 2, dtype=torch.long), torch.ones(1, 2, dtype=torch.long),
               SamplingConfig(max_new_tokens=2), eos_token_id=0, pad_token_id=0, generator=torch.Generator())


def test_skipping_adamw_leaves_weights_and_moments_untouched_on_a_nan_gradient():
    layer = torch.nn.Linear(3, 2)
    optimizer = SkippingAdamW(layer.parameters(), lr=0.1)
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    before = ([p.detach().clone() for p in layer.parameters()],
              [s["exp_avg"].clone() for s in optimizer.state.values()])
    layer.weight.grad.fill_(float("nan"))
    optimizer.step()
    assert optimizer.overflow
    assert all(torch.equal(a, b) for a, b in zip(before[0], layer.parameters()))
    assert all(torch.equal(a, s["exp_avg"]) for a, s in zip(before[1], optimizer.state.values()))


def test_best_json_ignores_nan(tmp_path):
    assert checkpoint.update_best(tmp_path, {"valid_loss": float("nan")}, 4, tmp_path / "4") == []
    assert checkpoint.update_best(tmp_path, {"valid_loss": 2.0}, 8, tmp_path / "8") == ["valid_loss"]
    assert checkpoint.update_best(tmp_path, {"valid_loss": float("-inf")}, 12, tmp_path / "12") == []
    assert checkpoint.best_checkpoint(tmp_path, "valid_loss") == tmp_path / "8"


def test_a_tie_goes_to_the_lower_validation_loss_then_the_later_step(tmp_path):
    """Issue 23: every validation Rouge-L 0.0, and the earlier step was picked though the later
    one had the lower validation loss."""
    history = [{"step": 2, "rougeL": 0.0, "valid_loss": 5.0}, {"step": 4, "rougeL": 0.0, "valid_loss": 4.0},
               {"step": 6, "rougeL": 0.0, "valid_loss": 4.0}, {"step": 8, "rougeL": 0.0, "valid_loss": 4.5}]
    for record in history:
        checkpoint.update_best(tmp_path, record, record["step"], tmp_path / str(record["step"]))
    assert checkpoint.best_checkpoint(tmp_path, "rougeL") == tmp_path / "6"
    assert checkpoint.best_checkpoint(tmp_path, "valid_loss") == tmp_path / "6"
    written = (tmp_path / "best.json").read_text()
    checkpoint.rebuild_best(tmp_path, history)  # a resume rebuilds it by the same rule
    assert (tmp_path / "best.json").read_text() == written
    on_policy = [{"step": 3, "rougeL": 0.0}, {"step": 6, "rougeL": 0.0}]  # MiniLLM logs no validation loss
    checkpoint.rebuild_best(tmp_path / "minillm", on_policy)
    assert checkpoint.best_checkpoint(tmp_path / "minillm", "rougeL") == tmp_path / "minillm" / "6"


def test_best_json_holds_paths_relative_to_its_run_folder_and_old_absolute_ones_still_read(straight, tmp_path):
    for record in (json.loads((straight / "best.json").read_text()),
                   json.loads((straight / "final.json").read_text())["best"]):
        assert record["valid_loss"]["path"] == str(STEPS)
    moved = copy_run(straight, tmp_path / "moved")  # e.g. built in a temporary folder, then renamed
    assert checkpoint.resolve_checkpoint(moved, "valid_loss") == moved / str(STEPS)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "best.json").write_text(json.dumps({"rougeL": {"value": 1.0, "step": 4,
                                                                       "path": str(moved / "4")}}))
    assert checkpoint.best_checkpoint(tmp_path / "old", "rougeL") == moved / "4"


def test_minillm_single_step_term_and_rewards_are_finite_for_minus_inf_teacher_logits():
    torch.manual_seed(0)
    student = torch.randn(2, 3, 7, requires_grad=True)
    teacher = torch.randn(2, 3, 7)
    mask = torch.ones(2, 3)
    plain = ppo.single_step_regulariser(student, teacher, mask, 7)
    assert torch.equal(plain, divergence("reverse_kl", student, teacher, mask, reduction="rows", vocab_size=7).sum())
    teacher[0, 1, 2] = -float("inf")  # the teacher forbids one token here
    teacher[1, 0, :3] = -float("inf")  # and three there
    regulariser = ppo.single_step_regulariser(student, teacher, mask, 7)
    regulariser.backward()
    assert torch.isfinite(regulariser) and torch.isfinite(student.grad).all()
    assert regulariser > plain.detach()  # the forbidden tokens still cost the student
    teacher_logprobs = torch.tensor([[-float("inf"), -1.0]])
    reward = ppo.rewards(teacher_logprobs, torch.tensor([[-2.0, -2.0]]), torch.ones(1, 2))
    assert torch.equal(reward, torch.tensor([[-100.0, 2.0]]))


# -- 2. one run per folder ------------------------------------------------------------------------

def test_a_folder_that_holds_a_run_is_refused_without_resume_and_replaced_with_overwrite(world, straight, tmp_path):
    save = copy_run(straight, tmp_path / "reused")
    with pytest.raises(SystemExit, match="already holds a run .*--resume .*--overwrite"):
        sft(world, save, "--lr", "2e-3")
    (save / "planted").write_text("from the old run")
    sft(world, save, "--lr", "2e-3", "--total-steps", "2", "--overwrite")
    assert not (save / "planted").exists() and not (save / "4").exists()
    assert checkpoint.read_best(save)["valid_loss"]["step"] == 2


HOLDER = """
import fcntl, json, os, socket, sys, time
handle = open(os.path.join(sys.argv[1], "run.lock"), "a+")
fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
handle.truncate(0)
handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "2026-01-01 10:00:00"}))
handle.flush()
print("holding", flush=True)
time.sleep(120)
"""


def test_a_run_folder_another_live_process_writes_is_refused_and_a_dead_ones_lock_taken_over(world, straight,
                                                                                              tmp_path):
    """Issue 23: a second start in a live run folder (a double launch) wrote it alongside the first."""
    save = copy_run(straight, tmp_path / "busy")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(save)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        with pytest.raises(SystemExit, match=rf"{re.escape(str(save))} is being written by another live process "
                                             rf"\(pid {holder.pid} on .*, started 2026-01-01 10:00:00\)"):
            sft(world, save, "--resume")
    finally:
        holder.kill()
        holder.wait()
    sft(world, save, "--resume", "--eval-interval", "3")  # the holder died: its lock is taken over, and said so
    assert re.search(rf"took over .*run.lock from pid {holder.pid} .*started 2026-01-01 10:00:00.*no longer running",
                     (save / "log.txt").read_text())


# -- 3 + the fault-injection test: resume state ---------------------------------------------------

KILLS = [("model_written", 2), ("model_saved", 2), ("best_updated", 2), ("engine_state_written", 4),
         ("rank_state_written", 4), ("pointer_moved", 4), ("model_saved", 6)]


def test_a_run_killed_at_every_save_phase_resumes_to_the_uninterrupted_weights(world, straight, tmp_path,
                                                                                monkeypatch):
    assert {phase for phase, _ in KILLS} == set(checkpoint.SAVE_PHASES)
    save = tmp_path / "killed"
    for phase, step in KILLS:
        def hook(reached: str, at: int, phase=phase, step=step):
            if (reached, at) == (phase, step):
                raise SimulatedKill(f"{phase}@{step}")
        monkeypatch.setattr(checkpoint, "save_phase_hook", hook)
        with pytest.raises(SimulatedKill):
            sft(world, save, "--resume")  # the driver's way: --resume from the very first run
        if phase == "model_written":  # a kill in the middle of the model save leaves a full-size temporary folder
            shutil.copytree(straight / str(step), save / f".{step}.k1ll3d00")
    monkeypatch.setattr(checkpoint, "save_phase_hook", None)
    sft(world, save, "--resume")
    for name, tensor in weights(straight).items():
        assert torch.equal(tensor, weights(save)[name]), name
    log = records(save)
    assert [r["step"] for r in log if "event" not in r] == list(range(1, STEPS + 1))
    assert [r["step"] for r in log if r.get("event") == "eval"] == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    assert ({k: (v["value"], v["step"]) for k, v in checkpoint.read_best(save).items()}
            == {k: (v["value"], v["step"]) for k, v in checkpoint.read_best(straight).items()})
    assert not list(save.glob(".*")) and [p.name for p in (save / "resume").glob("step*")] == [f"step{STEPS}"]
    text = (save / "log.txt").read_text()
    assert "a temporary file of a save that was interrupted" in text
    assert "passed over step4" in text  # killed after DeepSpeed's files: step4 had no manifest


def test_a_damaged_newest_state_is_passed_over_and_said_so(world, straight, tmp_path):
    """The issue's reproduction: the newest state loses rank0.pt. It was complete, so older
    states were pruned: the run restarts from step 0 (and says why) instead of failing forever."""
    save = copy_run(straight, tmp_path / "damaged")
    (save / "resume" / f"step{STEPS}" / "rank0.pt").unlink()
    sft(world, save, "--resume", "--stop-after-steps", "1")
    text = (save / "log.txt").read_text()
    assert f"passed over step{STEPS}" in text and "rank0.pt" in text and "starting from step 0" in text
    assert [r["step"] for r in records(save)] == [1] and not (save / "best.json").exists()
    assert not (save / str(STEPS)).exists()


# -- 4. changed settings --------------------------------------------------------------------------

def test_resume_refuses_changed_settings_and_lists_them(world, straight, tmp_path, tiny_tokenizer_dir):
    save = copy_run(straight, tmp_path / "changed")
    with pytest.raises(SystemExit) as refused:
        sft(world, save, "--resume", "--lr", "6e-3", "--batch-size", "16", data=other_tokenizer_data(
            world, tiny_tokenizer_dir, tmp_path))
    message = str(refused.value)
    assert "--lr: 0.003 -> 0.006" in message and "--batch-size: 8 -> 16" in message
    assert "--data-dir: content changed" in message
    sft(world, save, "--resume", "--eval-interval", "3", "--log-interval", "2",
        "--compile-decode")  # what cannot change results


# -- 5. crafted resume state ----------------------------------------------------------------------

class Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


@pytest.mark.parametrize("target", ["rank0.pt", "mp_rank_00_model_states.pt"])
def test_a_planted_pickle_never_runs(world, straight, tmp_path, target):
    save = copy_run(straight, tmp_path / "planted")
    state = save / "resume" / f"step{STEPS}"
    marker = tmp_path / "marker"
    (state / target).write_bytes(pickle.dumps({"rng": Payload(marker)}))
    sft(world, save, "--resume", "--stop-after-steps", "1")  # sha256 differs: passed over
    assert not marker.exists() and "sha256 differs" in (save / "log.txt").read_text()
    if target == "rank0.pt":  # even with a forged manifest, our state loads as weights only
        shutil.rmtree(save)
        save = copy_run(straight, tmp_path / "forged")
        state = save / "resume" / f"step{STEPS}"
        (state / target).write_bytes(pickle.dumps({"rng": Payload(marker)}))
        checkpoint.write_manifest(state)
        with pytest.raises(ValueError, match=r"rank0.pt: refused: .*not only tensors and plain values"):
            sft(world, save, "--resume")
        assert not marker.exists()


# -- no silent hang: a stale build lock, a rank that hangs or dies ---------------------------------

PEERS = """
import datetime, os, sys, time
import torch
import torch.distributed as dist
from minillm.distributed import bound_collective_waits, init_distributed
rank = init_distributed().rank
print("started", flush=True)
group = dist.new_group(ranks=[0, 1])  # as DeepSpeed makes its data-parallel group (timeout: torch's 30 min)
bound_collective_waits(datetime.timedelta(seconds=3))
dist.all_reduce(torch.ones(2), group=group)
if rank == 1:
    time.sleep(60)  # hung
start = time.time()
try:
    dist.all_reduce(torch.ones(2), group=group)
except RuntimeError as err:
    print(f"gave up after {time.time() - start:.0f} s: {str(err)[:200]}")
"""


def test_ranks_start_past_a_stale_build_lock_and_a_hung_rank_holds_the_others_no_longer_than_the_timeout(tmp_path):
    """Issue 23: (1) a build of DeepSpeed's CPU op killed mid-way leaves deepspeed_shm_comm/lock,
    and every later start (one process too) waited on it forever: the op serves only DeepSpeed's
    tensor-parallel inference, so no run builds, loads or waits for it. (2) Probed: a rank stopped
    mid-training held the other in ZeRO's gradient all-reduce past DEEPSPEED_TIMEOUT, as
    DeepSpeed's data-parallel group had torch's 30 minutes."""
    (tmp_path / "deepspeed_shm_comm").mkdir()
    (tmp_path / "deepspeed_shm_comm" / "lock").touch()
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(REPO), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port), "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    ranks = [subprocess.Popen([sys.executable, "-c", PEERS], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(2)]
    try:
        output = ranks[0].communicate(timeout=90)[0]
    finally:
        for rank in ranks:
            rank.kill()
            rank.wait()
    assert "started" in output and "deepspeed_shm_comm" not in output, output[-2000:]
    assert re.search(r"gave up after [345] s: .*Timed out", output), output[-2000:]


def test_a_failed_collective_stops_the_run_with_a_message_naming_the_step():
    from minillm.distributed import DistInfo, explain_lost_ranks
    two_ranks = DistInfo(0, 2, 0, torch.device("cpu"))
    lost = RuntimeError("[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:30863: "
                        "Connection reset by peer. This is typically caused by a remote worker hanging")
    with pytest.raises(SystemExit, match=r"rank 0 after step 7: a collective operation with the other ranks failed "
                                         r"\(.*Connection reset by peer.*\): another rank died or stopped answering"
                                         r".*--resume"):
        with explain_lost_ranks(two_ranks, lambda: "after step 7"):
            raise lost
    with pytest.raises(RuntimeError, match="Read error"):  # one process: nothing to explain
        with explain_lost_ranks(DistInfo(0, 1, 0, torch.device("cpu")), lambda: "after step 7"):
            raise lost
    with pytest.raises(ValueError):  # not a collective's failure
        with explain_lost_ranks(two_ranks, lambda: "after step 7"):
            raise ValueError("bad value")


# -- load errors name the file ---------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty"])
def test_a_damaged_safetensors_file_is_an_error_naming_it(world, tmp_path, damage):
    model = Path(shutil.copytree(world.student, tmp_path / "model"))
    weights_file = model / "model.safetensors"
    content = weights_file.read_bytes()
    weights_file.write_bytes({"truncated": content[:len(content) // 2], "empty": b"",
                              "random bytes": np.random.default_rng(0).bytes(len(content))}[damage])
    with pytest.raises(ValueError, match=rf"{re.escape(str(weights_file))}: not a readable safetensors file"):
        load_model(model)


def test_a_damaged_tokenizer_file_is_an_error_naming_its_folder(world, tmp_path):
    tokenizer = Path(shutil.copytree(world.tokenizer, tmp_path / "tokenizer"))
    content = (tokenizer / "tokenizer.json").read_bytes()
    (tokenizer / "tokenizer.json").write_bytes(content[:len(content) // 2])
    with pytest.raises(ValueError, match=rf"tokenizer {re.escape(str(tokenizer))}: cannot be loaded \(JSONDecodeError"):
        load_tokenizer(tokenizer)


def test_a_model_folder_without_safetensors_weights_is_refused_with_the_way_to_convert(world, tmp_path):
    """README: model folders load from safetensors; the loader fell back to pytorch_model.bin."""
    model = Path(shutil.copytree(world.student, tmp_path / "model"))
    torch.save(load_file(model / "model.safetensors"), model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=rf"{re.escape(str(model))} holds no safetensors weights "
                                                r"\(found pytorch_model.bin\).*save_pretrained"):
        load_model(model)


# -- 6. data provenance ---------------------------------------------------------------------------

def process(data_dir: Path, out: Path, tokenizer: Path, *extra: str) -> int:
    return PROCESS_DOLLY.main(["--data-dir", str(data_dir), "--processed-data-dir", str(out), "--model-path",
                               str(tokenizer), "--model-type", "t", "--max-prompt-length", str(MAX_PROMPT_LENGTH),
                               "--max-length", str(MAX_LENGTH), *extra])


def other_tokenizer_data(world, tokenizer: Path, tmp_path: Path) -> Path:
    assert process(world.data, tmp_path / "other", tokenizer, "--dev-num", "40") == 0
    return tmp_path / "other" / "t"


def test_data_from_another_tokenizer_is_refused_naming_both(world, tmp_path, tiny_tokenizer_dir):
    data = other_tokenizer_data(world, tiny_tokenizer_dir, tmp_path)
    with pytest.raises(ValueError, match=rf"tokenized with {tiny_tokenizer_dir} .* model's tokenizer is "
                                         rf"{world.student}"):
        sft(world, tmp_path / "run", data=data)


def test_a_tokenizer_folder_swapped_after_processing_is_refused(world, tmp_path, tiny_tokenizer_dir):
    """The same path, another tokenizer: the manifest's vocabulary hash tells them apart."""
    tokenizer = Path(shutil.copytree(world.tokenizer, tmp_path / "tokenizer"))
    assert process(world.data, tmp_path / "data", tokenizer, "--dev-num", "40") == 0
    shutil.rmtree(tokenizer)
    shutil.copytree(tiny_tokenizer_dir, tokenizer)
    with pytest.raises(ValueError, match=rf"the tokenizer folder {re.escape(str(tokenizer))} changed since the data "
                                         rf"was processed \(800 tokens, .*\) -> \(400 tokens, .*\); reprocess"):
        sft(world, tmp_path / "run", "--tokenizer-path", str(tokenizer), data=tmp_path / "data" / "t")


def test_corrupted_token_bytes_are_refused_naming_file_and_item(world, tmp_path):
    data = Path(shutil.copytree(world.processed, tmp_path / "data"))
    dataset = TokenDataset(data, "train", MAX_LENGTH)
    offset = int(dataset.indexed.pointers[7]) + 2 * 3  # uint16 ids: the 4th token of item 7
    with open(data / "train_0.bin", "r+b") as handle:
        handle.seek(offset)
        handle.write(b"\xfe\xff")
    with pytest.raises(ValueError, match=r"train_0.bin: item 7 holds token id 65534, outside the vocabulary"):
        TokenDataset(data, "train", MAX_LENGTH).check_token_ids(len(load_tokenizer(world.tokenizer)))


def write_rows(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "raw.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


ROWS = [{"instruction": f"Add {i} and {i}.", "input": "", "output": f"It is {2 * i}.", "rationale": f"{i}+{i}",
         "answer": str(2 * i)} for i in range(6)]


def test_processing_replaces_the_whole_folder_and_records_a_manifest(tmp_path, tiny_tokenizer_dir):
    data = write_rows(tmp_path / "raw", ROWS)
    assert process(data, tmp_path / "out", tiny_tokenizer_dir, "--dev-num", "2", "--task", "label") == 0
    assert (tmp_path / "out" / "t" / "task.json").is_file()
    assert process(data, tmp_path / "out", tiny_tokenizer_dir, "--dev-num", "0") == 0
    out = tmp_path / "out" / "t"
    assert sorted(p.name for p in out.iterdir()) == ["data_manifest.json", "train.jsonl", "train_0.bin",
                                                     "train_0.idx"]
    manifest = json.loads((out / "data_manifest.json").read_text())
    assert manifest["tokenizer"]["path"] == str(tiny_tokenizer_dir) and manifest["settings"]["dev_num"] == 0
    assert manifest["sources"] == {str(data / "raw.jsonl"): checkpoint.file_sha256(data / "raw.jsonl")}
    assert manifest["splits"] == {"train": 6} and not list((tmp_path / "out").glob(".*"))


@pytest.mark.parametrize(("content", "extra", "expected"), [
    (b'{"instruction": "a", "output": "b"}\n{"instruction": "\xff", "output": "b"}\n', (),
     r"raw.jsonl:2: not valid UTF-8"),
    (b"", (), r"raw.jsonl holds only 0 rows, all taken as validation rows by --dev-num 1000"),
    (b'{"instruction": "a", "output": "b"}\n', ("--dev-num", "5"),
     r"raw.jsonl holds only 1 rows, all taken as validation rows by --dev-num 5: .*smaller --dev-num"),
])
def test_bad_raw_input_is_an_error_naming_the_file(tmp_path, tiny_tokenizer_dir, capsys, content, extra, expected):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "raw.jsonl").write_bytes(content)
    assert process(tmp_path / "raw", tmp_path / "out", tiny_tokenizer_dir, *extra) == 1
    error = capsys.readouterr().err
    assert re.search(expected, error) and "Traceback" not in error
    assert not (tmp_path / "out" / "t").exists()


def manifest_counts(out: Path) -> dict:
    return json.loads((out / "t" / "data_manifest.json").read_text())["counts"]


def test_processing_counts_dropped_empty_duplicated_and_cut_rows_and_records_them(tmp_path, tiny_tokenizer_dir,
                                                                                 capsys):
    rows = [*ROWS[:2],
            {"instruction": "Describe the fox. " * 40, "input": "", "output": "dropped: prompt too long"},
            ROWS[3], ROWS[3],  # a duplicate
            {"instruction": "Add 1 and 1.", "input": "", "output": " ", "gold_output": "2"},  # a teacher's empty answer
            {"instruction": "Write a lot.", "input": "", "output": "Llamas jump over foxes. " * 40}]
    assert process(write_rows(tmp_path / "raw", rows), tmp_path / "out", tiny_tokenizer_dir, "--dev-num", "1") == 0
    train = manifest_counts(tmp_path / "out")["train"]
    assert {k: train[k] for k in ("rows", "kept", "dropped_long_prompt", "duplicate_rows", "empty_outputs",
                                  "cut_at_max_length")} == {"rows": 6, "kept": 5, "dropped_long_prompt": 1,
                                                            "duplicate_rows": 1, "empty_outputs": 1,
                                                            "cut_at_max_length": 1}
    assert train["longest_response"] > MAX_LENGTH - 20 and train["max_length"] == MAX_LENGTH
    printed = capsys.readouterr().out
    assert "[train]   duplicates of an earlier row (kept): 1" in printed
    assert f"[train]   responses that training cuts at --max-length {MAX_LENGTH}: 1 of 5" in printed


@pytest.mark.parametrize(("row", "expected"), [
    ({"instruction": "Name it.", "input": "", "output": " \n"},
     r"raw.jsonl:3: field 'output': empty or whitespace only .*--allow-empty-outputs"),
    ({"instruction": " ", "input": "", "output": "An answer."},
     r"raw.jsonl:3: field 'instruction': empty or whitespace only, as is 'input'"),
])
def test_empty_outputs_and_prompts_are_refused_naming_file_line_and_field(tmp_path, tiny_tokenizer_dir, capsys,
                                                                         row, expected):
    data = write_rows(tmp_path / "raw", [*ROWS[:2], row, *ROWS[2:]])
    assert process(data, tmp_path / "out", tiny_tokenizer_dir, "--dev-num", "1") == 1
    assert re.search(expected, capsys.readouterr().err) and not (tmp_path / "out" / "t").exists()
    if row["instruction"].strip():  # an empty output is kept (and counted) when a user asks for it
        assert process(data, tmp_path / "out", tiny_tokenizer_dir, "--dev-num", "1", "--allow-empty-outputs") == 0
        assert manifest_counts(tmp_path / "out")["train"]["empty_outputs"] == 1


@pytest.mark.parametrize("writer", ["generate_rationales", "generate"])
def test_a_teacher_stage_that_wrote_no_training_row_is_named_in_the_error(tmp_path, tiny_tokenizer_dir, capsys,
                                                                          writer):
    """Issue 23: "raw.jsonl: 2 rows, none left for train after the first 2" said nothing of why."""
    data = write_rows(tmp_path / "teacher-rows", ROWS[:2])  # the gold validation rows only
    if writer == "generate_rationales":
        (data / "raw.meta.json").write_text(json.dumps({"model": "runs/dss-teacher/seed10/40", "rows": 6,
                                                        "gold_rows": 2, "generated_rows": 4,
                                                        "teacher_rows_written": 0, "rows_dropped": 4}))
        (data / "raw.stats.json").write_text(json.dumps({"rows": 6, "teacher_rows_written": 0, "rows_dropped": 4}))
        said = [r"written by tools/generate_rationales.py", r"teacher runs/dss-teacher/seed10/40",
                r"0 of its 4 generated rows usable", r"raw.stats.json"]
    else:
        (data / "generation.json").write_text(json.dumps({"teacher": "runs/teacher/seed10/40", "source": "raw/x.jsonl",
                                                          "rows": 2, "gold_rows": 2, "generated_rows": 0,
                                                          "empty_responses": 0}))
        said = [r"written by tools/generate.py", r"teacher runs/teacher/seed10/40", r"0 generated rows",
                r"raw/x.jsonl"]
    assert process(data, tmp_path / "out", tiny_tokenizer_dir, "--dev-num", "2") == 1
    error = capsys.readouterr().err
    assert re.search(r"raw.jsonl holds only 2 rows, all taken as validation rows by --dev-num 2", error), error
    for text in said:
        assert re.search(text, error), (text, error)


GOOD_EVAL_ROW = b'{"instruction": "Name a colour.", "input": "", "output": "Red.", "answer": "red"}\n'


@pytest.mark.parametrize(("line", "expected"), [
    (b'{"instruction": "Name a colour.", "input": ""}', r"valid.jsonl:2: field 'output': missing"),
    (b'{"instruction": "Name a colour.", "output": 7}',
     r"valid.jsonl:2: field 'output': expected a string or a list of strings, got int"),
    (b'{"instruction": "Name a colour.", "output": ["Red.", 7]}',
     r"valid.jsonl:2: field 'output': expected a string or a list of strings, got a list holding int"),
    (b'{"prompt": ["Name a colour."], "output": "Red."}', r"valid.jsonl:2: field 'prompt': expected a string, got list"),
    (b'{"instruction": "Name a colour.", "input": null, "output": "Red."}',
     r"valid.jsonl:2: field 'input': expected a string, got NoneType"),
    (b'{"instruction": "Name a colour.", "output": "Red.", "answer": 3}',
     r"valid.jsonl:2: field 'answer': expected a string, got int"),
    (b'{"prompt": " ", "output": "Red."}', r"valid.jsonl:2: field 'prompt': empty"),
    (b'{"instruction": "", "input": " ", "output": "Red."}', r"valid.jsonl:2: field 'instruction': empty"),
    (b'{"instruction": "Name a colour \xff.", "output": "Red."}', r"valid.jsonl:2: not valid UTF-8"),
    (b'["Name a colour.", "Red."]', r"valid.jsonl:2: expected a JSON object, got list"),
])
def test_bad_eval_set_rows_are_refused_naming_file_line_and_field(tmp_path, line, expected):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "valid.jsonl").write_bytes(GOOD_EVAL_ROW + line + b"\n" + GOOD_EVAL_ROW)
    with pytest.raises(ValueError, match=expected):
        load_eval_set(tmp_path, "tiny")


def test_evaluate_refuses_a_bad_eval_set_with_one_line_naming_the_row(world, tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "valid.jsonl").write_bytes(GOOD_EVAL_ROW + b'{"prompt": "", "output": "Red."}\n')
    import evaluate
    with pytest.raises(SystemExit, match=r"^error: .*valid.jsonl:2: field 'prompt': empty"):
        in_process(evaluate.main, ["--model-path", str(world.student), "--data-root", str(tmp_path), "--save",
                                   str(tmp_path / "eval"), "--eval-sets", "tiny", "--seeds", "10"])


def test_an_empty_eval_set_names_its_file(tmp_path):
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "valid.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"tiny/valid.jsonl: eval set 'tiny' has no rows"):
        load_eval_set(tmp_path, "tiny")
