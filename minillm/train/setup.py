"""Everything a training entrypoint does before its loop: distributed init, logging, config echo,
data, model, batch plan, optimizer, scheduler and the DeepSpeed engine.

Its settings are typed configs (built from the flags by minillm.args): `SetupConfig` for
`prepare_training`, `TeacherConfig` for the teacher or its cache, `CorpusConfig` for MiniLLM's
pretraining term.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace

import torch

from minillm.data.datasets import (
    GlobalBatchSampler,
    PairedStreams,
    TaskStream,
    TokenDataset,
    fraction_subset,
)
from minillm.data.manifest import check_data_tokenizer
from minillm.data.teacher_cache import (
    CachedTeacherDataset,
    check_header,
    dataset_fingerprint,
    open_cached_dataset,
    read_header,
    teacher_weights_sha256,
)
from minillm.distributed import DistInfo, init_distributed
from minillm.log import RunLogger
from minillm.modeling import (
    check_same_tokenizer,
    check_vocabulary,
    load_model,
    load_tokenizer,
    set_dropout,
)
from minillm.train import checkpoint
from minillm.train.engine import (
    BatchPlan,
    build_optimizer,
    build_scheduler,
    initialize_engine,
    load_deepspeed_config,
    plan_batches,
    precision_dtype,
    set_seed,
    zero_stage,
)
from minillm.train.guard import NonFiniteGuard
from minillm.train.objectives import Objective
from minillm.train.pretraining_term import PretrainingTerm
from minillm.train.run_folder import (
    RunFolderConfig,
    check_run_folder,
    claim_run_folder,
    lock_run_folder,
)


@dataclass(frozen=True)
class ModelConfig:
    model_path: str
    tokenizer_path: str | None = None  # None: the model folder's
    dropout: float | None = None  # None: the model config's
    gradient_checkpointing: bool = False

    @property
    def tokenizer(self) -> str:
        return self.tokenizer_path or self.model_path


@dataclass(frozen=True)
class DataConfig:
    """One data folder, or with `rationale_data_dir` the label and rationale tasks (weights α, 1 − α)."""
    data_dir: str
    max_length: int
    rationale_data_dir: str | None = None
    label_weight: float = 0.5
    token_matched_to: str | None = None  # a rationale folder: train as many tokens as with it beside the data
    train_fraction: float = 1.0
    fraction_budget: str = "steps"  # a fraction sized in epochs: the whole set's steps ("steps") or the fraction's


@dataclass(frozen=True)
class OptimizationConfig:
    deepspeed_config: str
    batch_size: int  # GLOBAL
    micro_batch_size: int
    lr: float
    lr_min: float
    lr_scheduler: str
    warmup_steps: int
    weight_decay: float
    adam_betas: tuple[float, float]
    clip_grad: float
    epochs: int
    total_steps: int  # 0: epochs × steps per epoch
    seed: int
    max_nonfinite_steps: int


@dataclass(frozen=True)
class SetupConfig:
    entrypoint: str  # e.g. "train_sft", in the config echo
    run: RunFolderConfig
    model: ModelConfig
    data: DataConfig
    optimization: OptimizationConfig


@dataclass(frozen=True)
class TeacherConfig:
    model_path: str  # a model folder, or a run folder resolved by `pick`
    pick: str
    kd_temperature: float
    cache: tuple[str, ...] = ()  # --teacher-cache: one folder per data folder; the teacher is then not run
    tokenizer: str | None = None  # --teacher-tokenizer: its own tokenizer (--cross-tokenizer), default its folder's


@dataclass(frozen=True)
class CorpusConfig:
    """MiniLLM's pretraining corpus (--ptx-data-dir; None: no pretraining term)."""
    data_dir: str | None
    batch_size: int  # GLOBAL chunks per step


@dataclass
class TrainingSetup:
    dist: DistInfo
    log: RunLogger
    tokenizer: object
    engine: object
    plan: BatchPlan
    train_set: PairedStreams
    valid_streams: list[TaskStream]
    sampler: GlobalBatchSampler
    total_steps: int
    ds_config: dict
    guard: NonFiniteGuard
    config: SetupConfig
    epochs: float | None = None  # passes over the training items, when the run is sized in epochs

    @property
    def valid_set(self) -> TokenDataset:
        """The primary (label) task's validation data: generation is scored on it."""
        return self.valid_streams[0].dataset

    @property
    def sync_ranks(self) -> bool:
        return zero_stage(self.ds_config) == 3 and self.dist.world_size > 1


def prepare_training(config: SetupConfig) -> TrainingSetup:
    run, model_config, data, optimization = config.run, config.model, config.data, config.optimization
    dist_info = init_distributed()
    took_over = lock_on_rank0(run.save, dist_info)
    verdict = check_run_folder(run)  # every rank, before rank 0 changes the folder
    checkpoint.barrier()
    removed = []
    if dist_info.is_main:
        claim_run_folder(run, verdict)
        removed = checkpoint.remove_stale_temporaries(run.save)
    checkpoint.barrier()
    set_seed(optimization.seed)
    log = RunLogger(run.save, dist_info.rank)
    if took_over:
        log.info(took_over)
    for path in removed:
        log.info(f"removed {path}: a temporary file of a save that was interrupted")
    log.config({"entrypoint": config.entrypoint, "world_size": dist_info.world_size, "device": str(dist_info.device),
                **run.flags})
    try:
        plan = plan_batches(optimization.batch_size, optimization.micro_batch_size, dist_info.world_size)
    except ValueError as err:
        raise SystemExit(f"error: --batch-size: {err}") from None
    ds_config = load_deepspeed_config(optimization.deepspeed_config, plan, optimization.clip_grad)
    dtype = precision_dtype(ds_config)
    log.info(f"{plan.describe()}; precision {dtype}, ZeRO stage {zero_stage(ds_config)}, "
             f"{os.environ.get('OMP_NUM_THREADS', 'default')} CPU thread(s) per rank")

    tokenizer = load_tokenizer(model_config.tokenizer)
    train_streams, valid_streams = task_streams(data, "train"), task_streams(data, "valid")
    for stream in train_streams + valid_streams:
        check_processed_data(stream.dataset, tokenizer, model_config.tokenizer, log)
    primary = train_streams[0].dataset
    subset = fraction_subset(len(primary), data.train_fraction) if data.train_fraction < 1 else None
    train_set = PairedStreams(train_streams, subset)
    sampler = GlobalBatchSampler(len(train_set), plan.global_batch, optimization.seed)
    steps_per_epoch = sampler.steps_per_epoch
    if subset is not None and data.fraction_budget == "steps":
        # The DSS reference's data-efficiency curves train a fixed number of steps on every fraction
        # (run.py --max_steps): epochs count passes over the whole set, the fraction is seen more often.
        steps_per_epoch = GlobalBatchSampler(len(PairedStreams(train_streams)), plan.global_batch,
                                             optimization.seed).steps_per_epoch
    total_steps = optimization.total_steps or optimization.epochs * steps_per_epoch
    if data.token_matched_to:
        partner = TaskStream("rationale", TokenDataset(data.token_matched_to, "train", data.max_length), 0.0)
        check_processed_data(partner.dataset, tokenizer, model_config.tokenizer, log)
        ratio = PairedStreams([train_streams[0], partner], subset).token_ratio()
        matched = round(total_steps * ratio)
        log.info(f"--token-matched-to {data.token_matched_to}: {matched} steps instead of {total_steps} "
                 f"({ratio:.3f}×), as many tokens as with that rationale task beside the data")
        total_steps = matched
    # Passes over the training items, when the run is sized in epochs (compute accounting reads it).
    epochs = None if optimization.total_steps else total_steps / sampler.steps_per_epoch
    for train, valid in zip(train_streams, valid_streams):
        log.info(f"task {train.name!r} (weight {train.weight:g}, prompt prefix {train.dataset.task['prefix']!r}): "
                 f"{len(train.dataset)} train / {len(valid.dataset)} valid items from {train.dataset.data_dir}")
    if subset is not None:
        log.info(f"training on {len(subset)} of {len(primary)} items (--train-fraction {data.train_fraction}, "
                 f"--fraction-budget {data.fraction_budget}: {total_steps} steps)")

    model = load_model(model_config.model_path, dtype, dist_info.device)
    check_vocabulary(model, tokenizer, model_config.model_path)
    if model_config.dropout is not None:
        set_dropout(model, model_config.dropout)
    if model_config.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    log.info(f"model {model_config.model_path}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

    optimizer = build_optimizer(model, optimization.lr, optimization.weight_decay, tuple(optimization.adam_betas))
    scheduler = build_scheduler(optimizer, optimization.lr_scheduler, total_steps, optimization.warmup_steps,
                                optimization.lr_min)
    engine = initialize_engine(model, optimizer, scheduler, ds_config)
    guard = NonFiniteGuard(engine, optimization.max_nonfinite_steps, dtype == torch.float16, log)
    return TrainingSetup(dist_info, log, tokenizer, engine, plan, train_set, valid_streams, sampler, total_steps,
                         ds_config, guard, config, epochs)


def lock_on_rank0(save: str, dist_info: DistInfo) -> str | None:
    """Rank 0 locks the run folder (run_folder.lock_run_folder); every rank learns the outcome, so
    that a refusal stops them all at once instead of leaving the others at a barrier."""
    outcome: list = [None, None]  # [refusal, note]
    if dist_info.is_main:
        try:
            outcome[1] = lock_run_folder(save)
        except SystemExit as refused:
            outcome[0] = str(refused)
    if dist_info.world_size > 1:
        torch.distributed.broadcast_object_list(outcome, src=0)
    if outcome[0]:
        raise SystemExit(outcome[0])
    return outcome[1]


def check_processed_data(dataset: TokenDataset, tokenizer, tokenizer_path: str, log: RunLogger) -> None:
    """Refuse data made with another tokenizer (its manifest) or holding ids outside the vocabulary."""
    warning = check_data_tokenizer(dataset.data_dir, tokenizer, tokenizer_path)
    if warning:
        log.info(f"warning: {warning}")
    dataset.check_token_ids(len(tokenizer))


def restore_run(resume: bool, save: str, setup: TrainingSetup) -> checkpoint.RestoredState | None:
    """--resume: load the newest complete training state (saying why a newer one was passed
    over) and drop what the folder holds beyond it; None = start from step 0."""
    if not resume:
        return None
    restored, notes = checkpoint.load_training_state(setup.engine, save, setup.dist.rank, setup.dist.world_size)
    for note in notes:
        setup.log.info(f"--resume: {note}")
    state = restored.client_state["train_state"] if restored else {"step": 0, "history": []}
    if restored and "method_state" not in restored.client_state:
        raise SystemExit(f"error: {restored.step_dir} was saved by an older version of the training loop and "
                         f"cannot be resumed; start the run anew with --overwrite")
    checkpoint.discard_after(save, state["step"], state["history"], setup.dist.rank)
    setup.log.drop_records_after(state["step"])
    if restored:
        setup.log.info(f"resumed from {restored.step_dir} at step {state['step']}")
    else:
        setup.log.info(f"--resume: no complete training state in {save}/resume; starting from step 0")
    return restored


def task_streams(data: DataConfig, split: str) -> list[TaskStream]:
    """The task streams of a run: the data folder alone (weight 1), or with --rationale-data-dir
    the label task (weight α) and the rationale task (weight 1 − α)."""
    primary = TokenDataset(data.data_dir, split, data.max_length)
    if not data.rationale_data_dir:
        return [TaskStream(primary.task["task"], primary, 1.0)]
    rationale = TokenDataset(data.rationale_data_dir, split, data.max_length)
    return [TaskStream("label", primary, data.label_weight), TaskStream("rationale", rationale, 1.0 - data.label_weight)]


def load_teacher(teacher_config: TeacherConfig, setup: TrainingSetup):
    """The frozen teacher (a model folder, or a run folder's best checkpoint) in the engine's
    precision, a full replica per rank (not partitioned under ZeRO-3); refuses a teacher whose
    tokenizer differs from the student's. Returns (teacher, shared vocabulary size)."""
    path = checkpoint.resolve_checkpoint(teacher_config.model_path, teacher_config.pick)
    vocab_size = check_same_tokenizer(setup.tokenizer, load_tokenizer(path))
    return _frozen_teacher(path, setup), vocab_size


def load_cross_tokenizer_teacher(teacher_config: TeacherConfig, setup: TrainingSetup):
    """--cross-tokenizer: the frozen teacher as `load_teacher` loads it, with its own tokenizer
    (--teacher-tokenizer, default the teacher's folder), which may differ from the student's.
    Returns (teacher, teacher tokenizer)."""
    path = checkpoint.resolve_checkpoint(teacher_config.model_path, teacher_config.pick)
    tokenizer_path = teacher_config.tokenizer or path
    tokenizer = load_tokenizer(tokenizer_path)
    teacher = _frozen_teacher(path, setup)
    check_vocabulary(teacher, tokenizer, str(path))
    setup.log.info(f"teacher tokenizer {tokenizer_path}: {len(tokenizer)} tokens (student: {len(setup.tokenizer)})")
    return teacher, tokenizer


def _frozen_teacher(path, setup: TrainingSetup):
    teacher = load_model(path, precision_dtype(setup.ds_config), setup.dist.device).eval()
    teacher.requires_grad_(False)
    setup.log.info(f"teacher {path}: {sum(p.numel() for p in teacher.parameters()) / 1e6:.2f}M parameters")
    return teacher


def cached_teacher_datasets(teacher_config: TeacherConfig, setup: TrainingSetup,
                            groups: list[list[TokenDataset]]) -> tuple[list[list[CachedTeacherDataset]], int]:
    """--teacher-cache: one cache folder per data folder (groups[i]: that folder's splits in use),
    each checked against this run (teacher weights, tokenizer, --kd-temperature, the data); the
    datasets wrapped to read their records; and the vocabulary size. The teacher is not loaded."""
    caches = teacher_config.cache
    if len(caches) != len(groups):
        raise SystemExit(f"error: --teacher-cache: give one cache folder per data folder ({len(groups)}: "
                         f"{', '.join(str(g[0].data_dir) for g in groups)}), got {len(caches)}")
    teacher_path = checkpoint.resolve_checkpoint(teacher_config.model_path, teacher_config.pick)
    vocab_size = max(setup.tokenizer.get_vocab().values()) + 1
    wrapped = []
    try:
        weights = teacher_weights_sha256(teacher_path)
        for cache_dir, datasets in zip(caches, groups):
            header = read_header(cache_dir)
            check_header(cache_dir, header, weights_sha256=weights, tokenizer=setup.tokenizer, vocab_size=vocab_size,
                         temperature=teacher_config.kd_temperature,
                         splits={d.split: dataset_fingerprint(d.data_dir, d.split, d.max_length) for d in datasets})
            wrapped.append([open_cached_dataset(cache_dir, d, header) for d in datasets])
            setup.log.info(f"teacher cache {cache_dir} for {datasets[0].data_dir}: top-{header['k']} of {vocab_size} "
                           f"tokens + tail at temperature {header['temperature']}, teacher {teacher_path} (not run)")
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: --teacher-cache: {err}") from None
    return wrapped, vocab_size


def use_teacher_caches(teacher_config: TeacherConfig, setup: TrainingSetup) -> int:
    """--teacher-cache for a token-level run: every task stream's train and valid data read their
    cache (one folder per stream, in stream order); returns the vocabulary size."""
    streams = setup.train_set.streams
    wrapped, vocab_size = cached_teacher_datasets(
        teacher_config, setup, [[train.dataset, valid.dataset] for train, valid in zip(streams, setup.valid_streams)])
    for k, (train, valid) in enumerate(wrapped):
        streams[k] = replace(streams[k], dataset=train)
        setup.valid_streams[k] = replace(setup.valid_streams[k], dataset=valid)
    return vocab_size


def pretraining_term(corpus_config: CorpusConfig, teacher_config: TeacherConfig, setup: TrainingSetup,
                     objective: Objective) -> PretrainingTerm | None:
    """--ptx-data-dir: MiniLLM's pretraining term with `objective` on that corpus; None without it."""
    if not corpus_config.data_dir:
        return None
    corpus = TokenDataset(corpus_config.data_dir, "train", setup.config.data.max_length)
    check_processed_data(corpus, setup.tokenizer, setup.config.model.tokenizer, setup.log)
    if getattr(objective, "reads_teacher_cache", False):  # MiniLLM's KD term with --teacher-cache
        corpus = cached_teacher_datasets(teacher_config, setup, [[corpus]])[0][0][0]
    try:
        return PretrainingTerm(corpus, objective, corpus_config.batch_size, setup.plan, setup.dist,
                               setup.config.optimization.seed, setup.tokenizer.pad_token_id)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
