#!/usr/bin/env python3
"""Generates the safetensors test fixtures with the `safetensors` package (torch writer).

Outputs, next to this script:

- `types.safetensors`: F32, F16 and BF16 tensors of random bit patterns (specials, subnormals
  and quiet NaNs included, see ../gguf/generate.py), a 0-d F32 scalar, an empty F32 tensor, an
  I64 tensor (a dtype CircuitKit does not read) and `__metadata__` (`format: pt`).
- `sharded/model-0000{1,2}-of-00002.safetensors`: one F16 and one BF16 tensor split over two
  shards, as Hugging Face writes large models.
- `expected/<tensor>.f32`: each float tensor widened to float32 by numpy, raw little-endian,
  row-major.

Run with the project's Python environment (safetensors 0.8, torch, numpy 2.x):
    /root/ckvenv/bin/python Tests/Fixtures/safetensors/generate.py
The output is deterministic (fixed seed).
"""

import importlib.util
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

HERE = Path(__file__).resolve().parent

# The random float bit patterns come from the GGUF generator, so both fixtures cover the same cases.
_spec = importlib.util.spec_from_file_location("gguf_generate", HERE.parent / "gguf" / "generate.py")
gguf_generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gguf_generate)
random_float_bits = gguf_generate.random_float_bits


def float_tensor(shape: tuple[int, ...], format: str) -> tuple[torch.Tensor, np.ndarray]:
    """A tensor of random `format` bit patterns and its values widened to float32 by numpy."""
    count = int(np.prod(shape))
    bits = random_float_bits(count, format).reshape(shape)
    if format == "f32":
        return torch.from_numpy(bits.view(np.float32).copy()), bits.view(np.float32)
    if format == "f16":
        return torch.from_numpy(bits.view(np.float16).copy()), bits.view(np.float16).astype(np.float32)
    widened = (bits.astype(np.uint32) << 16).view(np.float32)
    return torch.from_numpy(bits.view(np.int16).copy()).view(torch.bfloat16), widened


def write(path: Path, tensors: dict[str, tuple[torch.Tensor, np.ndarray | None]], metadata: dict[str, str] | None = None) -> None:
    save_file({name: tensor for name, (tensor, _) in tensors.items()}, str(path), metadata=metadata)
    for name, (_, expected) in tensors.items():
        if expected is not None:
            (HERE / "expected" / f"{name}.f32").write_bytes(np.ascontiguousarray(expected, dtype="<f4").tobytes())


def main() -> None:
    (HERE / "expected").mkdir(exist_ok=True)
    (HERE / "sharded").mkdir(exist_ok=True)
    for old in (HERE / "expected").glob("*.f32"):
        old.unlink()
    write(HERE / "types.safetensors", {
        "f32": float_tensor((3, 5), "f32"),
        "f16": float_tensor((2, 7), "f16"),
        "bf16": float_tensor((4, 3), "bf16"),
        "scalar": (torch.tensor(1.5, dtype=torch.float32), np.array(1.5, dtype=np.float32)),
        "empty": (torch.zeros((0, 4), dtype=torch.float32), np.zeros((0, 4), dtype=np.float32)),
        "i64": (torch.tensor([[1, -2], [3, 2**40]], dtype=torch.int64), None),
    }, metadata={"format": "pt"})  # one entry: the writer orders several at random
    write(HERE / "sharded" / "model-00001-of-00002.safetensors", {"layer.0.weight": float_tensor((2, 3), "f16")})
    write(HERE / "sharded" / "model-00002-of-00002.safetensors", {"layer.1.weight": float_tensor((3,), "bf16")})


if __name__ == "__main__":
    main()
