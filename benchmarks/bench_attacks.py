"""Attacks side by side: trustbench native vs ART vs torchattacks (PGD-10 L-inf; Square).

``--attack pgd`` (default) times PGD-10 L-inf; one run times, on the same model, inputs and
device:

- ``trustbench``: ``attacks.PGD`` (the full ``__call__``: input checks, clean and verification
  passes, projection, parameter checks), early stop off so that every implementation does the
  same work; on CUDA its default path (one step captured in a CUDA graph);
- ``trustbench-eager``: the same with ``cuda_graph=False`` (CUDA only);
- ``trustbench-contiguous``: the same without the CPU channels-last fast path (CPU only);
- ``trustbench-early-stop``: the default settings (early stop on), for information;
- ``art``: ART's ``ProjectedGradientDescent`` on a ``PyTorchClassifier``;
- ``torchattacks``: ``torchattacks.PGD`` (if installed);
- ``limit``: 10 x (forward + input-gradient backward) with frozen parameters, the cost floor
  of PGD-10 for the model as given (captured in a CUDA graph on CUDA; eager, in the model's own
  memory layout, on the CPU, which trustbench's channels-last path can beat).

Models: ``lenet`` (1x28x28 MNIST-shaped LeNet; with ``--task mnist5k-cnn`` the trained task
model) and ``resnet18`` (torchvision, 10 classes, 3x32x32). Inputs are random; labels are the
model's own predictions, so every sample starts correctly classified. Reports images/s
(median over repetitions after warm-up) and ratios; ``--json FILE`` writes everything.

``--attack square`` times the Square Attack (black box, ``--norm linf|l2``, ``--queries`` per
sample, the initial query included) with the same budget in every implementation:

- ``trustbench``: ``attacks.SquareAttack(eps, norm, max_iter=queries)`` (native, batched, on
  the device; the full ``__call__``);
- ``trustbench-contiguous``: the same without the CPU channels-last fast path (CPU only);
- ``art``: the ``square-art`` adapter (ART's ``SquareAttack``, ``max_iter=queries - 1``: ART
  adds the initial query);
- ``torchattacks``: ``torchattacks.Square(n_queries=queries - 1)`` (AutoAttack's port; it
  also adds the initial query).

and reports images/s and the robust accuracy each reaches (with a Clopper-Pearson interval),
one timed run each after a warm-up on 16 samples (``--reps`` to repeat, round robin; the runs
take seconds to minutes).

Usage::

    python benchmarks/bench_attacks.py --device cpu --model lenet --batch 1000
    python benchmarks/bench_attacks.py --device cuda --model resnet18 --batch 256
    python benchmarks/bench_attacks.py --attack square --device cpu --task mnist5k-cnn \
        --data test --batch 200 --norm linf --eps 0.3 --queries 1000 --threads 2
    python benchmarks/bench_attacks.py --attack square --device cpu --task mnist5k-cnn \
        --data test --batch 200 --norm l2 --eps 2.0 --queries 1000 --threads 2
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trustbench import attacks


class LeNet(nn.Module):
    """LeNet-style MNIST CNN (1x28x28 -> 10)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def run_info(device: torch.device) -> dict:
    """Command, date, machine, device and torch version of this run (for the JSON record)."""
    return {
        "command": " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def build(model: str, task: str | None, device: torch.device) -> tuple[nn.Module, Any]:
    if task:
        from trustbench.config import RunConfig
        from trustbench.tasks import build_task

        t = build_task(task, RunConfig(tasks=[task], device_name=str(device)))
        return t.model.to(device).eval(), t
    if model == "lenet":
        torch.manual_seed(0)
        return LeNet().to(device).eval(), None
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(num_classes=10).to(device).eval(), None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def limit_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> Callable[[], Any]:
    """10 x (forward + input-gradient backward), parameters frozen; CUDA graph on CUDA."""
    for p in model.parameters():
        p.requires_grad_(False)
    xs = x.clone()

    def one() -> torch.Tensor:
        xa = xs.detach().requires_grad_(True)
        loss = F.cross_entropy(model(xa), y, reduction="sum")
        return torch.autograd.grad(loss, xa)[0]

    if x.is_cuda:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                one()
        torch.cuda.current_stream().wait_stream(side)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            one()

        def run() -> None:
            for _ in range(steps):
                g.replay()

        return run

    def run_eager() -> None:
        for _ in range(steps):
            one()

    return run_eager


def bench_square(
    args: argparse.Namespace,
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    reps: int,
    skip: set[str],
) -> None:
    """Square Attack: native vs ART (``square-art``) vs torchattacks, same queries and eps."""
    from trustbench.stats import clopper_pearson_interval

    device, batch, eps, norm, q = x.device, len(x), args.eps, args.norm, args.queries
    fns: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {}
    native = attacks.SquareAttack(eps=eps, norm=norm, max_iter=q)
    fns["trustbench"] = lambda xx, yy: native(model, xx, yy, seed=0).x_adv
    if device.type == "cpu":
        plain = attacks.SquareAttack(eps=eps, norm=norm, max_iter=q)
        plain.channels_last_on_cpu = False  # type: ignore[misc]
        fns["trustbench-contiguous"] = lambda xx, yy: plain(model, xx, yy, seed=0).x_adv
    if "art" not in skip:
        try:
            import art  # noqa: F401

            art_sq = attacks.ARTSquareAttack(eps=eps, norm=norm, max_iter=q - 1, batch_size=batch)
            fns["art"] = lambda xx, yy: art_sq(model, xx, yy, seed=0).x_adv
        except ImportError as exc:
            print(f"art: not installed ({exc})")
    if "torchattacks" not in skip:
        try:
            import torchattacks

            ta = torchattacks.Square(
                model, norm="Linf" if norm == "linf" else "L2", eps=eps, n_queries=q - 1, seed=0
            )
            fns["torchattacks"] = lambda xx, yy: ta(xx, yy)
        except ImportError as exc:
            print(f"torchattacks: not installed ({exc})")
    times: dict[str, list[float]] = {k: [] for k in fns}
    robust: dict[str, int] = {}
    with torch.no_grad():
        clean = model(x).argmax(1) == y
    for fn in fns.values():  # warm-up on a few samples (allocator, oneDNN, channels-last check)
        fn(x[:16], y[:16])
    sync(device)
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            adv = fn(x, y)
            sync(device)
            times[k].append(time.perf_counter() - t0)
            with torch.no_grad():
                delta = (adv - x).flatten(1)
                size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
                assert float(size.max()) <= eps * (1 + 1e-5) + 1e-6, (k, float(size.max()))
                robust[k] = int((clean & (model(adv).argmax(1) == y)).sum())
    results: dict[str, float] = {}
    print(
        f"square {norm} eps {eps:g}, {q} queries/sample, {batch} samples, "
        f"clean accuracy {float(clean.float().mean()):.3f}"
    )
    for k, ts in times.items():
        sec = statistics.median(ts)
        results[k] = batch / sec
        lo, hi = clopper_pearson_interval(robust[k], batch)
        print(
            f"{k:24s} {sec:8.2f} s {batch / sec:9.1f} images/s   robust accuracy "
            f"{robust[k] / batch:.3f} [{lo:.3f}, {hi:.3f}]",
            flush=True,
        )
    base = results["trustbench"]
    print("\nratios (trustbench images/s over each):")
    for k, v in results.items():
        if k != "trustbench":
            print(f"  vs {k:22s} {base / v:6.2f}x")
    info = {
        **run_info(device),
        "model": args.task or args.model,
        "data": args.data,
        "attack": "square",
        "norm": norm,
        "eps": eps,
        "queries": q,
        "batch": batch,
        "clean_accuracy": float(clean.float().mean()),
        "images_per_s": results,
        "seconds": {k: statistics.median(ts) for k, ts in times.items()},
        "robust_accuracy": {k: v / batch for k, v in robust.items()},
        "ratios": {k: base / v for k, v in results.items() if k != "trustbench"},
    }
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--model", choices=["lenet", "resnet18"], default=None)
    ap.add_argument("--task", default=None, help="use a built-in task's model (e.g. mnist5k-cnn)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument(
        "--data",
        choices=["random", "test"],
        default="random",
        help="inputs: random (labels = predictions) or the task's test split",
    )
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--skip", default="", help="comma-separated implementations to skip")
    ap.add_argument("--json", default=None)
    ap.add_argument("--attack", choices=["pgd", "square"], default="pgd")
    ap.add_argument("--norm", choices=["linf", "l2"], default="linf", help="square only")
    ap.add_argument("--queries", type=int, default=1000, help="square: queries per sample")
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    model_name = args.model or ("resnet18" if device.type == "cuda" else "lenet")
    batch = args.batch or (256 if device.type == "cuda" else 1000)
    if args.attack == "square":
        batch = args.batch or 200
    reps = args.reps or (1 if args.attack == "square" else 20 if device.type == "cuda" else 5)
    warmup = 3 if device.type == "cuda" else 1
    skip = set(filter(None, args.skip.split(",")))

    model, task = build(model_name, args.task, device)
    if task is not None:
        shape = tuple(task.input_shape)
    else:
        shape = (1, 28, 28) if model_name == "lenet" else (3, 32, 32)
    gen = torch.Generator(device="cpu").manual_seed(0)
    if args.data == "test":
        if task is None:
            ap.error("--data test needs --task")
        x, y = task.x_test[:batch].to(device), task.y_test[:batch].to(device)
        batch = len(x)
    else:
        x = torch.rand(batch, *shape, generator=gen).to(device)
        with torch.no_grad():
            y = model(x).argmax(1)
    if args.attack == "square":
        bench_square(args, model, x, y, reps, skip)
        return
    eps, steps = args.eps, args.steps
    alpha = 2.5 * eps / steps
    fns: dict[str, Callable[[], Any]] = {}
    native = attacks.PGD(eps=eps, steps=steps, step_size=alpha, early_stop=False)
    fns["trustbench"] = lambda: native(model, x, y)
    if device.type == "cuda":
        eager = attacks.PGD(
            eps=eps, steps=steps, step_size=alpha, early_stop=False, cuda_graph=False
        )
        fns["trustbench-eager"] = lambda: eager(model, x, y)
    else:
        plain = attacks.PGD(eps=eps, steps=steps, step_size=alpha, early_stop=False)
        plain.channels_last_on_cpu = False  # type: ignore[misc]
        fns["trustbench-contiguous"] = lambda: plain(model, x, y)
    es = attacks.PGD(eps=eps, steps=steps, step_size=alpha)
    fns["trustbench-early-stop"] = lambda: es(model, x, y)
    if "art" not in skip:
        try:
            import numpy as np
            from art.attacks.evasion import ProjectedGradientDescent
            from art.estimators.classification import PyTorchClassifier

            clf = PyTorchClassifier(
                model=model,
                loss=nn.CrossEntropyLoss(),
                input_shape=shape,
                nb_classes=10,
                clip_values=(0.0, 1.0),
                device_type="gpu" if device.type == "cuda" else "cpu",
            )
            art_pgd = ProjectedGradientDescent(
                clf,
                norm=np.inf,
                eps=eps,
                eps_step=alpha,
                max_iter=steps,
                num_random_init=1,
                batch_size=batch,
                verbose=False,
            )
            x_np, y_np = x.cpu().numpy(), y.cpu().numpy()
            # ART takes and returns host arrays; the user's tensors live on the device
            fns["art"] = lambda: torch.as_tensor(art_pgd.generate(x=x_np, y=y_np)).to(device)
        except ImportError as exc:
            print(f"art: not installed ({exc})")
    if "torchattacks" not in skip:
        try:
            import torchattacks

            ta = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
            fns["torchattacks"] = lambda: ta(x, y)
        except ImportError as exc:
            print(f"torchattacks: not installed ({exc})")
    flags = [p.requires_grad for p in model.parameters()]
    limit = limit_fn(model, x, y, steps)
    for p, f in zip(model.parameters(), flags):
        p.requires_grad_(f)

    def frozen_limit() -> None:
        for p in model.parameters():
            p.requires_grad_(False)
        try:
            limit()
        finally:
            for p, f in zip(model.parameters(), flags):
                p.requires_grad_(f)

    fns["limit"] = frozen_limit
    from trustbench.attacks.base import AttackStats
    from trustbench.attacks.model_views import frozen_eval

    def one_forward() -> Any:  # the clean / verification pass as the base class runs it
        with frozen_eval(model):
            return native._logits(model, x, AttackStats())

    fns["one-forward"] = one_forward
    # round robin: every repetition times each implementation once, so that load drifting on
    # a shared machine hits all of them alike; medians per implementation
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync(device)
    for _ in range(reps):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    results: dict[str, float] = {}
    for k, ts in times.items():
        sec = statistics.median(ts)
        results[k] = batch / sec
        spread = (max(ts) - min(ts)) / sec
        print(
            f"{k:24s} {sec * 1e3:9.2f} ms/batch {batch / sec:11.1f} images/s (spread {spread:.0%})",
            flush=True,
        )

    fg = [type(g).__name__ for g in native._forward_graphs.values()]
    print(f"trustbench graphs: forward {fg}, pgd loops {len(native._graphs)}")
    base = results["trustbench"]
    print("\nratios (trustbench images/s over each):")
    for k, v in results.items():
        if k not in ("trustbench", "one-forward"):
            print(f"  vs {k:22s} {base / v:6.2f}x")
    info = {
        **run_info(device),
        "model": args.task or model_name,
        "data": args.data,
        "batch": batch,
        "steps": steps,
        "eps": eps,
        "images_per_s": results,
        "ratios": {k: base / v for k, v in results.items() if k != "trustbench"},
    }
    try:
        import art

        info["art"] = art.__version__
    except ImportError:
        pass
    try:
        import torchattacks

        info["torchattacks"] = torchattacks.__version__
    except ImportError:
        pass
    if args.json:
        Path(args.json).write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))


if __name__ == "__main__":
    main()
