"""Everything a training entrypoint does before its loop: distributed init, logging, config echo,
data, model, batch plan, optimizer, scheduler and the DeepSpeed engine."""
from __future__ import annotations

import argparse
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
from minillm.train.run_folder import check_run_folder, claim_run_folder


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

    @property
    def valid_set(self) -> TokenDataset:
        """The primary (label) task's validation data: generation is scored on it."""
        return self.valid_streams[0].dataset

    @property
    def sync_ranks(self) -> bool:
        return zero_stage(self.ds_config) == 3 and self.dist.world_size > 1


def prepare_training(args: argparse.Namespace, run_name: str) -> TrainingSetup:
    dist_info = init_distributed()
    verdict = check_run_folder(args)  # every rank, before rank 0 changes the folder
    checkpoint.barrier()
    removed = []
    if dist_info.is_main:
        claim_run_folder(args, verdict)
        removed = checkpoint.remove_stale_temporaries(args.save)
    checkpoint.barrier()
    set_seed(args.seed)
    log = RunLogger(args.save, dist_info.rank)
    for path in removed:
        log.info(f"removed {path}: a temporary file of a save that was interrupted")
    log.config({"entrypoint": run_name, "world_size": dist_info.world_size, "device": str(dist_info.device),
                **vars(args)})
    try:
        plan = plan_batches(args.batch_size, args.micro_batch_size, dist_info.world_size)
    except ValueError as err:
        raise SystemExit(f"error: --batch-size: {err}") from None
    ds_config = load_deepspeed_config(args.deepspeed_config, plan, args.clip_grad)
    dtype = precision_dtype(ds_config)
    log.info(f"{plan.describe()}; precision {dtype}, ZeRO stage {zero_stage(ds_config)}, "
             f"{os.environ.get('OMP_NUM_THREADS', 'default')} CPU thread(s) per rank")

    tokenizer_path = args.tokenizer_path or args.model_path
    tokenizer = load_tokenizer(tokenizer_path)
    train_streams, valid_streams = task_streams(args, "train"), task_streams(args, "valid")
    for stream in train_streams + valid_streams:
        check_processed_data(stream.dataset, tokenizer, tokenizer_path, log)
    primary = train_streams[0].dataset
    subset = fraction_subset(len(primary), args.train_fraction) if args.train_fraction < 1 else None
    train_set = PairedStreams(train_streams, subset)
    sampler = GlobalBatchSampler(len(train_set), plan.global_batch, args.seed)
    total_steps = args.total_steps or args.epochs * sampler.steps_per_epoch
    for train, valid in zip(train_streams, valid_streams):
        log.info(f"task {train.name!r} (weight {train.weight:g}, prompt prefix {train.dataset.task['prefix']!r}): "
                 f"{len(train.dataset)} train / {len(valid.dataset)} valid items from {train.dataset.data_dir}")
    if subset is not None:
        log.info(f"training on {len(subset)} of {len(primary)} items (--train-fraction {args.train_fraction})")

    model = load_model(args.model_path, dtype, dist_info.device)
    check_vocabulary(model, tokenizer, args.model_path)
    if args.dropout is not None:
        set_dropout(model, args.dropout)
    if getattr(args, "gradient_checkpointing", False):
        model.gradient_checkpointing_enable()
    log.info(f"model {args.model_path}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")

    optimizer = build_optimizer(model, args.lr, args.weight_decay, tuple(args.adam_betas))
    scheduler = build_scheduler(optimizer, args.lr_scheduler, total_steps, args.warmup_steps, args.lr_min)
    engine = initialize_engine(model, optimizer, scheduler, ds_config)
    guard = NonFiniteGuard(engine, args.max_nonfinite_steps, dtype == torch.float16, log)
    return TrainingSetup(dist_info, log, tokenizer, engine, plan, train_set, valid_streams, sampler, total_steps,
                         ds_config, guard)


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


def task_streams(args: argparse.Namespace, split: str) -> list[TaskStream]:
    """The task streams of a run: the data folder alone (weight 1), or with --rationale-data-dir
    the label task (weight α) and the rationale task (weight 1 − α)."""
    primary = TokenDataset(args.data_dir, split, args.max_length)
    if not args.rationale_data_dir:
        return [TaskStream(primary.task["task"], primary, 1.0)]
    rationale = TokenDataset(args.rationale_data_dir, split, args.max_length)
    return [TaskStream("label", primary, args.label_weight), TaskStream("rationale", rationale, 1.0 - args.label_weight)]


def load_teacher(args: argparse.Namespace, setup: TrainingSetup):
    """The frozen teacher (a model folder, or a run folder's best checkpoint) in the engine's
    precision, a full replica per rank (not partitioned under ZeRO-3); refuses a teacher whose
    tokenizer differs from the student's. Returns (teacher, shared vocabulary size)."""
    path = checkpoint.resolve_checkpoint(args.teacher_model_path, args.teacher_pick)
    vocab_size = check_same_tokenizer(setup.tokenizer, load_tokenizer(path))
    return _frozen_teacher(path, setup), vocab_size


def load_cross_tokenizer_teacher(args: argparse.Namespace, setup: TrainingSetup):
    """--cross-tokenizer: the frozen teacher as `load_teacher` loads it, with its own tokenizer
    (--teacher-tokenizer, default the teacher's folder), which may differ from the student's.
    Returns (teacher, teacher tokenizer)."""
    path = checkpoint.resolve_checkpoint(args.teacher_model_path, args.teacher_pick)
    tokenizer_path = args.teacher_tokenizer or path
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


def cached_teacher_datasets(args: argparse.Namespace, setup: TrainingSetup,
                            groups: list[list[TokenDataset]]) -> tuple[list[list[CachedTeacherDataset]], int]:
    """--teacher-cache: one cache folder per data folder (groups[i]: that folder's splits in use),
    each checked against this run (teacher weights, tokenizer, --kd-temperature, the data); the
    datasets wrapped to read their records; and the vocabulary size. The teacher is not loaded."""
    if len(args.teacher_cache) != len(groups):
        raise SystemExit(f"error: --teacher-cache: give one cache folder per data folder ({len(groups)}: "
                         f"{', '.join(str(g[0].data_dir) for g in groups)}), got {len(args.teacher_cache)}")
    teacher_path = checkpoint.resolve_checkpoint(args.teacher_model_path, args.teacher_pick)
    vocab_size = max(setup.tokenizer.get_vocab().values()) + 1
    wrapped = []
    try:
        weights = teacher_weights_sha256(teacher_path)
        for cache_dir, datasets in zip(args.teacher_cache, groups):
            header = read_header(cache_dir)
            check_header(cache_dir, header, weights_sha256=weights, tokenizer=setup.tokenizer, vocab_size=vocab_size,
                         temperature=args.kd_temperature,
                         splits={d.split: dataset_fingerprint(d.data_dir, d.split, d.max_length) for d in datasets})
            wrapped.append([open_cached_dataset(cache_dir, d, header) for d in datasets])
            setup.log.info(f"teacher cache {cache_dir} for {datasets[0].data_dir}: top-{header['k']} of {vocab_size} "
                           f"tokens + tail at temperature {header['temperature']}, teacher {teacher_path} (not run)")
    except (ValueError, FileNotFoundError) as err:
        raise SystemExit(f"error: --teacher-cache: {err}") from None
    return wrapped, vocab_size


def use_teacher_caches(args: argparse.Namespace, setup: TrainingSetup) -> int:
    """--teacher-cache for a token-level run: every task stream's train and valid data read their
    cache (one folder per stream, in stream order); returns the vocabulary size."""
    streams = setup.train_set.streams
    wrapped, vocab_size = cached_teacher_datasets(
        args, setup, [[train.dataset, valid.dataset] for train, valid in zip(streams, setup.valid_streams)])
    for k, (train, valid) in enumerate(wrapped):
        streams[k] = replace(streams[k], dataset=train)
        setup.valid_streams[k] = replace(setup.valid_streams[k], dataset=valid)
    return vocab_size


def pretraining_term(args: argparse.Namespace, setup: TrainingSetup, objective: Objective) -> PretrainingTerm | None:
    """--ptx-data-dir: MiniLLM's pretraining term with `objective` on that corpus; None without it."""
    if not args.ptx_data_dir:
        return None
    corpus = TokenDataset(args.ptx_data_dir, "train", args.max_length)
    check_processed_data(corpus, setup.tokenizer, args.tokenizer_path or args.model_path, setup.log)
    if getattr(objective, "reads_teacher_cache", False):  # MiniLLM's KD term with --teacher-cache
        corpus = cached_teacher_datasets(args, setup, [[corpus]])[0][0][0]
    try:
        return PretrainingTerm(corpus, objective, args.ptx_batch_size, setup.plan, setup.dist, args.seed,
                               setup.tokenizer.pad_token_id)
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None

