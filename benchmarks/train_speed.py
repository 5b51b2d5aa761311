"""Training-step speed: eager, torch.compile, one CUDA graph per step, the FLOP floor, models at once.

    python benchmarks/train_speed.py [--model lvae] [--layers 5] [--steps 200] [--modes eager,graph]
                                     [--group 4,8] [--concurrent 1,4,8]

Paper sizes (512-256-128-64-32 / 64-32-16-8-4), BN, batch 256, 784 binary pixels
(random data: the step's cost does not depend on the pixels), fp32. Prints ms per step and
seconds per MNIST epoch (234 steps) for each mode, the step's FLOPs (torch.utils.flop_counter)
and the time that FLOP count needs at the device's peak; with --group, the cost per model of M
models stepping in lockstep (one CUDA graph for all in graph modes: `reproduce --group M`); with
--concurrent, the throughput of N training processes sharing the device (`reproduce --jobs N`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.config import RunConfig  # noqa: E402
from training.models import build_model  # noqa: E402
from training.objectives import training_loss  # noqa: E402
from training.step import GroupStep, ModelStep, TrainStep, make_optimizer, use_graph  # noqa: E402

STEPS_PER_EPOCH = 60_000 // 256
PEAK_TFLOPS = {"NVIDIA H200": 67.0, "NVIDIA H100 80GB HBM3": 67.0}  # dense fp32 (no tensor cores)


# mode -> (CUDA graph, torch.compile)
MODES = {"eager": (False, False), "compile": (False, True), "graph": (True, False), "compile+graph": (True, True)}


def build(model: str, layers: int, device: torch.device, mode: str, batch: int):
    graph, compiled = MODES[mode]
    cfg = RunConfig.make(model=model, layers=layers, dataset="mnist", input_dim=784, batch_size=batch, epochs=1)
    net = build_model(cfg).to(device).train()
    opt = make_optimizer(net, cfg.lr, graph, cfg.adam_eps)
    # the grid's step: the authors' clipping included
    return net, TrainStep(net, opt, batch, grad_clip=cfg.grad_clip, graph=graph, compile=compiled,
                          grad_clip_value=cfg.grad_clip_value)


def time_steps(step: TrainStep, data: torch.Tensor, steps: int, device: torch.device) -> float:
    """Seconds per step after warm-up (capture included in warm-up), synchronised at the ends only."""
    for i in range(10):
        step(data[i % data.shape[0]], 0.5)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for i in range(steps):
        step(data[i % data.shape[0]], 0.5)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def step_flops(model: str, layers: int, device: torch.device, batch: int) -> int:
    net, _ = build(model, layers, device, "eager", batch)
    x = torch.rand(batch, 784, device=device).bernoulli()
    with FlopCounterMode(display=False) as counter:
        loss, _ = training_loss(net, x, 0.5)
        loss.backward()
    return counter.get_total_flops()


def one_process(args) -> dict:
    device = torch.device(args.device)
    _, step = build(args.model, args.layers, device, args.mode, args.batch)
    data = torch.rand(16, args.batch, 784, device=device).bernoulli()
    return {"mode": args.mode, "ms_per_step": 1e3 * time_steps(step, data, args.steps, device)}


def grouped(args, m: int, mode: str, device: torch.device) -> float:
    """ms per step per model when m models step together in one GroupStep (one CUDA graph in graph modes)."""
    graph, compiled = MODES[mode]
    members = []
    for _ in range(m):
        cfg = RunConfig.make(model=args.model, layers=args.layers, dataset="mnist", input_dim=784, batch_size=args.batch, epochs=1)
        net = build_model(cfg).to(device).train()
        members.append(ModelStep(net, make_optimizer(net, cfg.lr, graph, cfg.adam_eps), args.batch,
                                 grad_clip=cfg.grad_clip, compile=compiled, grad_clip_value=cfg.grad_clip_value))
    group = GroupStep(members, graph=graph)
    data = torch.rand(16, args.batch, 784, device=device).bernoulli()
    step = lambda x, beta: group([x] * m, [beta] * m)  # noqa: E731  same batch for all: cost is what counts
    return 1e3 * time_steps(step, data, args.steps, device) / m


def concurrent(args, n: int, mode: str) -> float:
    """Wall seconds per step per model when n processes train at once."""
    cmd = [sys.executable, __file__, "--worker", "--mode", mode, "--steps", str(args.steps), "--model", args.model,
           "--layers", str(args.layers), "--device", args.device, "--batch", str(args.batch)]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [json.loads(p.communicate()[0]) for p in procs]
    wall = time.perf_counter() - t0
    per_step = max(o["ms_per_step"] for o in outs)  # the timed loops overlap; the slowest bounds the group
    return per_step / n, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="lvae", choices=("vae", "lvae"))
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--modes", default="eager,compile,graph,compile+graph", help="which of " + ",".join(MODES))
    p.add_argument("--concurrent", default="", help="comma-separated process counts, e.g. 1,4,8")
    p.add_argument("--group", default="", help="comma-separated model counts stepping in one GroupStep, e.g. 4,8")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="eager", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(one_process(args)))
        return
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    modes = [m for m in args.modes.split(",") if MODES[m][0] <= use_graph("auto", device)]
    print(f"device: {name}; torch {torch.__version__}; {args.model.upper()}+BN, {args.layers} layers, paper sizes, "
          f"batch {args.batch}, fp32; {args.steps} timed steps")
    report: dict = {"device": name, "torch": torch.__version__, "model": args.model, "layers": args.layers,
                    "batch": args.batch, "modes": {}}

    def save() -> None:  # after every number: a benchmark cut off by a time limit keeps what it measured
        if args.json:
            args.json.write_text(json.dumps(report, indent=1))
    for mode in modes:
        _, step = build(args.model, args.layers, device, mode, args.batch)
        data = torch.rand(16, args.batch, 784, device=device).bernoulli()
        t0 = time.perf_counter()
        step(data[0], 0.5)  # the first call compiles in compile modes
        first = time.perf_counter() - t0
        ms = 1e3 * time_steps(step, data, args.steps, device)
        report["modes"][mode] = ms
        report.setdefault("first_step_s", {})[mode] = first  # compilation and capture: what a short run pays once
        save()
        print(f"  {mode:13s} {ms:8.3f} ms/step  {ms * STEPS_PER_EPOCH / 1e3:7.3f} s/epoch  "
              f"2000 epochs: {ms * STEPS_PER_EPOCH * 2000 / 6e4:7.1f} min   (first step {first:.1f} s)")
    if not use_graph("auto", device):
        print("  graph, compile+graph: need a CUDA device, not measured here")
    flops = step_flops(args.model, args.layers, device, args.batch)
    peak = PEAK_TFLOPS.get(name)
    report["gflop_per_step"] = flops / 1e9
    floor = f"{flops / (peak * 1e12) * 1e3:.3f} ms/step at {peak:.0f} TFLOP/s fp32" if peak else "no peak known for this device"
    print(f"  FLOP count: {flops / 1e9:.2f} GFLOP/step (forward + backward); floor {floor}")
    if peak:
        best = min(report["modes"].values())
        print(f"  best mode is {best / (flops / (peak * 1e12) * 1e3):.0f}x above the floor")
    for m in [int(c) for c in args.group.split(",") if c]:
        for mode in modes:
            per_model = grouped(args, m, mode, device)
            report.setdefault("group", []).append({"models": m, "mode": mode, "ms_per_step_per_model": per_model})
            save()
            print(f"  {m} models in one group, {mode}: {per_model:.3f} ms/step per model "
                  f"({per_model * STEPS_PER_EPOCH / 1e3:.3f} s/epoch per model)")
    for n in [int(c) for c in args.concurrent.split(",") if c]:
        for mode in modes:
            per_model, wall = concurrent(args, n, mode)
            report.setdefault("concurrent", []).append({"processes": n, "mode": mode, "ms_per_step_per_model": per_model})
            save()
            print(f"  {n} processes, {mode}: {per_model:.3f} ms/step per model "
                  f"({per_model * STEPS_PER_EPOCH / 1e3:.3f} s/epoch per model; {wall:.1f} s wall)")
    save()


if __name__ == "__main__":
    main()
