"""Speed of the harness itself against the targets of the foundation issue (not run in CI).

- ``pytest --collect-only suites/`` <= 5 s (heavy libraries imported lazily);
- ``mnist5k-cnn`` reference training <= 30 s on 2 CPU cores, test accuracy >= 95 %;
- ``pytest suites/ --bench-profile smoke`` <= 60 s wall (<= 90 s with every pillar), reference
  training included (fresh cache);
- ``pytest suites/`` (standard profile) <= 10 minutes on 2 cores (``--standard``).

Usage: ``python benchmarks/bench_harness.py [--standard]``; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    return time.perf_counter() - t0, proc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--standard", action="store_true", help="also time the standard profile")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "TRUSTBENCH_CACHE": str(Path(tmp) / "cache"),
               "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
        out = str(Path(tmp) / "results")
        sec, proc = timed([sys.executable, "-m", "pytest", "--collect-only", "-q", "suites/"], env)
        rows.append(("pytest --collect-only suites/", sec, 5.0, proc.returncode))

        code = ("import time; from trustbench.config import build_config; "
                "from trustbench.tasks import build_task; t=build_task('mnist5k-cnn', "
                "build_config({'bench_device': 'cpu'})); "
                "acc=(t.predict(t.x_test).cpu()==t.y_test).float().mean().item(); "
                "print(t.meta['model']['train_seconds'], acc)")
        sec, proc = timed([sys.executable, "-c", code], env)
        train_s, acc = (float(v) for v in proc.stdout.split()[-2:])
        rows.append((f"mnist5k-cnn reference training (test accuracy {acc:.4f})", train_s, 30.0,
                     proc.returncode))

        env["TRUSTBENCH_CACHE"] = str(Path(tmp) / "cache2")  # smoke includes its own training
        sec, proc = timed([sys.executable, "-m", "pytest", "suites/", "--bench-profile", "smoke",
                           "--bench-out", out, "-q"], env)
        rows.append(("pytest suites/ --bench-profile smoke (fresh cache)", sec, 90.0,
                     proc.returncode))
        if args.standard:
            sec, proc = timed([sys.executable, "-m", "pytest", "suites/", "--bench-out", out,
                               "-q"], env)
            rows.append(("pytest suites/ (standard)", sec, 600.0, proc.returncode))
    print("| what | seconds | target | exit |\n|---|---|---|---|")
    for what, sec, target, rc in rows:
        print(f"| {what} | {sec:.1f} | <= {target:g} | {rc} |")


if __name__ == "__main__":
    main()
