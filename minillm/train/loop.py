"""The one training loop of every method (nanoGPT-style: read `TrainingLoop.run` top to bottom).

A method is a `TrainingMethod`: it owns its data and its optimizer step (token-level:
`minillm.train.token_step`; on-policy: `minillm.ppo.step`). The loop owns everything else, alike for
all methods: resume, --stop-after-steps, the finite-loss guard's verdict, the logging window,
evaluate-and-save every `eval_interval` steps (checkpoint, best.json, training state), the final
state. A method reports what it trained on in `counters` (tokens by kind), which final.json keeps
for the report's budget table.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Protocol

from minillm.distributed import explain_lost_ranks
from minillm.fileio import atomic_write_json
from minillm.log import peak_memory_mib
from minillm.train import checkpoint
from minillm.train.setup import TrainingSetup, restore_run


@dataclass
class LoopConfig:
    """The loop's own settings (from the run flags of minillm.args)."""
    save: str
    total_steps: int
    eval_interval: int  # optimizer steps between evaluate-and-save
    log_interval: int
    resume: bool = False
    stop_after_steps: int = 0  # 0 = run to the end

    def __post_init__(self):
        if self.total_steps <= 0 or self.eval_interval <= 0 or self.log_interval <= 0:
            raise ValueError(f"total_steps ({self.total_steps}), eval_interval ({self.eval_interval}) and "
                             f"log_interval ({self.log_interval}) must be positive")
        if self.stop_after_steps < 0:
            raise ValueError(f"stop_after_steps must be ≥ 0, got {self.stop_after_steps}")


@dataclass
class StepResult:
    stats: dict[str, float]  # means over the step's global batch; every "loss" / "*_loss" is guarded
    items: list  # what the batch held (dataset items), logged when the step is skipped


class TrainingMethod(Protocol):
    progress_key: str  # the stat shown on the progress bar
    evaluate_at_start: bool  # log the initialisation's numbers as step 0 (not a best candidate)

    def describe(self) -> str:
        """One log line: batches, steps per epoch / collection."""

    def train_step(self, step: int, counters: dict) -> StepResult:
        """One optimizer step (all its micro-batches and engine.step() calls); adds what it
        trained on to `counters`."""

    def evaluate(self, generate: bool) -> dict[str, float]:
        """Validation metrics; generate=False after a non-finite step (sampling would fail)."""

    def position(self, step: int) -> dict:
        """Where step `step` (0-based) lies, for log records, e.g. {"epoch": 2}."""

    def state(self) -> tuple[dict, dict]:
        """(state shared by all ranks, this rank's own state) a resumed run needs."""

    def restore(self, shared: dict, own: dict) -> None:
        """Take back what `state` returned."""


@dataclass
class RunState:
    """What a resumed run needs beyond the weights, optimizer, scheduler and the method's state."""
    step: int = 0
    train_seconds: float = 0.0
    history: list = field(default_factory=list)  # evaluation records
    skipped_steps: int = 0  # non-finite loss or gradient: no optimizer update (minillm.train.guard)
    nonfinite_in_a_row: int = 0  # the guard's count at the save, so a resume cannot reset its limit
    counters: dict = field(default_factory=dict)  # tokens trained on, by kind (the budget table's sources)


class TrainingLoop:
    def __init__(self, config: LoopConfig, setup: TrainingSetup, method: TrainingMethod):
        self.config, self.setup, self.method = config, setup, method
        self.log, self.guard = setup.log, setup.guard
        self.state = RunState()

    def run(self) -> RunState:
        """Train to the end (or --stop-after-steps); a collective that fails because another rank
        died or hung stops this rank with one message naming the step."""
        with explain_lost_ranks(self.setup.dist, lambda: f"after step {self.state.step}"):
            return self._run()

    def _run(self) -> RunState:
        config, method = self.config, self.method
        restored = restore_run(config.resume, config.save, self.setup)
        if restored is not None:
            self.state = RunState(**restored.client_state["train_state"])
            method.restore(restored.client_state["method_state"], restored.rank_state)
            self.guard.in_a_row = self.state.nonfinite_in_a_row
        self.log.info(f"{method.describe()}; {config.total_steps} steps in all, evaluation every "
                      f"{config.eval_interval} steps")
        stop_at = config.total_steps
        if config.stop_after_steps:
            stop_at = min(stop_at, self.state.step + config.stop_after_steps)
        if self.state.step == 0 and method.evaluate_at_start:
            self.log.metrics({"event": "eval", "step": 0, **method.evaluate(generate=True)})
        self.setup.engine.train()
        self.log.progress(config.total_steps, initial=self.state.step)
        window: dict[str, float] = {}  # sums of the finite steps' stats since the last log line
        window_steps = 0
        while self.state.step < stop_at:
            started = time.time()
            result = method.train_step(self.state.step, self.state.counters)
            self.state.step += 1
            self.state.train_seconds += time.time() - started
            step = self.state.step
            losses = [value for name, value in result.stats.items() if name == "loss" or name.endswith("_loss")]
            if self.guard.after_step(step, losses, result.items):
                for name, value in result.stats.items():
                    window[name] = window.get(name, 0.0) + value
                window_steps += 1
            else:
                self.state.skipped_steps += 1
            self.log.advance(1, **{method.progress_key: result.stats.get(method.progress_key)})
            if window_steps and (step % config.log_interval == 0 or step == config.total_steps):
                self.log.metrics({"step": step, **method.position(step - 1),
                                  **{name: total / window_steps for name, total in window.items()},
                                  "lr": self.setup.engine.get_lr()[0], **self._scalar_counters()})
                window, window_steps = {}, 0
            if step % config.eval_interval == 0 or step == config.total_steps:
                self._evaluate_and_save(step)
        self.log.close_progress()
        if self.state.step < config.total_steps and self.state.step % config.eval_interval:
            self._save_state(self.state.step)
            self.log.info(f"stopped at step {self.state.step}; continue with --resume")
        return self.state

    def _scalar_counters(self) -> dict:
        return {name: value for name, value in self.state.counters.items() if not isinstance(value, dict)}

    def _evaluate_and_save(self, step: int) -> None:
        # Sampling from weights that just gave a NaN loss fails on NaN probabilities.
        generate = not self.guard.in_a_row
        if not generate:
            self.log.info(f"step {step}: no generation at this evaluation: the last step's loss was not finite")
        metrics = self.method.evaluate(generate)
        record = {"step": step, **self.method.position(step - 1), **metrics}
        self.state.history.append(record)
        self.log.metrics({"event": "eval", **record})
        path = f"{self.config.save}/{step}"
        setup = self.setup
        checkpoint.save_hf_checkpoint(setup.engine, setup.tokenizer, path, setup.dist.is_main,
                                      setup.valid_set.task["prefix"])
        if setup.dist.is_main:
            improved = checkpoint.update_best(self.config.save, metrics, step, path)
            if improved:
                self.log.info(f"step {step}: new best by {', '.join(improved)} -> {path}")
        self._save_state(step)

    def _save_state(self, step: int) -> None:
        self.state.nonfinite_in_a_row = self.guard.in_a_row
        shared, own = self.method.state()
        checkpoint.save_training_state(self.setup.engine, self.config.save, step,
                                       {"train_state": vars(self.state), "method_state": shared},
                                       self.setup.dist.rank, own)


def finish_run(setup: TrainingSetup, state: RunState) -> None:
    """After a complete run: `final.json` (steps, the counters, time, evaluations, best; epochs
    when the run was sized in epochs) for reports."""
    if setup.dist.is_main and state.step == setup.total_steps:
        # deepspeed_skipped_steps: every update DeepSpeed did not apply, fp16's loss-scale overflows
        # (not failures, see minillm.train.guard) as well as the guard's non-finite steps.
        summary = {"steps": state.step, **state.counters, "skipped_steps": state.skipped_steps,
                   "deepspeed_skipped_steps": int(setup.engine.skipped_steps),
                   "peak_memory_mib": round(peak_memory_mib(setup.dist.device), 1),
                   "train_seconds": round(state.train_seconds, 1), "evaluations": state.history,
                   **({"epochs": round(setup.epochs, 6)} if setup.epochs is not None else {}),
                   "best": checkpoint.read_best(setup.log.run_dir)}
        atomic_write_json(setup.log.run_dir / "final.json", summary)
        setup.log.info(f"done: {state.step} steps; best: {json.dumps(summary['best'])}")
    setup.log.close()
