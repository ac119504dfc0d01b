"""numpy and PyTorch float32 GEMM baselines: GFLOPS of C = A·Bᵀ with A [M, K] and B [N, K].

The same product as CircuitKit's `gemm(..., transposeB: true)`: `np.matmul(A, B.T, out=C)` hands
the transposed view straight to BLAS (no copy) and writes into a preallocated C; so does
`torch.matmul(A, B.T, out=C)` when PyTorch is installed (its BLAS, usually MKL, is the one the model
baselines use). Each shape is timed best of --repeats after --warmup untimed runs;
GFLOPS = 2·M·N·K / best time.

--threads sets OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS before numpy is
imported (BLAS libraries read them once, at load), and the thread count BLAS reports is recorded.

  python3 Benchmarks/baselines/numpy_gemm.py --shapes 1024x576x576,1024x576x1536 --threads 2 --json
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_common as bc  # noqa: E402

SCRIPT = "numpy_gemm.py"


def parse_shapes(text: str) -> list[tuple[int, int, int]]:
    """`1024x576x576,...` (MxKxN) → [(M, K, N)], or exits naming the bad item."""
    shapes = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        try:
            m, k, n = (int(p) for p in parts)
        except ValueError:
            sys.exit(f"{SCRIPT}: --shapes item {item!r} is not MxKxN (three integers joined by 'x')")
        if min(m, k, n) < 1:
            sys.exit(f"{SCRIPT}: --shapes item {item!r} has a dimension below 1")
        shapes.append((m, k, n))
    return shapes


def blas_config(np) -> dict:
    """numpy's BLAS/LAPACK build configuration (the `np.show_config` summary)."""
    try:
        config = np.show_config(mode="dicts")
        deps = config.get("Build Dependencies", {})
        simd = config.get("SIMD Extensions", {})
        return {"blas": deps.get("blas"), "lapack": deps.get("lapack"), "simd": simd}
    except TypeError:  # numpy < 1.26 has no mode= and only prints
        import contextlib
        import io

        text = io.StringIO()
        with contextlib.redirect_stdout(text):
            np.show_config()
        return {"summary": text.getvalue()}


def blas_runtime() -> dict:
    """What the loaded OpenBLAS or MKL reports at run time: threads, and OpenBLAS's kernel set."""
    try:
        with open("/proc/self/maps") as f:
            libraries = {line.split()[-1] for line in f if ".so" in line}
    except OSError:
        return {}
    prefixes = ["scipy_openblas_", "openblas_"]
    suffixes = ["64_", ""]
    for path in sorted(libraries):
        if "blas" not in path.lower() and "mkl" not in path.lower():
            continue
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        if (mkl_threads := getattr(library, "MKL_Get_Max_Threads", None)) is not None:
            mkl_threads.restype = ctypes.c_int
            return {"library": path, "threads": int(mkl_threads())}
        for prefix in prefixes:
            for suffix in suffixes:
                threads = getattr(library, f"{prefix}get_num_threads{suffix}", None)
                if threads is None:
                    continue
                threads.restype = ctypes.c_int
                info = {"library": path, "threads": int(threads())}
                for key in ("corename", "config"):
                    function = getattr(library, f"{prefix}get_{key}{suffix}", None)
                    if function is not None:
                        function.restype = ctypes.c_char_p
                        info[key] = function().decode(errors="replace")
                return info
    return {}


def time_torch(shapes, operands, results, args) -> str | None:
    """Adds `torch_gflops` to each result when PyTorch imports; returns the BLAS it was built with."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(args.threads)
    for (m, k, n), (a, b, c), result in zip(shapes, operands, results):
        at, bt, ct = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(c)
        timing, _ = bc.best_of(lambda: torch.matmul(at, bt.T, out=ct), args.repeats, args.warmup, f"torch gemm {m}x{k}x{n}")
        result["torch_gflops"] = 2.0 * m * n * k / timing["best_s"] / 1e9
        bc.log(f"torch gemm M={m} K={k} N={n}: {result['torch_gflops']:.1f} GFLOPS")
    built = [line.strip(" -") for line in torch.__config__.show().splitlines() if "Math Kernel Library" in line or "BLAS_INFO" in line]
    return built[0] if built else "unknown"


def main() -> None:
    p = bc.parser(__doc__.split("\n")[0], repeats=20, warmup=3)
    p.add_argument("--shapes", default="1024x576x576,1024x576x1536,1024x1536x576",
                   help="comma-separated MxKxN (C[M,N] = A[M,K]·B[N,K]ᵀ)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    bc.check_counts(args)
    shapes = parse_shapes(args.shapes)
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    np = bc.import_or_exit("numpy", SCRIPT)

    meter = bc.MemoryMeter()
    rng = np.random.default_rng(args.seed)
    operands = [(rng.uniform(-1, 1, (m, k)).astype(np.float32), rng.uniform(-1, 1, (n, k)).astype(np.float32),
                 np.empty((m, n), np.float32)) for m, k, n in shapes]
    meter.start_phase()
    results = []
    for (m, k, n), (a, b, c) in zip(shapes, operands):
        timing, _ = bc.best_of(lambda: np.matmul(a, b.T, out=c), args.repeats, args.warmup, f"gemm {m}x{k}x{n}")
        gflops = 2.0 * m * n * k / timing["best_s"] / 1e9
        bc.log(f"gemm M={m} K={k} N={n}: {gflops:.1f} GFLOPS")
        results.append({"m": m, "k": k, "n": n, "gflops": gflops, **timing})
    meter.end_phase()
    torch_info = time_torch(shapes, operands, results, args)

    bc.emit({
        "benchmark": "numpy_gemm",
        "operation": "C[M,N] = A[M,K] @ B[N,K]^T, float32",
        "shapes": results,
        "repeats": args.repeats,
        "blas_runtime": blas_runtime(),
        "blas_config": blas_config(np),
        "torch_blas": torch_info,
        **meter.report(),
        **bc.environment(args.threads),
    }, args.json)


if __name__ == "__main__":
    main()
