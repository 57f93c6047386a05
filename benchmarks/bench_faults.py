"""Speed of the faults pillar against PyTorchFI 0.6.0, on the same faults, in one run.

Campaign: single-bit flips over every bit of every Conv2d/Linear weight (``bit-uniform``, the
physical fault model) and, reported too, ``layer-uniform`` (each layer equally likely). Every
fault is followed by a forward pass over the batch and a comparison with the fault-free top-1.

Methods, all in strict fp32 (TF32 off), on the same faults:

``pytorchfi``
    PyTorchFI 0.6.0 ``declare_weight_fi`` with the bit-flipped value (computed on the host
    beforehand, which favours PyTorchFI), then a forward pass of the corrupted copy;
``full``
    trustbench's engine with a full forward pass per fault (in-place XOR, no host sync), eager,
    every fault run (no inert-word pruning): the independent reference every other method's
    decisions are compared with;
``full_graph`` (CUDA only)
    the same, each forward pass + comparison replayed as a CUDA graph: the one-forward-per-fault
    ceiling;
``suffix_eager`` (CUDA only)
    suffix recomputation without CUDA graphs;
``trustbench``
    trustbench's engine with its defaults: suffix recomputation, CUDA graphs on a GPU, faults
    that hit inert words (every product they enter multiplies a zero input, e.g. kernel taps
    over padding only; ``faults.inert``) decided as masked without a forward pass;
``no_pruning``
    the same defaults with every fault run (``prune_inert=False``);
``cuts_one_value``, ``cuts_multi_value``
    the same defaults, with the chain cut only where one value is alive (``max_live=1``:
    between residual blocks, a fault in a block's conv2 re-runs the whole block), or also
    where several are (``max_live=4``: inside the blocks, from the cached branch activation
    and block input); the default is ``faults.campaign.default_max_live`` of the device.

Activation faults: trustbench's one-bit-flip-per-sample hooks (CUDA graph of the faulty forward
pass on a GPU; eager too, for comparison) against PyTorchFI's ``random_neuron_inj_batched``
(random values, not bit flips), both one fault per sample. On a GPU the plain forward pass is
timed too (eager and CUDA graph, strict fp32 and TF32): the ceiling of activation faults/s.

On a GPU, weight-fault rows also show suffix recomputation without concurrent lanes
(``suffix_graphs_1_lane``) and with cuDNN convolutions in TF32 (``trustbench_tf32_conv``, not
the default: decisions may differ from strict fp32); ``--explore`` adds other lane counts and
activation batch sizes. ``--fault-batches`` adds batched weight faults (``fault_batch=K``: K
faults of one start segment share one pass of the later segments; rows ``fault_batch_K``, with
``--explore`` on a GPU also ``fault_batch_K_1_lane``), each with its decisions compared with the
full forward pass.

Run::

    python benchmarks/bench_faults.py --device cpu --model mnist5k-cnn --batch 1000 --threads 2
    python benchmarks/bench_faults.py --device cuda --model resnet18 --batch 256 \
        --activation-faults 25600 --activation-batch 1024
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's packages


def build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    torch.manual_seed(0)
    if name == "mnist5k-cnn":  # the trained built-in task (LeNet-style, real MNIST digits)
        from trustbench.config import build_config
        from trustbench.tasks import build_task

        task = build_task(name, build_config({}, "."))
        model = task.model.cpu().eval()
        model.bench_data = (task.x_test, task.y_test)
        return model, tuple(task.input_shape)
    if name == "lenet":
        from trustbench.models import LeNet

        return LeNet().eval(), (1, 28, 28)
    if name == "resnet18":
        from torchvision.models import resnet18

        return resnet18(num_classes=10).eval(), (3, 32, 32)
    raise SystemExit(f"unknown model {name}")


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def flipped_values(sites, plan) -> list[float]:
    """The float32 value of each fault's weight after its bit flip (host side)."""
    out = []
    for s, e, b in zip(plan.site, plan.element, plan.bit):
        w = sites[s].tensor.detach().reshape(-1)[int(e)].cpu().numpy().copy()
        w.view(np.uint32)[...] ^= np.uint32(1 << int(b))
        out.append(float(w))
    return out


def run_pytorchfi(model, x, golden, sites, plan, values, device) -> tuple[float, np.ndarray]:
    from pytorchfi.core import fault_injection

    pfi = fault_injection(model, len(x), input_shape=list(x.shape[1:]),
                          layer_types=[nn.Conv2d, nn.Linear], use_cuda=device.type == "cuda")
    changed = []
    sync(device)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s, e, v in zip(plan.site, plan.element, values):
            shape = sites[s].tensor.shape
            idx = list(np.unravel_index(int(e), shape)) + [None] * (4 - len(shape))
            corrupted = pfi.declare_weight_fi(layer_num=[int(s)], k=[int(idx[0])],
                                              dim1=[int(idx[1])], dim2=[idx[2]],
                                              dim3=[idx[3]], value=[v])
            out = corrupted(x)
            changed.append((out.argmax(1) != golden).any() | ~torch.isfinite(out).all())
    res = torch.stack(changed).cpu().numpy()
    sync(device)
    return time.perf_counter() - t0, res


def timed_campaign(model, x, y, **kw):
    from trustbench.faults.campaign import run_campaign

    sync(x.device)
    t0 = time.perf_counter()
    res = run_campaign(model, x, y, **kw)
    sync(x.device)
    return time.perf_counter() - t0, res


@contextlib.contextmanager
def tf32_conv(enabled: bool = True):
    """cuDNN convolutions in TF32 (torch's default), inside the benchmark's strict context."""
    if not enabled:
        yield
        return
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def graph_seconds_per_replay(fn, device, reps: int) -> float:
    """Capture ``fn()`` in a CUDA graph (after a warm-up on a side stream), then time replays."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        fn()
    torch.cuda.current_stream().wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    g.replay()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        g.replay()
    sync(device)
    seconds = (time.perf_counter() - t0) / reps
    del g
    return seconds


def forward_ceiling(model, x, reps: int = 20) -> dict:
    """Images/s of a plain forward pass (eager, CUDA graph): strict fp32, and torch's defaults
    (cuDNN convolutions in TF32, as in ANCHORS.md)."""
    from trustbench.faults.runtime import strict_fp32

    out = {}
    bench_flag = torch.backends.cudnn.benchmark
    for label, strict, autotune in (("strict_fp32", True, False),
                                    ("strict_fp32_cudnn_benchmark", True, True),
                                    ("tf32_conv", False, False)):
        torch.backends.cudnn.benchmark = autotune
        with strict_fp32(strict), tf32_conv(not strict), torch.no_grad():
            for _ in range(3):
                model(x)
            sync(x.device)
            t0 = time.perf_counter()
            for _ in range(reps):
                model(x)
            sync(x.device)
            eager = reps * len(x) / (time.perf_counter() - t0)
            graph = len(x) / graph_seconds_per_replay(lambda: model(x), x.device, reps)
        out[label] = {"eager_images_per_s": eager, "graph_images_per_s": graph}
    torch.backends.cudnn.benchmark = bench_flag
    return out


def segment_times(model, x, sizes=(256, 1024, 4096), reps: int = 20) -> dict:
    """GPU microseconds per 256 inputs of each segment of the weight-fault chain, replayed as a
    CUDA graph at several batch sizes (strict fp32): what batched faults could save."""
    from trustbench.faults.runtime import strict_fp32
    from trustbench.faults.segments import linearise
    from trustbench.faults.sites import weight_sites

    sites = weight_sites(model, ["Conv2d", "Linear"])
    chain = linearise(model, [s.tensor for s in sites], x)
    out: dict = {"params_per_segment": [sum(p.numel() for p in seg.parameters())
                                        for seg in chain.segments]}
    with strict_fp32(), torch.no_grad():
        inputs, _ = chain.trace(x)
        for bsz in sizes:
            row = []
            for k, seg in enumerate(chain.segments):
                h = inputs[k][torch.arange(bsz, device=x.device) % len(x)]
                sec = graph_seconds_per_replay(lambda seg=seg, h=h: seg(h), x.device, reps)
                row.append(round(sec * 1e6 * 256 / bsz, 1))
            out[f"us_per_256_at_{bsz}"] = row
    return out


def profile_forward(model, x) -> str:
    """Table of the CUDA kernels of one strict-fp32 forward pass (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    from trustbench.faults.runtime import strict_fp32

    with strict_fp32(), torch.no_grad():
        model(x)
        sync(x.device)
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            model(x)
            sync(x.device)
    return prof.key_averages().table(sort_by="cuda_time_total", row_limit=12,
                                     max_name_column_width=70)


def phase_times(model, x, y, sites, fm, plan) -> dict:
    """Seconds spent in the engine's phases for one campaign (weights, defaults)."""
    from trustbench.faults.weight_engine import WeightEngineConfig, WeightFaultEngine

    dev = x.device
    sync(dev)
    t0 = time.perf_counter()
    eng = WeightFaultEngine(model, sites, x, y, WeightEngineConfig(batch_size=len(x)))
    sync(dev)
    t1 = time.perf_counter()
    starts = np.asarray(eng.start, dtype=np.int64)[plan.site]
    eng._prepare(starts)
    sync(dev)
    t2 = time.perf_counter()
    eng._seen[:] = 0
    eng.run(fm, plan.site, plan.element, plan.payload)
    sync(dev)
    t3 = time.perf_counter()
    mode, why = eng.execution
    eng.close()
    return {"golden_and_trace_s": t1 - t0, "captures_s": t2 - t1, "loop_s": t3 - t2,
            "faults_per_start_segment": np.bincount(starts).tolist(), "execution": mode,
            "execution_reason": why}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="lenet", choices=["mnist5k-cnn", "lenet", "resnet18"])
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--faults", type=int, default=200)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--activation-faults", type=int, default=0,
                    help="also time activation faults (0: skip)")
    ap.add_argument("--activation-batch", type=int, default=4096,
                    help="also time activation faults at this many faults per forward pass")
    ap.add_argument("--skip-pytorchfi", action="store_true")
    ap.add_argument("--explore", action="store_true",
                    help="also time other lane counts and activation batch sizes (CUDA)")
    ap.add_argument("--profile", action="store_true",
                    help="also print the CUDA kernels of one strict-fp32 forward pass")
    ap.add_argument("--fault-batches", default="4,8,16",
                    help="also time weight faults evaluated K at a time (batched faults), for "
                         "these K (comma-separated; empty: skip)")
    ap.add_argument("--segment-times", action="store_true",
                    help="also time each segment of the weight-fault chain at several batch "
                         "sizes (CUDA)")
    ap.add_argument("--reps", type=int, default=3,
                    help="interleaved repetitions of the headline rows (trustbench with and "
                         "without pruning, PyTorchFI); medians are reported")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from trustbench import faults  # noqa: F401  (registers the fault models)
    from trustbench.faults.campaign import plan_faults
    from trustbench.faults.runtime import strict_fp32
    from trustbench.faults.segments import MAX_LIVE
    from trustbench.faults.sites import weight_sites

    device = torch.device(args.device)
    model, shape = build(args.model)
    model.to(device)
    data = getattr(model, "bench_data", None)
    if data is not None:
        x, y = data[0][: args.batch].to(device), data[1][: args.batch].to(device)
    else:
        g = torch.Generator().manual_seed(1)
        x = torch.rand(args.batch, *shape, generator=g).to(device)
    with torch.no_grad():
        golden = model(x).argmax(1)
    if data is None:
        y = golden.clone()
    sites = weight_sites(model, ["Conv2d", "Linear"])
    from trustbench import registry

    fm = registry.get("fault", "bitflip")()
    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "model": args.model, "params": sum(p.numel() for p in model.parameters()),
        "batch": args.batch, "faults": args.faults,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    results: dict = {"env": env, "weights": {}, "activations": {}}
    with strict_fp32():
        # warm-up (cuDNN autotuning, allocator, tracing caches)
        timed_campaign(model, x, y, n_faults=10, seed=99)
        for dist in ("bit-uniform", "layer-uniform"):
            plan = plan_faults(fm, [s.numel for s in sites], [s.layout for s in sites],
                               args.faults, dist, seed=7)
            row: dict = {}
            # the headline rows, interleaved --reps times; their medians are reported
            times: dict[str, list[float]] = {"trustbench": [], "no_pruning": [], "pytorchfi": []}
            values = None if args.skip_pytorchfi else flipped_values(sites, plan)
            for _ in range(args.reps):
                t_i, fast = timed_campaign(model, x, y, n_faults=args.faults, seed=7,
                                           distribution=dist, layer_types=("Conv2d", "Linear"))
                times["trustbench"].append(t_i)
                t_i, no_prune = timed_campaign(model, x, y, n_faults=args.faults, seed=7,
                                               distribution=dist,
                                               layer_types=("Conv2d", "Linear"),
                                               prune_inert=False)
                times["no_pruning"].append(t_i)
                if values is not None:
                    t_i, pfi = run_pytorchfi(model, x, golden, sites, plan, values, device)
                    times["pytorchfi"].append(t_i)
            t_fast, t_np = (float(np.median(times[k])) for k in ("trustbench", "no_pruning"))
            row["reps"] = {k: [round(args.faults / t, 1) for t in v] for k, v in times.items()}
            t_full, full = timed_campaign(model, x, y, n_faults=args.faults, seed=7,
                                          distribution=dist, layer_types=("Conv2d", "Linear"),
                                          suffix=False, cuda_graphs=False, prune_inert=False)
            assert np.array_equal(fast.plan.element, plan.element)
            row["trustbench"] = {"inj_per_s": args.faults / t_fast,
                                 "inj_per_s_loop_only": fast.faults_per_second,
                                 "path": fast.path, "path_reason": fast.path_reason,
                                 "execution": fast.execution,
                                 "execution_reason": fast.execution_reason,
                                 "pruned_faults": fast.n_pruned,
                                 "inert_bits_share": fast.inert_bits_share}
            row["no_pruning"] = {"inj_per_s": args.faults / t_np,
                                 "inj_per_s_loop_only": no_prune.faults_per_second,
                                 "execution": no_prune.execution,
                                 "outcomes_equal_to_full": int((no_prune.outcomes
                                                                == full.outcomes).sum())}
            row["full_forward"] = {"inj_per_s": args.faults / t_full,
                                   "execution": full.execution}
            for key, ml in (("cuts_one_value", 1), ("cuts_multi_value", MAX_LIVE)):
                t_c, cut = timed_campaign(model, x, y, n_faults=args.faults, seed=7,
                                          distribution=dist, layer_types=("Conv2d", "Linear"),
                                          max_live=ml)
                row[key] = {
                    "inj_per_s": args.faults / t_c, "inj_per_s_loop_only": cut.faults_per_second,
                    "path_reason": cut.path_reason, "execution_reason": cut.execution_reason,
                    "outcomes_equal_to_full": int((cut.outcomes == full.outcomes).sum())}
            ours = fast.outcomes != 0
            row["agree_suffix_vs_full"] = int((ours == (full.outcomes != 0)).sum())
            row["outcomes_equal_suffix_vs_full"] = int((fast.outcomes == full.outcomes).sum())
            if device.type == "cuda":
                for key, kw in (("full_forward_graph", {"suffix": False,
                                                        "prune_inert": False}),
                                ("suffix_eager", {"cuda_graphs": False}),
                                ("suffix_graphs_1_lane", {"lanes": 1}),
                                ("trustbench_tf32_conv", {"strict_fp32": False})):
                    with tf32_conv("tf32" in key):
                        t_o, other = timed_campaign(model, x, y, n_faults=args.faults, seed=7,
                                                    distribution=dist,
                                                    layer_types=("Conv2d", "Linear"), **kw)
                    row[key] = {"inj_per_s": args.faults / t_o,
                                "inj_per_s_loop_only": other.faults_per_second,
                                "execution": other.execution,
                                "outcomes_equal_to_full": int((other.outcomes
                                                               == full.outcomes).sum())}
                    row[f"speedup_vs_{key}"] = t_o / t_fast
            if values is not None:
                t_pfi = float(np.median(times["pytorchfi"]))
                row["pytorchfi"] = {"inj_per_s": args.faults / t_pfi}
                row["agree_with_pytorchfi"] = int((pfi == ours).sum())
                row["speedup_vs_pytorchfi"] = t_pfi / t_fast
                row["no_pruning"]["speedup_vs_pytorchfi"] = t_pfi / t_np
            row["speedup_vs_full_forward"] = t_full / t_fast
            for kb in [int(v) for v in args.fault_batches.split(",") if v.strip()]:
                lane_opts = [None, 1] if (args.explore and device.type == "cuda") else [None]
                for lanes in lane_opts:
                    t_o, other = timed_campaign(model, x, y, n_faults=args.faults, seed=7,
                                                distribution=dist, fault_batch=kb, lanes=lanes,
                                                layer_types=("Conv2d", "Linear"))
                    key = f"fault_batch_{kb}" + ("_1_lane" if lanes == 1 else "")
                    row[key] = {"inj_per_s": args.faults / t_o,
                                "inj_per_s_loop_only": other.faults_per_second,
                                "execution": other.execution,
                                "execution_reason": other.execution_reason,
                                "outcomes_equal_to_full": int((other.outcomes
                                                               == full.outcomes).sum()),
                                "changed_equal_to_full": int(np.sum(
                                    np.asarray(other.state.changed)
                                    == np.asarray(full.state.changed)))}
                    if "pytorchfi" in row:
                        row[key]["speedup_vs_pytorchfi"] = (args.faults / t_o) / row[
                            "pytorchfi"]["inj_per_s"]
                if args.explore:  # groups only where more than the head follows the segment
                    from trustbench.faults.weight_engine import WeightFaultEngine

                    plain = WeightFaultEngine._groupable

                    def deep(self, st, plain=plain):
                        return st < len(self.chain.segments) - 2 and plain(self, st)

                    WeightFaultEngine._groupable = deep  # type: ignore[method-assign]
                    try:
                        t_o, other = timed_campaign(model, x, y, n_faults=args.faults, seed=7,
                                                    distribution=dist, fault_batch=kb,
                                                    layer_types=("Conv2d", "Linear"))
                    finally:
                        WeightFaultEngine._groupable = plain  # type: ignore[method-assign]
                    row[f"fault_batch_{kb}_not_last_block"] = {
                        "inj_per_s": args.faults / t_o,
                        "inj_per_s_loop_only": other.faults_per_second,
                        "execution_reason": other.execution_reason,
                        "outcomes_equal_to_full": int((other.outcomes == full.outcomes).sum()),
                        "changed_equal_to_full": int(np.sum(np.asarray(other.state.changed)
                                                            == np.asarray(full.state.changed)))}
            if args.explore and device.type == "cuda" and dist == "bit-uniform":
                for lanes in (2, 8):
                    t_o, other = timed_campaign(model, x, y, n_faults=args.faults, seed=7,
                                                distribution=dist, lanes=lanes,
                                                layer_types=("Conv2d", "Linear"))
                    row[f"lanes_{lanes}"] = {"inj_per_s": args.faults / t_o,
                                             "inj_per_s_loop_only": other.faults_per_second,
                                             "outcomes_equal_to_full": int(
                                                 (other.outcomes == full.outcomes).sum())}
            row["phases"] = phase_times(model, x, y, sites, fm, plan)
            row["sdc_decisions"] = int(ours.sum())
            results["weights"][dist] = row
        if args.activation_faults:
            n = args.activation_faults
            timed_campaign(model, x, y, target="activations", n_faults=4 * len(x), seed=98,
                           batch_size=len(x))
            t_act, act = timed_campaign(model, x, y, target="activations", n_faults=n, seed=3,
                                        batch_size=len(x), layer_types=("Conv2d", "Linear"))
            results["activations"]["trustbench"] = {"faults_per_s": n / t_act,
                                                    "faults_per_s_loop_only":
                                                        act.faults_per_second,
                                                    "faults_per_forward": len(x),
                                                    "execution": act.execution,
                                                    "execution_reason": act.execution_reason}
            if device.type == "cuda":
                for key, kw in (("trustbench_eager", {"cuda_graphs": False}),
                                ("trustbench_1_lane", {"lanes": 1}),
                                ("trustbench_tf32_conv", {"strict_fp32": False})):
                    with tf32_conv("tf32" in key):
                        t_ae, act_e = timed_campaign(model, x, y, target="activations",
                                                     n_faults=n, seed=3, batch_size=len(x),
                                                     layer_types=("Conv2d", "Linear"), **kw)
                    results["activations"][key] = {
                        "faults_per_s": n / t_ae, "faults_per_forward": len(x),
                        "outcomes_equal_to_default": int((act_e.outcomes == act.outcomes).sum()),
                        "n": n, "execution": act_e.execution}
            if args.explore and device.type == "cuda":
                for bsz, lanes in ((len(x), 2), (len(x), 8), (1024, 1), (1024, 4)):
                    timed_campaign(model, x, y, target="activations", n_faults=bsz, seed=96,
                                   batch_size=bsz, lanes=lanes)
                    t_e, act_x = timed_campaign(model, x, y, target="activations", n_faults=n,
                                                seed=3, batch_size=bsz, lanes=lanes,
                                                layer_types=("Conv2d", "Linear"))
                    results["activations"][f"batch_{bsz}_lanes_{lanes}"] = {
                        "faults_per_s": n / t_e, "faults_per_s_loop_only":
                            act_x.faults_per_second, "execution": act_x.execution}
            big = args.activation_batch
            timed_campaign(model, x, y, target="activations", n_faults=big, seed=97,
                           batch_size=big)
            t_big, act_big = timed_campaign(model, x, y, target="activations",
                                            n_faults=max(n, 4 * big), seed=3, batch_size=big,
                                            layer_types=("Conv2d", "Linear"))
            results["activations"]["trustbench_big_batch"] = {
                "faults_per_s": act_big.n_faults / t_big, "faults_per_forward": big,
                "faults_per_s_loop_only": act_big.faults_per_second,
                "execution": act_big.execution}
            if device.type == "cuda":
                results["activations"]["forward_ceiling"] = {
                    str(len(x)): forward_ceiling(model, x),
                    str(big): forward_ceiling(model, x[torch.arange(big, device=device)
                                                       % len(x)], reps=5)}
            if not args.skip_pytorchfi:
                from pytorchfi.core import fault_injection
                from pytorchfi.neuron_error_models import random_neuron_inj_batched

                pfi = fault_injection(model, len(x), input_shape=list(shape),
                                      layer_types=[nn.Conv2d, nn.Linear],
                                      use_cuda=device.type == "cuda")
                reps = max(1, n // len(x))
                outs = []
                sync(device)
                t0 = time.perf_counter()
                with torch.no_grad():
                    for _ in range(reps):
                        out = random_neuron_inj_batched(pfi)(x)
                        outs.append((out.argmax(1) != golden).sum())
                torch.stack(outs).cpu()
                sync(device)
                t_pfi = time.perf_counter() - t0
                results["activations"]["pytorchfi_random_value"] = {
                    "faults_per_s": reps * len(x) / t_pfi}
                results["activations"]["speedup_vs_pytorchfi"] = (
                    (n / t_act) / (reps * len(x) / t_pfi))
    if args.profile and device.type == "cuda":
        results["profile"] = profile_forward(model, x)
    if args.segment_times and device.type == "cuda":
        results["segment_times"] = segment_times(model, x)
    print(json.dumps(results, indent=2))
    print(summary(results))
    if "profile" in results:
        print(results["profile"])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


def summary(results: dict) -> str:
    """A short table of the headline figures (the end of the output)."""
    lines = [f"# {results['env']['device']} torch {results['env']['torch']} "
             f"{results['env']['model']} batch {results['env']['batch']}"]
    for dist, row in results["weights"].items():
        batched = sorted(k for k in row if k.startswith("fault_batch_"))
        cells = [f"{k}={row[k]['inj_per_s']:.0f}/s" for k in
                 ("pytorchfi", "full_forward", "full_forward_graph", "suffix_eager",
                  "no_pruning",
                  "suffix_graphs_1_lane", "lanes_2", "lanes_8", "trustbench_tf32_conv",
                  "cuts_one_value", "cuts_multi_value", "trustbench") if k in row]
        cells += [f"(loop only: trustbench {row['trustbench']['inj_per_s_loop_only']:.0f}/s, "
                  f"one-value cuts {row['cuts_one_value']['inj_per_s_loop_only']:.0f}/s, "
                  f"multi-value cuts {row['cuts_multi_value']['inj_per_s_loop_only']:.0f}/s; "
                  f"default chain: {row['trustbench']['path_reason'][:60]})"]
        cells += [f"{k}={row[k]['inj_per_s']:.0f}/s (loop {row[k]['inj_per_s_loop_only']:.0f},"
                  f" eq {row[k]['outcomes_equal_to_full']}, chg {row[k]['changed_equal_to_full']})"
                  for k in batched]
        ratio = row.get("speedup_vs_pytorchfi")
        ratio_np = row["no_pruning"].get("speedup_vs_pytorchfi")
        share = row["trustbench"]["inert_bits_share"]
        lines.append(f"weights {dist}: " + " ".join(cells)
                     + (f" | x pytorchfi {ratio:.1f}" if ratio else "")
                     + (f" (no pruning {ratio_np:.1f})" if ratio_np else "")
                     + f" | pruned {row['trustbench']['pruned_faults']}/{results['env']['faults']}"
                     + (f", inert bits {share:.3f}" if share is not None else "")
                     + f" | equal to full {row['outcomes_equal_suffix_vs_full']}"
                     + f" | {row['trustbench']['execution']}")
    for k, v in results["activations"].items():
        if isinstance(v, dict) and "faults_per_s" in v:
            lines.append(f"activations {k}: {v['faults_per_s']:.0f} faults/s"
                         + (f" ({v['execution']})" if "execution" in v else ""))
    for k, v in results.get("segment_times", {}).items():
        lines.append(f"segments {k}: {v}")
    for bsz, modes in results["activations"].get("forward_ceiling", {}).items():
        lines.append(f"forward batch {bsz}: " + " ".join(
            f"{m}={v['eager_images_per_s']:.0f}/{v['graph_images_per_s']:.0f}"
            for m, v in modes.items()) + " images/s (eager/graph)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
