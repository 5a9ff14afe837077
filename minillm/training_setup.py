"""Everything a training entrypoint does before its loop: distributed init, logging, config echo,
data, model, batch plan, optimizer, scheduler and the DeepSpeed engine."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from minillm.data.datasets import GlobalBatchSampler, TokenDataset
from minillm.engine import (BatchPlan, DistInfo, build_optimizer, build_scheduler, init_distributed,
                            initialize_engine, load_deepspeed_config, plan_batches, precision_dtype,
                            set_seed, zero_stage)
from minillm.log import RunLogger
from minillm.checkpoint import resolve_checkpoint
from minillm.modeling import check_same_tokenizer, check_vocabulary, load_model, load_tokenizer, set_dropout


@dataclass
class TrainingSetup:
    dist: DistInfo
    log: RunLogger
    tokenizer: object
    engine: object
    plan: BatchPlan
    train_set: TokenDataset
    valid_set: TokenDataset
    sampler: GlobalBatchSampler
    total_steps: int
    ds_config: dict

    @property
    def sync_ranks(self) -> bool:
        return zero_stage(self.ds_config) == 3 and self.dist.world_size > 1


def prepare_training(args: argparse.Namespace, run_name: str) -> TrainingSetup:
    dist_info = init_distributed()
    set_seed(args.seed)
    log = RunLogger(args.save, dist_info.rank)
    log.config({"entrypoint": run_name, "world_size": dist_info.world_size, "device": str(dist_info.device),
                **vars(args)})
    plan = plan_batches(args.batch_size, args.micro_batch_size, dist_info.world_size)
    ds_config = load_deepspeed_config(args.deepspeed_config, plan, args.clip_grad)
    dtype = precision_dtype(ds_config)
    log.info(f"{plan.describe()}; precision {dtype}, ZeRO stage {zero_stage(ds_config)}, "
             f"{os.environ.get('OMP_NUM_THREADS', 'default')} CPU thread(s) per rank")

    tokenizer = load_tokenizer(args.tokenizer_path or args.model_path)
    train_set = TokenDataset(args.data_dir, "train", args.max_length)
    valid_set = TokenDataset(args.data_dir, "valid", args.max_length)
    sampler = GlobalBatchSampler(len(train_set), plan.global_batch, args.seed)
    total_steps = args.total_steps or args.epochs * sampler.steps_per_epoch
    log.info(f"data {args.data_dir}: {len(train_set)} train / {len(valid_set)} valid items")

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
    return TrainingSetup(dist_info, log, tokenizer, engine, plan, train_set, valid_set, sampler, total_steps,
                         ds_config)


def load_teacher(args: argparse.Namespace, setup: TrainingSetup):
    """The frozen teacher (a model folder, or a run folder's best checkpoint) in the engine's
    precision, a full replica per rank (not partitioned under ZeRO-3); refuses a teacher whose
    tokenizer differs from the student's. Returns (teacher, shared vocabulary size)."""
    path = resolve_checkpoint(args.teacher_model_path, args.teacher_pick)
    vocab_size = check_same_tokenizer(setup.tokenizer, load_tokenizer(path))
    teacher = load_model(path, precision_dtype(setup.ds_config), setup.dist.device).eval()
    teacher.requires_grad_(False)
    setup.log.info(f"teacher {path}: {sum(p.numel() for p in teacher.parameters()) / 1e6:.2f}M parameters")
    return teacher, vocab_size
