"""All-reduce bandwidth across every GPU of a torchrun job, reported like nccl-tests' all_reduce_perf.

Run by torchrun on each node (``torchrun --nnodes N --nproc-per-node G ... allreduce_bench.py``): every rank
sums float32 buffers from ``--min-bytes`` to ``--max-bytes`` with ``torch.distributed.all_reduce`` and rank 0
prints, per size, the time and the algorithm and bus bandwidth in GB/s. Bus bandwidth is the figure to
compare with the fabric's line rate: for all-reduce each byte crosses the slowest link 2(n-1)/n times.
Uses NCCL on GPUs and gloo on CPUs (for a check without GPUs). Exits non-zero when a result is wrong.

Shipped by gpucluster in the multi-node example's ConfigMap; importing it needs only the standard library.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

FLOAT32_BYTES = 4


def bus_bandwidth(size_bytes: int, seconds: float, ranks: int) -> float:
    """All-reduce bus bandwidth in GB/s: the algorithm bandwidth times 2(n-1)/n (nccl-tests' definition)."""
    return algorithm_bandwidth(size_bytes, seconds) * 2 * (ranks - 1) / ranks


def algorithm_bandwidth(size_bytes: int, seconds: float) -> float:
    """Bytes reduced per second, in GB/s."""
    return size_bytes / seconds / 1e9


def message_sizes(min_bytes: int, max_bytes: int, factor: int) -> list[int]:
    """Buffer sizes from min to max, each ``factor`` times the last, rounded down to whole float32 elements."""
    if min_bytes < FLOAT32_BYTES or max_bytes < min_bytes or factor < 2:
        raise ValueError("need 4 <= min_bytes <= max_bytes and factor >= 2")
    sizes, size = [], min_bytes
    while size <= max_bytes:
        sizes.append(size - size % FLOAT32_BYTES)
        size *= factor
    return sizes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--min-bytes", type=int, default=8 << 20, help="smallest buffer (default 8 MiB)")
    parser.add_argument("--max-bytes", type=int, default=1 << 30, help="largest buffer (default 1 GiB)")
    parser.add_argument("--factor", type=int, default=2, help="size step (default 2)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed iterations per size")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per size")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, ranks = dist.get_rank(), dist.get_world_size()
    if cuda:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")

    def synchronize() -> None:
        if cuda:
            torch.cuda.synchronize(device)

    if rank == 0:
        print(f"# all-reduce, float32, {ranks} ranks, backend {dist.get_backend()}")
        print(f"# {'bytes':>12} {'time(us)':>12} {'algbw(GB/s)':>12} {'busbw(GB/s)':>12}")
    wrong = 0
    for size in message_sizes(args.min_bytes, args.max_bytes, args.factor):
        buffer = torch.ones(size // FLOAT32_BYTES, dtype=torch.float32, device=device)
        dist.all_reduce(buffer)
        wrong += int(not torch.all(buffer == ranks).item())
        for _ in range(args.warmup):
            dist.all_reduce(buffer)
        synchronize()
        dist.barrier()
        start = time.perf_counter()
        for _ in range(args.iters):
            dist.all_reduce(buffer)
        synchronize()
        elapsed = torch.tensor([(time.perf_counter() - start) / args.iters], dtype=torch.float64, device=device)
        dist.all_reduce(elapsed, op=dist.ReduceOp.MAX)  # the slowest rank decides
        seconds = float(elapsed.item())
        if rank == 0:
            algbw, busbw = algorithm_bandwidth(size, seconds), bus_bandwidth(size, seconds, ranks)
            print(f"  {size:>12} {seconds * 1e6:>12.1f} {algbw:>12.2f} {busbw:>12.2f}", flush=True)
    wrong_total = torch.tensor([wrong], device=device)
    dist.all_reduce(wrong_total)
    dist.destroy_process_group()
    if rank == 0 and wrong_total.item():
        print(f"# {int(wrong_total.item())} wrong result(s)", file=sys.stderr)
    return 1 if wrong_total.item() else 0


if __name__ == "__main__":
    sys.exit(main())
