"""Speed of the faults pillar against PyTorchFI 0.6.0, on the same faults, in one run.

Campaign: single-bit flips over every bit of every Conv2d/Linear weight (``bit-uniform``, the
physical fault model) and, reported too, ``layer-uniform`` (each layer equally likely). Every
fault is followed by a forward pass over the batch and a comparison with the fault-free top-1.

Methods, all in strict fp32 (TF32 off), on the same faults:

``pytorchfi``
    PyTorchFI 0.6.0 ``declare_weight_fi`` with the bit-flipped value (computed on the host
    beforehand, which favours PyTorchFI), then a forward pass of the corrupted copy;
``full``
    trustbench's engine with a full forward pass per fault (in-place XOR, no host sync): the
    one-forward-per-fault ceiling;
``trustbench``
    trustbench's engine with suffix recomputation (the default).

Activation faults: trustbench's one-bit-flip-per-sample hooks against PyTorchFI's
``random_neuron_inj_batched`` (random values, not bit flips), both one fault per sample.

Run::

    python benchmarks/bench_faults.py --device cpu --model mnist5k-cnn --batch 1000 --threads 2
    python benchmarks/bench_faults.py --device cuda --model resnet18 --batch 256
"""

from __future__ import annotations

import argparse
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
    from faults.campaign import run_campaign

    sync(x.device)
    t0 = time.perf_counter()
    res = run_campaign(model, x, y, **kw)
    sync(x.device)
    return time.perf_counter() - t0, res


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
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import faults  # noqa: F401  (registers the fault models)
    from faults.campaign import plan_faults
    from faults.engine import strict_fp32
    from faults.sites import weight_sites

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
            t_fast, fast = timed_campaign(model, x, y, n_faults=args.faults, seed=7,
                                          distribution=dist, layer_types=("Conv2d", "Linear"))
            t_full, full = timed_campaign(model, x, y, n_faults=args.faults, seed=7,
                                          distribution=dist, layer_types=("Conv2d", "Linear"),
                                          suffix=False)
            assert np.array_equal(fast.plan.element, plan.element)
            row["trustbench"] = {"inj_per_s": args.faults / t_fast,
                                 "inj_per_s_loop_only": fast.faults_per_second,
                                 "path": fast.path, "path_reason": fast.path_reason}
            row["full_forward"] = {"inj_per_s": args.faults / t_full}
            ours = fast.outcomes != 0
            row["agree_suffix_vs_full"] = int((ours == (full.outcomes != 0)).sum())
            if not args.skip_pytorchfi:
                values = flipped_values(sites, plan)
                t_pfi, pfi = run_pytorchfi(model, x, golden, sites, plan, values, device)
                row["pytorchfi"] = {"inj_per_s": args.faults / t_pfi}
                row["agree_with_pytorchfi"] = int((pfi == ours).sum())
                row["speedup_vs_pytorchfi"] = t_pfi / t_fast
            row["speedup_vs_full_forward"] = t_full / t_fast
            row["sdc_decisions"] = int(ours.sum())
            results["weights"][dist] = row
        if args.activation_faults:
            n = args.activation_faults
            timed_campaign(model, x, y, target="activations", n_faults=len(x), seed=98,
                           batch_size=len(x))
            t_act, act = timed_campaign(model, x, y, target="activations", n_faults=n, seed=3,
                                        batch_size=len(x), layer_types=("Conv2d", "Linear"))
            results["activations"]["trustbench"] = {"faults_per_s": n / t_act,
                                                    "faults_per_s_loop_only":
                                                        act.faults_per_second,
                                                    "faults_per_forward": len(x)}
            big = args.activation_batch
            timed_campaign(model, x, y, target="activations", n_faults=big, seed=97,
                           batch_size=big)
            t_big, act_big = timed_campaign(model, x, y, target="activations",
                                            n_faults=max(n, 4 * big), seed=3, batch_size=big,
                                            layer_types=("Conv2d", "Linear"))
            results["activations"]["trustbench_big_batch"] = {
                "faults_per_s": act_big.n_faults / t_big, "faults_per_forward": big,
                "faults_per_s_loop_only": act_big.faults_per_second}
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
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
