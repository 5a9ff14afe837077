"""What a comparison will cost and whether its answers fit, known before its first stage: FLOPs
per stage from the models' shapes and the token counts, a time estimate for this machine, and
the reference responses' token lengths against the generation budget. Pure functions of their
arguments (the lengths take a tokenizer); `model_shape` reads a config and `matmul_gflops`
times this machine. The comparison driver's preflight prints them.

FLOPs per token (Kaplan et al. 2020 §2.1; Hoffmann et al. 2022 App. F): a forward pass costs
2·N + 4·L·T·d, where N counts the parameters a token is multiplied by (every block and the
output layer; not the embedding lookup: a tied embedding counts once, as the output layer, so
a large vocabulary weighs in full), L the layers, d the width and T the attended context (the
attention scores and the weighted values). Training costs 3 forwards (backward = 2): 6·N per
token. A method that runs a teacher adds the teacher's forward on the same tokens. Generation
with a KV cache costs the prompt once, then one forward per new token over its growing context.

Besides the matmuls, every token touches a row of logits as long as the vocabulary several times
(softmax, cross-entropy and their gradients, a divergence against the teacher's row, sampling):
memory-bound work that FLOPs do not see and that dominates with a vocabulary of 150K tokens.
`logit_elements` counts it (tokens × vocabulary × passes, `LOGIT_PASSES`). A sampled token costs
more: torch.multinomial draws one exponential random number per vocabulary entry (~30 ns each on
this machine's CPU, one thread whatever the stage's count, against ~1 ns for a softmax element):
`draw_elements` counts those (sampled tokens × vocabulary; greedy decoding draws none).

Time on this machine: seconds = launch + steps · per step + decoding steps · per decoding step
+ FLOPs / (G₀ · efficiency) + logit elements · per element + draw elements · per draw, fitted
(`CALIBRATION`) to the tiny preset's stage times and the custom preset's CPU recipes (GPT-2 on
dolly, Llama with Qwen2's tokenizer on GSM8K) on 2 idle CPU cores whose matmul probe reads G₀ on
one thread; on a machine whose probe (`matmul_gflops`, about one second, on the
stages' thread count) reads G, all of it scales by G₀ / G (benchmarks/budget_calibration.py;
docs/own-models.md gives the figures). `wall_seconds` turns the stages' times into the wall time
of the driver's schedule with JOBS stages side by side.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from minillm.data.templates import CHAIN_OF_THOUGHT_CONCLUSION, build_task_prompt
from minillm.metrics import ANSWER_MARKERS, find_answer_marker

GENERATION_BATCH_TOKENS = 65536  # evaluate.py / the samplers: rows × (prompt + new tokens) per batch
STAGE_KINDS = ("teacher-sft", "student-sft", "kd", "generation", "minillm", "evaluation")
# Passes over a token's row of logits: a forward (logits, log-softmax), training (and their
# gradients), a divergence against a teacher's row (its log-softmax, the divergence, its
# gradient), a sampled or greedy token (softmax, the draw).
LOGIT_PASSES = {"forward": 2, "train": 4, "divergence": 6, "sample": 3}


# ---------------------------------------------------------------- model shapes and FLOPs

@dataclass(frozen=True)
class ModelShape:
    """What the cost of a model depends on."""
    parameters: int  # every parameter, as quoted
    matmul_parameters: int  # those a token is multiplied by: the blocks and the output layer
    vocab: int
    layers: int
    width: int

    def forward_flops(self, context: float) -> float:
        """FLOPs of one token's forward pass attending to `context` tokens."""
        return 2.0 * self.matmul_parameters + 4.0 * self.layers * context * self.width


def model_shape(path: str | Path) -> ModelShape:
    """The shape of a config.json or a model folder, counted on the meta device (no weights are
    read or allocated, so a 1.5B config takes a second)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(path, local_files_only=True)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    embeddings = [module for module in model.modules() if isinstance(module, torch.nn.Embedding)]
    looked_up = sum(module.weight.numel() for module in embeddings)
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is model.get_input_embeddings().weight
    parameters = model.num_parameters()
    return ModelShape(parameters=parameters,
                      matmul_parameters=parameters - looked_up + (output.weight.numel() if tied else 0),
                      vocab=config.vocab_size, layers=config.num_hidden_layers, width=config.hidden_size)


@dataclass(frozen=True)
class Data:
    """A set of rows by its mean token lengths (prompt, and response with its EOS); `per_item`: the
    rows one training item brings (a DSS question: its label row and, where it has one, its rationale
    row), so a batch of items holds that many rows."""
    rows: float
    prompt: float
    response: float
    per_item: float = 1.0

    @property
    def sequence(self) -> float:
        return self.prompt + self.response

    @property
    def items(self) -> float:
        return self.rows / self.per_item


@dataclass(frozen=True)
class StageCost:
    """What one stage computes: FLOPs, and the counts its fixed per-step costs scale with."""
    name: str
    kind: str  # one of STAGE_KINDS
    model: ModelShape  # the model trained, generating or evaluated
    tokens: float  # tokens it trains on or generates (the table's "tokens")
    flops: float
    logit_elements: float = 0.0  # vocabulary-row elements touched (see LOGIT_PASSES)
    draw_elements: float = 0.0  # vocabulary-row elements a sampled token is drawn from
    steps: int = 0  # optimizer steps
    decoding_steps: int = 0  # sequential generation steps (one batched forward each)
    teacher: ModelShape | None = None

    def __post_init__(self) -> None:
        if self.kind not in STAGE_KINDS:
            raise ValueError(f"stage kind {self.kind!r}: expected one of {', '.join(STAGE_KINDS)}")

    def plus(self, other: StageCost) -> StageCost:
        """This stage with the work of `other` added (e.g. its in-training evaluations)."""
        return replace(self, flops=self.flops + other.flops, logit_elements=self.logit_elements + other.logit_elements,
                       draw_elements=self.draw_elements + other.draw_elements, steps=self.steps + other.steps,
                       decoding_steps=self.decoding_steps + other.decoding_steps)


def generation_rows_per_batch(prompt_tokens: int, new_tokens: int,
                              batch_tokens: int = GENERATION_BATCH_TOKENS) -> int:
    return max(1, batch_tokens // (prompt_tokens + new_tokens))


def generation(name: str, model: ModelShape, data: Data, new_tokens: int, passes: int = 1,
               rows_per_batch: int | None = None, kind: str = "generation",
               scorer: ModelShape | None = None, greedy_passes: int = 0) -> StageCost:
    """`passes` generations of up to `new_tokens` tokens for every row (the budget: decoding runs
    until the longest row of a batch stops, and untrained models rarely stop early), with a KV
    cache, `greedy_passes` of them greedy (no draws), the rest sampled; `scorer` (a teacher) reads
    each finished sequence once."""
    rows_per_batch = rows_per_batch or generation_rows_per_batch(math.ceil(data.prompt), new_tokens)
    sequences = passes * data.rows
    written = sequences * new_tokens
    flops = sequences * data.prompt * model.forward_flops(data.prompt) + written * model.forward_flops(
        data.prompt + new_tokens / 2)
    logits = written * model.vocab * LOGIT_PASSES["sample"]
    draws = (passes - greedy_passes) * data.rows * new_tokens * model.vocab
    if scorer is not None:
        read = sequences * (data.prompt + new_tokens)
        flops += read * scorer.forward_flops(data.prompt + new_tokens)
        logits += written * scorer.vocab * LOGIT_PASSES["forward"]
    return StageCost(name, kind, model, tokens=written, flops=flops, logit_elements=logits, draw_elements=draws,
                     decoding_steps=passes * math.ceil(data.rows / rows_per_batch) * new_tokens, teacher=scorer)


def forward_pass(name: str, model: ModelShape, data: Data, kind: str = "evaluation") -> StageCost:
    """One forward over every row (a validation loss, a teacher cache)."""
    tokens = data.rows * data.sequence
    return StageCost(name, kind, model, tokens=tokens, flops=tokens * model.forward_flops(data.sequence),
                     logit_elements=tokens * model.vocab * LOGIT_PASSES["forward"])


def _trained(model: ModelShape, tokens: float, context: float, teacher: ModelShape | None) -> tuple[float, float]:
    """(FLOPs, logit elements) of training on `tokens`, with a live teacher's forward and divergence."""
    flops = tokens * 3 * model.forward_flops(context)
    logits = tokens * model.vocab * LOGIT_PASSES["train"]
    if teacher is not None:
        flops += tokens * teacher.forward_flops(context)
        logits += tokens * teacher.vocab * LOGIT_PASSES["divergence"]
    return flops, logits


def token_training(name: str, kind: str, model: ModelShape, train: Data, epochs: float, batch_size: int,
                   teacher: ModelShape | None = None, dev: Data | None = None, eval_gen_num: int = 0,
                   new_tokens: int = 0, evaluations: int | None = None, steps: int | None = None) -> StageCost:
    """SFT, SeqKD, KD or a DSS student (both task streams in `train`): `epochs` passes over the
    items in batches of `batch_size` items, the last partial batch of each pass dropped (as the
    training sampler does), or `steps` such batches (a run sized in optimizer steps); 3 forwards per
    token, plus the teacher's forward and divergence when it runs live; after each epoch (or
    `evaluations` times) the validation loss on `dev` and `eval_gen_num` sampled validation answers."""
    steps = steps if steps is not None else math.ceil(epochs * max(1, train.items // batch_size))
    sequences = steps * batch_size * train.per_item
    tokens = sequences * train.sequence
    flops, logits = _trained(model, tokens, train.sequence, teacher)
    cost = StageCost(name, kind, model, tokens=tokens, flops=flops, logit_elements=logits, steps=steps,
                     teacher=teacher)
    for _ in range(math.ceil(epochs) if evaluations is None else evaluations):
        cost = cost.plus(validation(name, model, dev, eval_gen_num, new_tokens))
    return cost


def validation(name: str, model: ModelShape, dev: Data | None, eval_gen_num: int, new_tokens: int) -> StageCost:
    """One validation during training: the loss on `dev`, and answers sampled for `eval_gen_num` of
    its prompts (0: all of them, -1: none, as --eval-gen-num)."""
    cost = StageCost(name, "evaluation", model, tokens=0, flops=0)
    if dev is None or not dev.rows:
        return cost
    cost = cost.plus(forward_pass(name, model, dev))
    sampled = dev.rows if eval_gen_num == 0 else min(max(eval_gen_num, 0), dev.rows)
    if sampled and new_tokens:
        cost = cost.plus(generation(name, model, replace(dev, rows=sampled), new_tokens))
    return cost


def on_policy(name: str, student: ModelShape, teacher: ModelShape, steps: int, num_rollouts: int, mini_batch: int,
              ppo_epochs: int, prompts: Data, new_tokens: int, corpus_tokens: int = 0, dev: Data | None = None,
              eval_gen_num: int = 0, eval_interval: int = 0) -> StageCost:
    """MiniLLM and its on-policy relatives: every collection the student samples `num_rollouts`
    answers and the teacher scores them; each optimizer step trains the student on `mini_batch`
    rollouts (`ppo_epochs` passes per collection) with the teacher's distribution at every
    token (the single-step reverse KL), and on `mini_batch` pretraining chunks of `corpus_tokens`
    tokens, the teacher read on them; evaluation before the first step and every `eval_interval`."""
    steps_per_collection = max(1, ppo_epochs * num_rollouts // mini_batch)
    collections = math.ceil(steps / steps_per_collection)
    collect = generation(name, student, replace(prompts, rows=num_rollouts), new_tokens, scorer=teacher)
    sequence = prompts.prompt + new_tokens
    rollout_flops, rollout_logits = _trained(student, steps * mini_batch * sequence, sequence, None)
    rollout_logits += steps * mini_batch * new_tokens * teacher.vocab * LOGIT_PASSES["divergence"]
    corpus_flops, corpus_logits = _trained(student, steps * mini_batch * corpus_tokens, corpus_tokens, teacher)
    cost = StageCost(name, "minillm", student, tokens=collections * collect.tokens,
                     flops=collections * collect.flops + rollout_flops + corpus_flops,
                     logit_elements=collections * collect.logit_elements + rollout_logits + corpus_logits,
                     draw_elements=collections * collect.draw_elements,
                     steps=steps, decoding_steps=collections * collect.decoding_steps, teacher=teacher)
    if eval_interval:
        for _ in range(1 + math.ceil(steps / eval_interval)):  # before the first step too
            cost = cost.plus(validation(name, student, dev, eval_gen_num, new_tokens))
    return cost


def evaluation(name: str, model: ModelShape, data: Data, new_tokens: int, seeds: int, greedy_pass: bool = True) -> StageCost:
    """evaluate.py on one eval set: one sampled generation per seed, and one greedy decoding for
    answer accuracy when the set has answers."""
    return generation(name, model, data, new_tokens, passes=seeds + int(greedy_pass), kind="evaluation",
                      greedy_passes=int(greedy_pass))


# ---------------------------------------------------------------- time on this machine

@dataclass(frozen=True)
class Calibration:
    """Seconds of a stage on a machine whose matmul probe reads `reference_gflops`: launch +
    steps · step + decoding steps · decode_step + logit elements · logit_element + draw elements ·
    draw_element + FLOPs / (reference · efficiency). On a machine (or cores shared with other jobs)
    whose probe reads G, every term scales by reference / G: all of it is work on the same cores."""
    reference_gflops: float
    launch_s: dict[str, float] = field(default_factory=dict)  # per stage kind: start-up, loading, saving
    step_s: float = 0.0  # per optimizer step (the engine, the optimizer, the batch)
    decode_step_s: float = 0.0  # per batched decoding step (the sampler's per-token work)
    efficiency: float = 1.0  # share of the probe's matmul speed that training and generation reach
    logit_element_s: float = 0.0  # per vocabulary-row element pass
    draw_element_s: float = 0.0  # per vocabulary-row element a sampled token is drawn from
    data_stage_s: float = 0.0  # a data stage (processing, rows, a student init, a cache): mostly its start-up

    def seconds(self, stage: StageCost, gflops: float) -> float:
        at_reference = (self.launch_s.get(stage.kind, 0.0) + stage.steps * self.step_s
                        + stage.decoding_steps * self.decode_step_s + stage.logit_elements * self.logit_element_s
                        + stage.draw_elements * self.draw_element_s
                        + stage.flops / (self.reference_gflops * 1e9 * self.efficiency))
        return at_reference * self.reference_gflops / gflops

    def data_seconds(self, gflops: float) -> float:
        return self.data_stage_s * self.reference_gflops / gflops


# Fitted (benchmarks/budget_calibration.py --run TINY --run GSM8K --run GPT2 --gflops 1=69 2=91 --fit,
# launches fixed at 8 s, 5 s for an evaluation: a Python start, the model load and the final save)
# to the driver's stage times of the tiny preset's main command and ten training seeds (JOBS=2, one
# thread per stage; probe 69 GFLOP/s on one thread) and of docs/own-models.md's two CPU recipes,
# verbatim in fresh clones (stages on both threads; probe 91 on two): 3.5 ns per logit element, 67 ns
# per draw (torch.multinomial's exponentials), 69% of the probe's matmul speed. docs/own-models.md
# has the check.
CALIBRATION = Calibration(
    reference_gflops=69.0,
    launch_s={"teacher-sft": 8.0, "student-sft": 8.0, "kd": 8.0, "minillm": 8.0, "generation": 8.0, "evaluation": 5.0},
    step_s=0.121, decode_step_s=0.0866, efficiency=0.69, logit_element_s=3.51e-09, draw_element_s=6.72e-08,
    data_stage_s=8.6)
# The tiny preset's main command (one training seed, its METHODS): 20 min 4 s of stage time on 2 idle
# cores of the machine the calibration was fitted on (commit c65d69d); a run estimated at SLOW_FACTOR
# times that is far outside what a CPU session plans for.
TINY_PRESET_SECONDS = 20 * 60 + 4
SLOW_FACTOR = 3.0


def matmul_gflops(seconds: float = 1.0, size: int = 1024, threads: int | None = None) -> float:
    """This machine's float32 matmul speed (GFLOP/s) over about `seconds` with `threads` threads
    (default: torch's), those a stage runs with: the G of the time estimate. Other jobs on the same
    cores lower it, as they slow the run."""
    import torch

    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        a, b = torch.randn(size, size), torch.randn(size, size)
        a @ b  # warm-up: allocation, thread pool
        count, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            a @ b
            count += 1
    finally:
        torch.set_num_threads(previous)
    return 2.0 * size ** 3 * count / elapsed / 1e9


@dataclass(frozen=True)
class Estimate:
    stage: StageCost
    seconds: float


def estimate(stages: Iterable[StageCost], gflops: float, calibration: Calibration = CALIBRATION) -> list[Estimate]:
    return [Estimate(stage, calibration.seconds(stage, gflops)) for stage in stages]


def format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def wall_seconds(stages: Sequence[tuple[str, float, Sequence[str]]], jobs: int) -> float:
    """The wall time of `stages` (name, seconds, the names of the stages it reads from) run as
    the comparison driver runs them: in order, each as soon as the stages it reads from have
    finished and one of `jobs` slots is free (a dependency outside `stages` counts as done)."""
    names = {name for name, _, _ in stages}
    pending = list(stages)
    finished: set[str] = set()
    running: list[tuple[float, str]] = []  # (end, name)
    now = 0.0
    while pending or running:
        for item in list(pending):
            if len(running) >= jobs:
                break
            name, seconds, reads = item
            if all(dep in finished for dep in reads if dep in names):
                pending.remove(item)
                running.append((now + seconds, name))
        if not running:
            raise ValueError(f"stages {', '.join(name for name, _, _ in pending)} read from stages that never run")
        now = min(end for end, _ in running)
        finished |= {name for end, name in running if end <= now}
        running = [(end, name) for end, name in running if end > now]
    return now


def estimate_table(estimates: Sequence[Estimate], gflops: float, data_stages: int = 0, data_seconds: float = 0.0,
                   wall: float | None = None, jobs: int = 1, threads: int | None = None) -> str:
    """A markdown table of the stages: model, tokens, FLOPs, estimated time; then the total (the
    sum of the stages' times, `data_stages` more of `data_seconds` in all) and the `wall` time
    with `jobs` stages side by side."""
    lines = ["| stage | kind | parameters | vocabulary | tokens | FLOPs | estimated time |", "|---|---|---|---|---|---|---|"]
    for item in estimates:
        stage = item.stage
        teacher = f" + teacher {stage.teacher.parameters / 1e6:.1f}M" if stage.teacher else ""
        lines.append(f"| {stage.name} | {stage.kind} | {stage.model.parameters / 1e6:.2f}M{teacher} | "
                     f"{stage.model.vocab:,} | {stage.tokens:,.0f} | {stage.flops:.2e} | {format_seconds(item.seconds)} |")
    total = sum(item.seconds for item in estimates) + data_seconds
    data = f", {data_stages} data stages included" if data_stages else ""
    side = f"; about {format_seconds(wall)} of wall time with JOBS={jobs}" if wall is not None else ""
    probe = f"matmul probe {gflops:.0f} GFLOP/s" + (f" on {threads} thread{'s' * (threads > 1)}" if threads else "")
    lines.append(f"\nTotal: about {format_seconds(total)} of stage time{data}{side} on this machine ({probe}).")
    return "\n".join(lines)


def slow_run_warning(estimates: Sequence[Estimate], factor: float = SLOW_FACTOR,
                     reference_s: float = TINY_PRESET_SECONDS) -> str | None:
    """A warning when the whole run is estimated at more than `factor` times the tiny preset's
    main command, naming the stages that take most of it and what drives them."""
    total = sum(item.seconds for item in estimates)
    if total <= factor * reference_s:
        return None
    heaviest = sorted(estimates, key=lambda item: item.seconds, reverse=True)[:3]
    named = "; ".join(f"{item.stage.name} {format_seconds(item.seconds)} ({item.stage.model.parameters / 1e6:.1f}M "
                      f"parameters, vocabulary {item.stage.model.vocab:,}, {item.stage.tokens:,.0f} tokens)"
                      for item in heaviest)
    return (f"this run is estimated at {format_seconds(total)}, {total / reference_s:.0f}× the tiny preset's "
            f"{format_seconds(reference_s)} on this machine; the heaviest stages: {named}. Smaller models or "
            f"vocabulary, MAX_TRAIN_ROWS, fewer epochs (TEACHER_EPOCHS, STUDENT_EPOCHS) or METHODS cut it")


# ---------------------------------------------------------------- lengths against the budget

@dataclass(frozen=True)
class LengthCheck:
    """Token lengths of one kind of reference response against the run's limits."""
    what: str  # "gold responses", "DSS chain of thought"
    rows: int
    budget: int  # new tokens a generation may write: MAX_LENGTH − MAX_PROMPT_LENGTH
    max_length: int
    mean_prompt: float
    mean: float  # response tokens, EOS included
    longest: int
    over_budget: int  # responses (EOS included) longer than the budget: generation cuts them
    over_max_length: int  # prompt + response longer than MAX_LENGTH: training cuts them
    with_answer: int  # rows with a short answer (the `answer` field)
    with_marker: int  # of those, responses that state it after an answer marker
    marker_fits: int  # of those, responses whose marker and answer end within the budget

    def data(self) -> Data:
        """The rows as the cost estimate counts them."""
        return Data(self.rows, self.mean_prompt, self.mean)

    @property
    def share_cut(self) -> float:
        return self.over_budget / self.rows if self.rows else 0.0

    @property
    def share_marker_fits(self) -> float:
        """Of the responses that state their answer after a marker, the share the budget keeps whole."""
        return self.marker_fits / self.with_marker if self.with_marker else 1.0


def _answer_end(text: str, answer: str) -> int | None:
    """Where the stated answer ends: after the first answer marker, the answer itself (or the
    end of the marker's line); None without a marker."""
    marker = find_answer_marker(text, ANSWER_MARKERS)
    if marker is None:
        return None
    found = text.find(answer, marker[1]) if answer else -1
    if found >= 0:
        return found + len(answer)
    line_end = text.find("\n", marker[1])
    return len(text) if line_end < 0 else line_end


def check_lengths(tokenizer: Any, rows: Sequence[dict[str, Any]], response: Callable[[dict[str, Any]], str],
                  what: str, max_length: int, max_prompt_length: int, task_prefix: str = "") -> LengthCheck:
    """Tokenize each row's prompt (the template behind `task_prefix`) and `response(row)` (EOS
    added) as processing does, and count what the limits cut and where the answer ends."""
    budget = max_length - max_prompt_length
    prompts = [build_task_prompt(task_prefix, row["instruction"], row.get("input", "")) for row in rows]
    responses = [response(row) for row in rows]
    prompt_lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    full_lengths = [len(ids) for ids in tokenizer([p + r for p, r in zip(prompts, responses)],
                                                  add_special_tokens=False)["input_ids"]]
    lengths = [full - prompt + 1 for full, prompt in zip(full_lengths, prompt_lengths)]  # + EOS
    answered = [(index, _answer_end(text, row.get("answer", ""))) for index, (row, text) in
                enumerate(zip(rows, responses)) if row.get("answer")]
    stated = [(index, end) for index, end in answered if end is not None]
    prefixes = tokenizer([prompts[index] + responses[index][:end] for index, end in stated],
                         add_special_tokens=False)["input_ids"] if stated else []
    fits = sum(len(ids) - prompt_lengths[index] <= budget for (index, _), ids in zip(stated, prefixes))
    return LengthCheck(what=what, rows=len(rows), budget=budget, max_length=max_length,
                       mean_prompt=sum(prompt_lengths) / len(rows) if rows else 0.0,
                       mean=sum(lengths) / len(rows) if rows else 0.0, longest=max(lengths, default=0),
                       over_budget=sum(length > budget for length in lengths),
                       over_max_length=sum(length + prompt > max_length
                                           for length, prompt in zip(lengths, prompt_lengths)),
                       with_answer=len(answered), with_marker=len(stated), marker_fits=fits)


def gold_response(row: dict[str, Any]) -> str:
    return row["output"]


def chain_of_thought_response(row: dict[str, Any]) -> str:
    """What a step-by-step teacher writes behind `[rationale] `: the rationale and its conclusion
    (tools/derive_rationale_rows.py --chain-of-thought)."""
    return f"{row['rationale']} {CHAIN_OF_THOUGHT_CONCLUSION.format(answer=row['answer'])}"


MOST = 0.5  # the share of answered rows whose answer must fit for a run to go ahead


def length_findings(checks: Iterable[LengthCheck]) -> tuple[list[str], list[str]]:
    """(warnings, refusals) naming the variables to change: a warning for every response the
    budget or MAX_LENGTH cuts and for answered rows without an answer marker; a refusal when the
    answer marker with its answer fits in the budget for no more than half the rows that state one
    (a perfect model could not write a parsable answer: strict accuracy would be about 0)."""
    warnings, refusals = [], []
    for check in checks:
        if check.over_budget:
            warnings.append(f"{check.what}: {check.over_budget} of {check.rows} ({100 * check.share_cut:.0f}%) are "
                            f"longer than the generation budget MAX_LENGTH − MAX_PROMPT_LENGTH = {check.budget} tokens "
                            f"(mean {check.mean:.0f}, longest {check.longest}): what models write for them is cut")
        if check.over_max_length:
            warnings.append(f"{check.what}: {check.over_max_length} of {check.rows} rows are longer than "
                            f"MAX_LENGTH={check.max_length} tokens with their prompt: training cuts them")
        if check.with_answer > check.with_marker:
            warnings.append(f"{check.what}: {check.with_answer - check.with_marker} of {check.with_answer} rows with "
                            f"an `answer` state no answer marker ({' / '.join(ANSWER_MARKERS)}); strict accuracy "
                            f"reads only answers after one (end each response with \"The answer is N.\")")
        if check.with_marker and check.share_marker_fits <= MOST:
            refusals.append(f"{check.what}: the answer marker and answer end within the generation budget of "
                            f"{check.budget} tokens (MAX_LENGTH − MAX_PROMPT_LENGTH) in only {check.marker_fits} of "
                            f"the {check.with_marker} rows that state one ({100 * check.share_marker_fits:.0f}%): even a perfect "
                            f"model could not write a parsable answer. Raise MAX_LENGTH (longest response "
                            f"{check.longest} tokens) or lower MAX_PROMPT_LENGTH")
    return warnings, refusals
