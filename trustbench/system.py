"""Who ran it where: the "system" section of a scorecard and the system id.

What lives here:

- :func:`collect_system` describes the machine a run uses -- accelerator, host processor and
  memory, operating system, NVIDIA Jetson module (model, L4T release, power mode) and software
  versions -- with the field names of MLPerf's system description
  (``accelerator_model_name``, ``accelerators_per_node``, ``host_processor_model_name``, ...);
- :func:`system_id` turns that description into a stable, readable id such as
  ``nvidia-h100-80gb-x1``, ``nvidia-jetson-agx-orin-maxn`` or ``amd-epyc-9654-2c-cpu``, used as
  the folder name of published scorecards;
- :func:`software_versions` (installed versions, read from package metadata without importing
  the packages) and :func:`summary_line` (one line for the terminal).

Everything here is best effort and fast: a file that is missing or unreadable, a library that is
absent or a driver that does not answer gives ``None`` for that field, never an exception. Nothing
touches the network. torch is imported only when the run's device is a GPU ("cuda...", "mps") or
when torch is already imported; NVML (``pynvml``) only when an NVIDIA GPU is used. Files are read
under ``root`` so tests can pass a fake ``/proc`` / ``/etc`` tree.

One concern earns this module its length: describing the system a scorecard was measured on
(accelerators, host, Jetson boards, software), each probe with its fallbacks.
"""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["collect_system", "software_versions", "summary_line", "system_id"]

T = TypeVar("T")

#: Seconds a helper binary (nvpmodel, nvidia-smi, sysctl) may take before it is given up on.
_SUBPROCESS_TIMEOUT_S = 3.0

#: ``software`` keys and the distribution names they are read from. The first group is always
#: looked up; all are reported only when installed.
_SOFTWARE = {
    "torch": "torch",
    "torchvision": "torchvision",
    "numpy": "numpy",
    "scipy": "scipy",
    "art": "adversarial-robustness-toolbox",
    "fairlearn": "fairlearn",
    "opacus": "opacus",
    "codecarbon": "codecarbon",
    "flwr": "flwr",
}

#: ARM ``CPU implementer`` / ``CPU part`` codes of /proc/cpuinfo (aarch64 kernels print no
#: "model name"): the cores of Jetson modules, Grace, Graviton, Ampere and common boards.
_ARM_PARTS = {
    ("0x41", "0xd03"): "ARM Cortex-A53",
    ("0x41", "0xd04"): "ARM Cortex-A35",
    ("0x41", "0xd05"): "ARM Cortex-A55",
    ("0x41", "0xd07"): "ARM Cortex-A57",
    ("0x41", "0xd08"): "ARM Cortex-A72",
    ("0x41", "0xd09"): "ARM Cortex-A73",
    ("0x41", "0xd0a"): "ARM Cortex-A75",
    ("0x41", "0xd0b"): "ARM Cortex-A76",
    ("0x41", "0xd0c"): "ARM Neoverse-N1",
    ("0x41", "0xd0d"): "ARM Cortex-A77",
    ("0x41", "0xd40"): "ARM Neoverse-V1",
    ("0x41", "0xd41"): "ARM Cortex-A78",
    ("0x41", "0xd42"): "ARM Cortex-A78AE",
    ("0x41", "0xd44"): "ARM Cortex-X1",
    ("0x41", "0xd46"): "ARM Cortex-A510",
    ("0x41", "0xd47"): "ARM Cortex-A710",
    ("0x41", "0xd48"): "ARM Cortex-X2",
    ("0x41", "0xd49"): "ARM Neoverse-N2",
    ("0x41", "0xd4b"): "ARM Cortex-A78C",
    ("0x41", "0xd4f"): "ARM Neoverse-V2",
    ("0x41", "0xd80"): "ARM Cortex-A520",
    ("0x41", "0xd81"): "ARM Cortex-A720",
    ("0x41", "0xd84"): "ARM Neoverse-V3",
    ("0x41", "0xd8e"): "ARM Neoverse-N3",
    ("0x4e", "0x003"): "NVIDIA Denver 2",
    ("0x4e", "0x004"): "NVIDIA Carmel",
    ("0xc0", "0xac3"): "Ampere AmpereOne",
    ("0x46", "0x001"): "Fujitsu A64FX",
}

#: Memory sizes products are sold with (GB, meaning GiB as MLPerf and vendors use it). A
#: measured capacity a little below one of them (ECC, firmware and kernel reservations) is
#: reported as that size: an H100's 79.2 GiB as "80 GB", a 24 GB host's 23.5 GiB as "24 GB".
_MARKETED_GB = (
    1, 2, 3, 4, 6, 8, 10, 11, 12, 16, 20, 24, 32, 40, 48, 64, 80, 94, 96, 128, 141, 144, 192,
    256, 288, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192,
)  # fmt: skip
_SNAP_TOLERANCE = 1.09

#: First words of NVIDIA product names that do not say "NVIDIA" (NVML calls a T4 "Tesla T4").
_NVIDIA_BRANDS = {"tesla", "quadro", "geforce", "titan", "rtx", "grid", "jetson"}

#: Jetson device-tree model strings that do not name the module.
_JETSON_ALIASES = {"jetson-agx": "NVIDIA Jetson AGX Xavier", "quill": "NVIDIA Jetson TX2"}


# --------------------------------------------------------------------------------------------
# small helpers


def _guard(fn: Callable[..., T], *args: Any, default: Any = None) -> T | Any:
    """``fn(*args)``, or ``default`` if it raises: nothing here may fail a benchmark run."""
    try:
        return fn(*args)
    except Exception:
        return default


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel.lstrip("/")).read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def _is_live(root: Path) -> bool:
    """Whether ``root`` is this machine's real root, so live probes (platform, NVML, binaries
    found on PATH) describe the same machine as the files."""
    try:
        return root.resolve() == Path("/").resolve()
    except OSError:
        return False


def _run(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=_SUBPROCESS_TIMEOUT_S,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return done.stdout if done.returncode == 0 else None


def _dist_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except Exception:
        return None


def _format_gb(gib: float) -> str:
    """``"80 GB"`` from a capacity in GiB, snapped up to a marketed size when just below one."""
    for size in _MARKETED_GB:
        if size >= gib:
            if size <= gib * _SNAP_TOLERANCE:
                return f"{size} GB"
            break
    if gib >= 1:
        return f"{round(gib)} GB"
    return f"{gib:.1f} GB"


def _format_cudnn(version: int | None) -> str | None:
    """``91900 -> "9.19.0"`` (cuDNN >= 9: MMmmpp), ``8902 -> "8.9.2"`` (cuDNN <= 8: Mmpp)."""
    if not version:
        return None
    v = int(version)
    if v >= 90000:
        return f"{v // 10000}.{(v % 10000) // 100}.{v % 100}"
    return f"{v // 1000}.{(v % 1000) // 100}.{v % 100}"


# --------------------------------------------------------------------------------------------
# software


def software_versions() -> dict[str, str]:
    """Versions of Python, trustbench and the libraries a run may use.

    Read from installed package metadata (``importlib.metadata``), never by importing a
    package, so this is cheap and loads no pillar library.

    Returns
    -------
    dict[str, str]
        ``python`` and ``trustbench`` always; ``torch``, ``torchvision``, ``numpy``, ``scipy``,
        ``art`` (adversarial-robustness-toolbox), ``fairlearn``, ``opacus``, ``codecarbon`` and
        ``flwr`` when installed.
    """
    from trustbench import __version__

    out = {"python": platform.python_version(), "trustbench": __version__}
    for key, dist in _SOFTWARE.items():
        version = _dist_version(dist)
        if version is not None:
            out[key] = version
    return out


# --------------------------------------------------------------------------------------------
# host: processor, memory, operating system


def _cpuinfo_fields(text: str) -> list[dict[str, str]]:
    """/proc/cpuinfo as one dict per processor block."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current.setdefault(key.strip().lower(), " ".join(value.split()))
    if current:
        blocks.append(current)
    return blocks


def _cpu_from_cpuinfo(text: str) -> tuple[str | None, int]:
    """(processor model name, number of sockets) from /proc/cpuinfo text."""
    blocks = _cpuinfo_fields(text)
    sockets = len({b["physical id"] for b in blocks if "physical id" in b}) or 1
    names: list[str] = []
    for b in blocks:
        part = _ARM_PARTS.get((b.get("cpu implementer", ""), b.get("cpu part", "")))
        if part and part not in names:
            names.append(part)
    model = next((b["model name"] for b in blocks if b.get("model name")), None)
    # aarch64 kernels print a generic "ARMv8 Processor rev 1 (v8l)" or no model name at all;
    # the implementer/part codes name the core (big.LITTLE systems list both kinds)
    if names and (model is None or model.lower().startswith("armv")):
        return " + ".join(names), sockets
    if model:
        return model, sockets
    for key in ("hardware", "processor", "cpu model", "cpu"):
        value = next((b[key] for b in blocks if b.get(key) and not b[key].isdigit()), None)
        if value:
            return value, sockets
    return None, sockets


def _live_cpu_name() -> str | None:
    if sys.platform == "darwin":
        out = _run(["sysctl", "-n", "machdep.cpu.brand_string"])
        if out and out.strip():
            return out.strip()
    return platform.processor() or platform.machine() or None


def _usable_cpus(root: Path) -> int | None:
    """Logical CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota
    (containers), since that is what the benchmark's CPU work actually gets."""
    try:
        count: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        count = os.cpu_count()
    quota = _read(root, "sys/fs/cgroup/cpu.max")
    if quota:
        parts = quota.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                limit = max(1, math.ceil(int(parts[0]) / int(parts[1])))
            except (ValueError, ZeroDivisionError):
                limit = None
            if limit is not None:
                count = limit if count is None else min(count, limit)
    return count


def _host_memory(root: Path) -> str | None:
    text = _read(root, "proc/meminfo")
    if not text:
        return None
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    if not match:
        return None
    return _format_gb(int(match.group(1)) / 1024**2)


def _operating_system(root: Path, live: bool) -> str | None:
    text = _read(root, "etc/os-release") or _read(root, "usr/lib/os-release")
    name = None
    if text:
        fields = {}
        for line in text.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                fields[key.strip()] = value.strip().strip("\"'")
        name = fields.get("PRETTY_NAME") or " ".join(
            v for v in (fields.get("NAME"), fields.get("VERSION")) if v
        )
    kernel = (_read(root, "proc/sys/kernel/osrelease") or "").strip() or None
    if live:
        if kernel is None and platform.system() == "Linux":
            kernel = platform.release() or None
        if not name:
            if sys.platform == "darwin":
                name = f"macOS {platform.mac_ver()[0]}".strip()
            else:
                name = platform.platform() or None
    if name and kernel:
        return f"{name}, kernel {kernel}"
    return name or (f"Linux, kernel {kernel}" if kernel else None)


# --------------------------------------------------------------------------------------------
# Jetson


def _parse_l4t(text: str | None) -> str | None:
    """``"# R35 (release), REVISION: 4.1, ..."`` -> ``"35.4.1"``."""
    if not text:
        return None
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*(\d+(?:\.\d+)*)", text)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def _parse_nvpmodel_query(text: str | None) -> str | None:
    """``nvpmodel -q`` output (``"NV Power Mode: MAXN\\n0"``) -> ``"MAXN"``."""
    if not text:
        return None
    match = re.search(r"NV Power Mode:\s*(\S+)", text)
    return match.group(1) if match else None


def _power_mode(root: Path, live: bool) -> str | None:
    """The Jetson power mode: ``nvpmodel -q`` if the tool is there, else the mode id in
    /var/lib/nvpmodel/status named through /etc/nvpmodel.conf."""
    candidates = [root / "usr/sbin/nvpmodel", root / "usr/bin/nvpmodel"]
    if live:
        found = shutil.which("nvpmodel")
        if found:
            candidates.append(Path(found))
    for exe in dict.fromkeys(candidates):
        if exe.is_file() and os.access(exe, os.X_OK):
            mode = _parse_nvpmodel_query(_run([str(exe), "-q"]))
            if mode:
                return mode
    status = _read(root, "var/lib/nvpmodel/status")
    match = re.search(r"pmode:\s*(\d+)", status or "")
    if not match:
        return None
    mode_id = int(match.group(1))
    conf = _read(root, "etc/nvpmodel.conf") or ""
    names = {
        int(i): name for i, name in re.findall(r"<\s*POWER_MODEL\s+ID=(\d+)\s+NAME=([^\s>]+)", conf)
    }
    return names.get(mode_id, f"mode {mode_id}")


def _jetson_info(root: Path, live: bool) -> dict[str, str | None] | None:
    model = _read(root, "proc/device-tree/model") or _read(
        root, "sys/firmware/devicetree/base/model"
    )
    model = model.replace("\x00", "").strip() if model else None
    tegra = _read(root, "etc/nv_tegra_release")
    if not ((model and "jetson" in model.lower()) or tegra):
        return None
    return {
        "model": model or None,
        "l4t_version": _parse_l4t(tegra),
        "power_mode": _guard(_power_mode, root, live),
    }


def _jetson_product(model: str | None) -> str:
    """``"NVIDIA Jetson AGX Orin Developer Kit"`` -> ``"NVIDIA Jetson AGX Orin"``."""
    if not model:
        return "NVIDIA Jetson"
    name = _JETSON_ALIASES.get(model.strip().lower(), model)
    name = re.sub(r"\b(engineering reference\s+)?developer kit\b", "", name, flags=re.I)
    name = " ".join(name.split())
    if not name.lower().startswith("nvidia"):
        name = f"NVIDIA {name}"
    return name


# --------------------------------------------------------------------------------------------
# accelerator


def _driver_version(root: Path, live: bool) -> str | None:
    """NVIDIA driver version: NVML, else /proc/driver/nvidia/version, else nvidia-smi."""
    if live:
        try:
            import pynvml

            pynvml.nvmlInit()
            try:
                version = pynvml.nvmlSystemGetDriverVersion()
            finally:
                pynvml.nvmlShutdown()
            if isinstance(version, bytes):
                version = version.decode()
            if version:
                return str(version)
        except Exception:
            pass
    text = _read(root, "proc/driver/nvidia/version")
    match = re.search(r"Kernel Module(?:\s+for\s+\S+)?\s+(\d+(?:\.\d+)+)", text or "")
    if match:
        return match.group(1)
    if live and shutil.which("nvidia-smi"):
        out = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
        if out and out.strip():
            return out.strip().splitlines()[0].strip()
    return None


def _memory_configuration(name: str) -> str | None:
    """The memory type a GPU's name tells (``"NVIDIA H100 80GB HBM3"`` -> ``"HBM3"``)."""
    match = re.search(r"\b(HBM\d*e?|GDDR\d*X?|LPDDR\d*X?)\b", name, flags=re.I)
    return match.group(1).upper().replace("E", "e") if match else None


def _gpu_memory(name: str, total_bytes: int | None) -> str | None:
    match = re.search(r"(\d+)\s*GB\b", name, flags=re.I)
    if match:
        return f"{int(match.group(1))} GB"
    if total_bytes:
        return _format_gb(total_bytes / 1024**3)
    return None


def _torch_for(device: str | None) -> Any:
    """torch, if the device needs it or it is already imported; else None."""
    if device is None:
        return sys.modules.get("torch")
    if device.startswith(("cuda", "mps")):
        try:
            import torch
        except Exception:
            return None
        return torch
    return None


def _no_accelerator() -> dict[str, Any]:
    return {
        "accelerator_model_name": "N/A",
        "accelerators_per_node": 0,
        "accelerator_memory_capacity": None,
        "accelerator_memory_configuration": None,
        "driver": None,
        "cuda": None,
        "cudnn": None,
    }


def _cuda_toolkit(torch: Any) -> dict[str, Any]:
    cudnn = None
    if _guard(torch.backends.cudnn.is_available, default=False):
        cudnn = _guard(lambda: _format_cudnn(torch.backends.cudnn.version()))
    return {"cuda": getattr(torch.version, "cuda", None), "cudnn": cudnn}


def _accelerator(
    device: str | None,
    root: Path,
    live: bool,
    jetson: dict[str, Any] | None,
    host_memory: str | None,
    host_cpu: str | None,
) -> dict[str, Any]:
    out = _no_accelerator()
    torch = _torch_for(device)
    if torch is None:
        return out
    if device is not None and device.startswith("mps"):
        if not _guard(torch.backends.mps.is_available, default=False):
            return out
        out.update(
            accelerator_model_name=f"{host_cpu or 'Apple'} (integrated GPU)",
            accelerators_per_node=1,
            accelerator_memory_capacity=host_memory,
            accelerator_memory_configuration="shared with host",
        )
        return out
    if not _guard(torch.cuda.is_available, default=False):
        return out
    out.update(_cuda_toolkit(torch))
    if jetson is not None:
        # the integrated GPU: torch calls it "Orin"; the module's name is more useful
        out.update(
            accelerator_model_name=f"{_jetson_product(jetson.get('model'))} (integrated GPU)",
            accelerators_per_node=1,
            accelerator_memory_capacity=host_memory,
            accelerator_memory_configuration="shared with host",
            driver=_guard(_driver_version, root, False),
        )
        return out
    index = None
    if device is not None and ":" in device:
        index = int(device.split(":", 1)[1])
    if index is None:
        index = torch.cuda.current_device()
    name = str(torch.cuda.get_device_name(index))
    props = _guard(torch.cuda.get_device_properties, index)
    out.update(
        accelerator_model_name=name,
        accelerators_per_node=int(torch.cuda.device_count()),
        accelerator_memory_capacity=_gpu_memory(name, getattr(props, "total_memory", None)),
        accelerator_memory_configuration=_memory_configuration(name),
        driver=_guard(_driver_version, root, live)
        if getattr(torch.version, "hip", None) is None
        else None,
    )
    return out


# --------------------------------------------------------------------------------------------
# the system section


def collect_system(device: str | None = None, *, root: str | Path = "/") -> dict[str, Any]:
    """Describe the machine a run uses, as the scorecard's ``system`` section.

    Parameters
    ----------
    device : str or None
        The device the run uses: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` (a
        ``torch.device`` works too). The accelerator fields describe *that* device: on a GPU
        machine, a run with ``device="cpu"`` is described (and identified) as a CPU system.
        ``None`` means "not known": a CUDA GPU is reported if torch is already imported and sees
        one (what an automatic device choice would pick), else the system is CPU-only.
    root : str or Path
        Root of the file tree that ``/proc``, ``/sys`` and ``/etc`` are read from; tests pass a
        fake tree. Live probes (NVML, ``platform``, binaries on ``PATH``) are used only when
        ``root`` is the real ``/``.

    Returns
    -------
    dict
        MLPerf system-description fields: ``id``, ``accelerator_model_name`` (``"N/A"`` on a
        CPU), ``accelerators_per_node`` (visible devices; 0 on a CPU),
        ``accelerator_memory_capacity`` (``"80 GB"``), ``accelerator_memory_configuration``,
        ``driver``, ``cuda``, ``cudnn``, ``host_processor_model_name``,
        ``host_processor_core_count`` (logical CPUs this process may use),
        ``host_processors_per_node`` (sockets), ``host_memory_capacity`` (``"24 GB"``),
        ``operating_system``, ``framework`` (``"PyTorch 2.14.1"``), ``jetson`` (``{"model",
        "l4t_version", "power_mode"}`` or ``None``) and ``software`` (see
        :func:`software_versions`). Fields that cannot be determined are ``None``; this
        function does not raise.

    Examples
    --------
    >>> info = collect_system("cpu")
    >>> info["accelerators_per_node"], info["id"].endswith("-cpu")
    (0, True)
    """
    root_path = Path(root)
    live = _guard(_is_live, root_path, default=False)
    dev = None if device is None else str(device).strip().lower()

    cpuinfo = _read(root_path, "proc/cpuinfo")
    cpu_name, sockets = _guard(_cpu_from_cpuinfo, cpuinfo or "", default=(None, 1))
    if cpu_name is None and live:
        cpu_name = _guard(_live_cpu_name)
    host_memory = _guard(_host_memory, root_path)
    jetson = _guard(_jetson_info, root_path, live)
    accelerator = _guard(
        _accelerator, dev, root_path, live, jetson, host_memory, cpu_name,
        default=_no_accelerator(),
    )  # fmt: skip
    software = _guard(software_versions, default={"python": platform.python_version()})

    info: dict[str, Any] = {"id": ""}
    info.update(accelerator)
    info.update(
        host_processor_model_name=cpu_name,
        host_processor_core_count=_guard(_usable_cpus, root_path),
        host_processors_per_node=sockets,
        host_memory_capacity=host_memory,
        operating_system=_guard(_operating_system, root_path, live),
        framework=f"PyTorch {software['torch']}" if software.get("torch") else None,
        jetson=jetson,
        software=software,
    )
    info["id"] = system_id(info)
    return info


# --------------------------------------------------------------------------------------------
# id and summary


def _slug(text: str) -> str:
    text = text.lower().replace("+", "plus")
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


_CPU_NOISE = [
    r"\((?:r|tm|c)\)",
    r"[®™©]",
    r"@\s*[\d.]+\s*[gm]hz",
    r"\b[\d.]+\s*[gm]hz\b",
    r"\b\d+(?:st|nd|rd|th)\s+gen(?:eration)?\b",
    r"\b(?:\d+|single|dual|triple|quad|hexa|six|octa|eight|ten|twelve|sixteen)[- ]core\b",
    r"\s(?:w/|with)\s.*$",
    r"\bprocessor\b",
    r"\bcpu\b",
]


def _cpu_slug(name: str | None) -> str:
    if not name:
        return "unknown"
    text = name.lower()
    for pattern in _CPU_NOISE:
        text = re.sub(pattern, " ", text)
    return _slug(text) or "unknown"


def _gpu_slug(name: str, memory: str | None) -> str:
    text = re.sub(r"\((?:integrated gpu|r|tm)\)", " ", name.lower())
    text = re.sub(r"\b(?:hbm\d*e?|gddr\d*x?|lpddr\d*x?)\b", " ", text)
    slug = _slug(text) or "unknown-accelerator"
    if slug.split("-", 1)[0] in _NVIDIA_BRANDS:
        slug = f"nvidia-{slug}"
    if memory and not re.search(r"(?:^|-)\d+gb(?:-|$)", slug):
        match = re.match(r"\s*(\d+(?:\.\d+)?)\s*GB", memory)
        if match:
            slug += f"-{_slug(match.group(1))}gb"
    return slug


def system_id(info: dict[str, Any]) -> str:
    """A stable, readable id for a system description: lowercase ``[a-z0-9-]``.

    - GPU: vendor, model, memory and device count: ``"NVIDIA H100 80GB HBM3"`` x1 ->
      ``nvidia-h100-80gb-x1`` (the memory type is dropped; a memory size the name lacks is
      appended, e.g. ``nvidia-h200-141gb-x1``);
    - Jetson: module and power mode, ``nvidia-jetson-agx-orin-maxn`` (``...-cpu`` when the run
      used only the CPU cores);
    - CPU only: vendor and model, usable cores, ``cpu``: ``"Intel(R) Xeon(R) Gold 6338 CPU @
      2.00GHz"`` with 2 cores -> ``intel-xeon-gold-6338-2c-cpu`` ("(R)", "(TM)", "CPU",
      clock, "Processor", "n-Core" and "w/ Radeon Graphics" are dropped).

    Parameters
    ----------
    info : dict
        A system section as :func:`collect_system` returns it (missing keys are tolerated).

    Returns
    -------
    str
        The id; never empty.
    """
    try:
        count = int(info.get("accelerators_per_node") or 0)
        accel = info.get("accelerator_model_name")
        jetson = info.get("jetson")
        if isinstance(jetson, dict):
            parts = [_slug(_jetson_product(jetson.get("model")))]
            mode = jetson.get("power_mode")
            if mode:
                mode_slug = re.sub(r"^mode-(?=.)", "", _slug(str(mode)))
                parts.append(mode_slug)
            if count == 0:
                parts.append("cpu")
            return "-".join(p for p in parts if p)
        if count > 0 and accel and accel != "N/A":
            return f"{_gpu_slug(str(accel), info.get('accelerator_memory_capacity'))}-x{count}"
        cores = info.get("host_processor_core_count")
        parts = [_cpu_slug(info.get("host_processor_model_name"))]
        if isinstance(cores, int) and cores > 0:
            parts.append(f"{cores}c")
        parts.append("cpu")
        return "-".join(parts)
    except Exception:
        return "unknown-system"


def summary_line(info: dict[str, Any]) -> str:
    """One human-readable line describing a system, for terminal output.

    Examples
    --------
    >>> summary_line({"id": "amd-epyc-2c-cpu", "host_processor_model_name": "AMD EPYC",
    ...               "host_processor_core_count": 2, "host_memory_capacity": "24 GB",
    ...               "accelerators_per_node": 0, "software": {"python": "3.11.7"}})
    'amd-epyc-2c-cpu: no accelerator | AMD EPYC, 2 cores, 24 GB RAM | Python 3.11.7'
    """
    parts: list[str] = []
    jetson = info.get("jetson")
    count = int(info.get("accelerators_per_node") or 0)
    if isinstance(jetson, dict):
        details = [
            f"L4T {jetson['l4t_version']}" if jetson.get("l4t_version") else None,
            f"power mode {jetson['power_mode']}" if jetson.get("power_mode") else None,
            "integrated GPU" if count else "CPU only",
        ]
        parts.append(
            f"{_jetson_product(jetson.get('model'))} ({', '.join(d for d in details if d)})"
        )
    elif count > 0:
        accel = f"{count} x {info.get('accelerator_model_name')}"
        if info.get("accelerator_memory_capacity"):
            accel += f" ({info['accelerator_memory_capacity']})"
        parts.append(accel)
    else:
        parts.append("no accelerator")
    stack = [
        f"driver {info['driver']}" if info.get("driver") else None,
        f"CUDA {info['cuda']}" if info.get("cuda") else None,
        f"cuDNN {info['cudnn']}" if info.get("cudnn") else None,
    ]
    if any(stack):
        parts[-1] += ", " + ", ".join(s for s in stack if s)
    host = [
        info.get("host_processor_model_name"),
        f"{info['host_processor_core_count']} cores" if info.get("host_processor_core_count")
        else None,
        f"{info['host_memory_capacity']} RAM" if info.get("host_memory_capacity") else None,
    ]  # fmt: skip
    if any(host):
        parts.append(", ".join(str(h) for h in host if h))
    if info.get("operating_system"):
        parts.append(str(info["operating_system"]))
    python = (info.get("software") or {}).get("python")
    sw = [info.get("framework"), f"Python {python}" if python else None]
    if any(sw):
        parts.append(", ".join(str(s) for s in sw if s))
    return f"{info.get('id') or system_id(info)}: " + " | ".join(parts)
