"""Helpers shared by the baseline scripts: arguments, timing, memory, versions and JSON output.

Every baseline prints logs to stderr and, with `--json`, exactly one JSON object on the last line
of stdout. Timings are in seconds (best and every repeat, after warm-up runs that are not timed).
Memory is read from the kernel: `peak_rss_bytes` is the whole process's high-water mark, and
`compute_peak_rss_bytes` the high-water mark of the measured phase alone (Linux: the mark is
reset by writing "5" to /proc/self/clear_refs after loading, and VmHWM is read after the phase).

This module imports nothing beyond the standard library, so that a missing package is reported
by `import_or_exit` with the command that installs it.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

INSTALL = "python3 -m pip install torch transformers gguf accelerate numpy"


def log(*parts: object) -> None:
    """Prints a progress line to stderr (stdout is reserved for the result)."""
    print(*parts, file=sys.stderr, flush=True)


def import_or_exit(module: str, script: str):
    """Imports `module`, or exits with status 3 and the command that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        print(f"{script}: cannot import {module} ({error}).\nInstall the baselines' packages with:\n  {INSTALL}",
              file=sys.stderr)
        sys.exit(3)


def parser(description: str, *, repeats: int, threads: int = 2, warmup: int = 1) -> argparse.ArgumentParser:
    """An argument parser with the options every baseline shares."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--threads", type=int, default=threads, help=f"compute threads (default {threads})")
    p.add_argument("--repeats", type=int, default=repeats,
                   help=f"timed repeats; the best is reported (default {repeats})")
    p.add_argument("--warmup", type=int, default=warmup, help=f"untimed runs before the repeats (default {warmup})")
    p.add_argument("--json", action="store_true", help="print one JSON object on the last line of stdout")
    return p


def check_counts(args: argparse.Namespace) -> None:
    """Exits with a clear message when --threads/--repeats/--warmup are out of range."""
    if args.threads < 1 or args.repeats < 1 or args.warmup < 0:
        sys.exit(f"--threads and --repeats must be >= 1 and --warmup >= 0 "
                 f"(got {args.threads}, {args.repeats}, {args.warmup})")


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------


def _status_bytes(field: str) -> int | None:
    """A `kB` field of /proc/self/status (VmHWM, VmRSS) in bytes, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _rusage_peak_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


class MemoryMeter:
    """Tracks the process's peak RSS and the peak of one measured phase.

    Resetting VmHWM also lowers what getrusage reports afterwards, so the process peak seen
    before the reset is remembered here.
    """

    def __init__(self) -> None:
        self.process_peak = 0
        self.phase_start_rss: int | None = None
        self.phase_peak: int | None = None
        self.reset_supported = False

    def _observe(self) -> None:
        self.process_peak = max(self.process_peak, _status_bytes("VmHWM") or 0, _rusage_peak_bytes())

    def start_phase(self) -> None:
        """Remembers the peak so far and resets the kernel's high-water mark."""
        self._observe()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.reset_supported = True
        except OSError as error:
            log(f"cannot reset the RSS high-water mark ({error}); compute_peak_rss_bytes will be null")
            self.reset_supported = False
        self.phase_start_rss = _status_bytes("VmRSS")

    def end_phase(self) -> None:
        """Reads the phase's high-water mark."""
        self.phase_peak = _status_bytes("VmHWM") if self.reset_supported else None
        self._observe()

    def report(self) -> dict[str, Any]:
        self._observe()
        return {
            "peak_rss_bytes": self.process_peak,
            "compute_peak_rss_bytes": self.phase_peak,
            "rss_at_compute_start_bytes": self.phase_start_rss,
        }


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def best_of(run: Callable[[], Any], repeats: int, warmup: int, label: str) -> tuple[dict[str, Any], Any]:
    """Runs `run` warmup + repeats times; returns ({best_s, times_s, warmup}, last result)."""
    result = None
    for i in range(warmup):
        t = time.perf_counter()
        result = run()
        log(f"{label}: warm-up {i + 1}/{warmup} {time.perf_counter() - t:.4f} s")
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t)
        log(f"{label}: repeat {i + 1}/{repeats} {times[-1]:.4f} s")
    return {"best_s": min(times), "times_s": times, "warmup": warmup}, result


# --------------------------------------------------------------------------------------------
# Environment and output
# --------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(threads: int) -> dict[str, Any]:
    """Versions of Python and the numeric packages already imported, threads and the machine."""
    versions = {"python": platform.python_version()}
    for name in ("numpy", "torch", "transformers", "gguf", "accelerate"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "unknown")
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    variables = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")
    thread_env = {k: os.environ[k] for k in variables if k in os.environ}
    return {
        "threads": threads,
        "versions": versions,
        "thread_env": thread_env,
        "machine": {"cpu": _cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": affinity,
                    "system": platform.system(), "arch": platform.machine()},
    }


def emit(result: dict[str, Any], as_json: bool) -> None:
    """Prints the result: one JSON line with --json, an indented listing otherwise."""
    if as_json:
        print(json.dumps(result, separators=(",", ":")), flush=True)
    else:
        print(json.dumps(result, indent=2), flush=True)


# --------------------------------------------------------------------------------------------
# PyTorch
# --------------------------------------------------------------------------------------------


def import_torch(script: str):
    """Imports torch (or exits with the install command) and returns the module.

    PyPI's CPU builds parallelize with GNU OpenMP, whose threads spin at every barrier by
    default. When other processes share the cores, a spinning thread that waits for a descheduled
    one burns its time slice, and small operations become up to ~70× slower (measured on the
    2-core machine these baselines were written on); OMP_WAIT_POLICY=PASSIVE makes waiting
    threads sleep instead. It is set here, before OpenMP starts, unless the environment already
    sets it; `environment()` reports it.
    """
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return import_or_exit("torch", script)


def setup_torch(threads: int, script: str):
    """Imports torch (see `import_torch`), sets its intra-op threads, and returns the module."""
    torch = import_torch(script)
    torch.set_num_threads(threads)
    return torch


def load_llama(path: str, script: str, dtype=None):
    """Loads an HF LlamaForCausalLM from a `.gguf` file or an HF model directory, frozen, in eval mode.

    GGUF weights are dequantized by transformers (`gguf_file=`), which also undoes the
    converter's Q/K row permutation; `dtype` defaults to float32.
    """
    torch = import_or_exit("torch", script)
    transformers = import_or_exit("transformers", script)
    model_path = Path(path).expanduser()
    if not model_path.exists():
        sys.exit(f"{script}: model not found: {model_path}")
    dtype = dtype or torch.float32
    t = time.perf_counter()
    if model_path.is_file():
        if model_path.suffix != ".gguf":
            sys.exit(f"{script}: --model must be a .gguf file or an HF model directory, got {model_path}")
        import_or_exit("gguf", script)
        model = transformers.AutoModelForCausalLM.from_pretrained(model_path.parent, gguf_file=model_path.name,
                                                                  dtype=dtype)
    else:
        model = transformers.AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    if model.config.model_type != "llama":
        sys.exit(f"{script}: {model_path} is a {model.config.model_type!r} model; the baselines need a Llama model")
    model.eval().requires_grad_(False)
    log(f"loaded {model_path.name} in {time.perf_counter() - t:.1f} s "
        f"({sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, {dtype})")
    return model, time.perf_counter() - t


DEFAULT_MODEL = "~/.cache/circuitkit/models/SmolLM2-135M-Instruct.Q4_1.gguf"


def random_batch_args(description: str, *, repeats: int, script: str,
                      configure: Callable[[argparse.ArgumentParser], Any] | None = None) -> argparse.Namespace:
    """Parses and checks the options of the random-token benchmarks: `parser()`'s plus --model, --batch, --tokens, --seed
    and whatever `configure` adds."""
    p = parser(description, repeats=repeats)
    p.add_argument("--model", default=DEFAULT_MODEL, help="a .gguf file or an HF Llama directory")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--tokens", type=int, default=16, help="sequence length")
    p.add_argument("--seed", type=int, default=0)
    if configure is not None:
        configure(p)
    args = p.parse_args()
    check_counts(args)
    if args.batch < 1 or args.tokens < 1:
        sys.exit(f"{script}: --batch and --tokens must be >= 1 (got {args.batch}, {args.tokens})")
    return args


def model_run_record(args: argparse.Namespace, model, load_s: float, timing: dict[str, Any], meter: "MemoryMeter") -> dict[str, Any]:
    """The fields every random-token benchmark reports: model, batch size, timing, load time, memory and environment."""
    return {
        "model": str(Path(args.model).expanduser()),
        "batch": args.batch,
        "tokens": args.tokens,
        "tokens_per_s": args.batch * args.tokens / timing["best_s"],
        **timing,
        "load_s": load_s,
        "attention": model.config._attn_implementation,
        "dtype": str(next(model.parameters()).dtype),
        **meter.report(),
        **environment(args.threads),
    }
