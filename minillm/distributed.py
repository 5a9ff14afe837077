"""Ranks and collectives: which process this is, and summing a few scalars over all of them.

The ground floor of the package, so evaluation and training both shard and reduce the same way.
"""
from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def skip_deepspeed_shm_op() -> None:
    """Keep DeepSpeed from building or loading its CPU shared-memory all-reduce op.

    DeepSpeed's communication backend (created by `deepspeed.init_distributed` and by
    `deepspeed.initialize`) JIT-compiles `deepspeed_shm_comm` on first use (~40-60 s on a fresh
    machine) and waits without limit, silently, on the build lock that a killed build leaves in
    $TORCH_EXTENSIONS_DIR. The op serves only `inference_all_reduce`, DeepSpeed's tensor-parallel
    inference, which this project never calls: training's collectives are torch.distributed's
    (gloo on CPU, NCCL on GPUs), with or without it. Marked incompatible (DeepSpeed keeps this dict
    for the process), it is never built, loaded or waited for, whatever the number of ranks.
    """
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def init_distributed() -> DistInfo:
    """Join the process group started by a launcher (deepspeed/torchrun), or make a 1-rank one.

    A plain `python train_sft.py` gets a single-process group so the same code path (DeepSpeed
    engine, collectives) runs everywhere.
    """
    import deepspeed

    skip_deepspeed_shm_op()
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    cuda = torch.cuda.is_available()
    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if cuda else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local_rank)
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)


def bound_collective_waits(timeout: timedelta | None = None) -> None:
    """Give every process group of this rank the same timeout: how long a rank waits in a
    collective for the others before it fails. DeepSpeed's world group gets DEEPSPEED_TIMEOUT
    minutes (default 10) but DeepSpeed creates its data-parallel group with torch's default (30
    minutes for gloo), so a hung rank held the others in ZeRO's gradient all-reduce for half an
    hour. Called once the engine has made its groups; `timeout` defaults to DeepSpeed's."""
    from deepspeed.constants import default_pg_timeout

    for group in list(dist.distributed_c10d._world.pg_map):
        dist.distributed_c10d._set_pg_timeout(timeout or default_pg_timeout, group)


def is_collective_failure(err: BaseException) -> bool:
    """torch.distributed's errors (NCCL's and the store's), and gloo's, which are plain
    RuntimeErrors located in gloo's sources (a peer's connection reset, a timed-out receive)."""
    return isinstance(err, dist.DistError) or (isinstance(err, RuntimeError) and "/gloo/" in str(err))


@contextlib.contextmanager
def explain_lost_ranks(info: DistInfo, where: Callable[[], str]) -> Iterator[None]:
    """Turn a failed collective of a multi-rank run into one message (`where`: e.g. "at step 7"):
    a peer died (its connection closes: seconds) or hung (the group timeout, DEEPSPEED_TIMEOUT)."""
    try:
        yield
    except RuntimeError as err:
        if info.world_size == 1 or not is_collective_failure(err):
            raise
        cause = str(err).splitlines()[0][:300]
        raise SystemExit(f"error: rank {info.rank} {where()}: a collective operation with the other ranks failed "
                         f"({cause}): another rank died or stopped answering (ranks wait for each other up to "
                         f"DEEPSPEED_TIMEOUT minutes, default 10); its own output says why. The run continues from "
                         f"its last complete training state with --resume") from err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few scalars over ranks in one collective (float64 so token counts stay exact)."""
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor.tolist()
