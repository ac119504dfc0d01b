#!/usr/bin/env python3
"""Generates the GGUF test fixtures and their expected values with gguf-py (the `gguf` package).

Outputs, next to this script:

- `types.gguf`: one or two tensors of every ggml type CircuitKit reads (F32, F16, BF16, Q8_0,
  Q4_0, Q4_1, Q4_K, Q5_K, Q6_K), 1-D to 3-D, several rows each, plus metadata of every GGUF value
  type. Float tensors hold random bit patterns (finite, infinite, subnormal, ±0, quiet NaN).
  Tensors named `<type>` are `gguf.quants.quantize` of random normals; tensors named
  `<type>.random` are random block bytes with random finite f16 scales (the only source for
  the k-quants, which gguf-py cannot quantize), which reach every quant value and scale pattern.
- `expected/<tensor>.f32`: `gguf.quants.dequantize` of each tensor as raw little-endian float32,
  row-major.
- `smollm2-expected.json` (only when the real model is cached): for every tensor of
  SmolLM2-135M-Instruct.Q4_1.gguf its type, shape and two checksums of the dequantized values
  (the sum of the float32 bit patterns modulo 2^64, exact; and the float64 sum via math.fsum),
  and for a few tensors the bit patterns of the first and last 64 values.

Run with the project's Python environment (gguf 0.19, numpy 2.x):
    /root/ckvenv/bin/python Tests/Fixtures/gguf/generate.py
The output is deterministic (fixed seed).
"""

import json
import math
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V

HERE = Path(__file__).resolve().parent
MODEL = Path.home() / ".cache/circuitkit/models/SmolLM2-135M-Instruct.Q4_1.gguf"

rng = np.random.default_rng(20240611)

# Byte offsets of the f16 scale fields in each block type; they get random finite halves.
SCALE_OFFSETS = {
    T.Q8_0: [0],
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}


def random_halves(count: int) -> np.ndarray:
    """Random finite f16 bit patterns over the whole range (subnormals and negatives included)."""
    bits = rng.integers(0, 1 << 16, size=count, dtype=np.uint32).astype(np.uint16)
    exponent_all_ones = (bits & 0x7C00) == 0x7C00
    return np.where(exponent_all_ones, bits & 0xBFFF, bits).astype(np.uint16)


# Per float format: bit width, exponent mask, quiet-NaN bit, and specials (±0, ±inf, smallest
# subnormal, largest finite, a quiet NaN) placed at the front of every random float tensor.
FLOAT_FORMATS = {
    "f32": (32, 0x7F800000, 0x00400000, [0x00000000, 0x80000000, 0x7F800000, 0xFF800000, 0x00000001, 0x7F7FFFFF, 0x7FC00000]),
    "f16": (16, 0x7C00, 0x0200, [0x0000, 0x8000, 0x7C00, 0xFC00, 0x0001, 0x7BFF, 0x7E00]),
    "bf16": (16, 0x7F80, 0x0040, [0x0000, 0x8000, 0x7F80, 0xFF80, 0x0001, 0x7F7F, 0x7FC0]),
}


def random_float_bits(count: int, format: str) -> np.ndarray:
    """`count` random bit patterns of a float format, NaNs made quiet, specials at the front."""
    bits, exponent, quiet, specials = FLOAT_FORMATS[format]
    dtype = np.uint32 if bits == 32 else np.uint16
    values = rng.integers(0, 1 << bits, size=count, dtype=np.uint64).astype(dtype)
    mantissa = exponent ^ ((1 << (bits - 1)) - 1)
    nan = ((values & exponent) == exponent) & ((values & mantissa) != 0)
    values = np.where(nan, values | quiet, values).astype(dtype)
    shown = min(count, len(specials))
    values[:shown] = specials[:shown]
    return values


def random_blocks(qtype: T, rows: int, columns: int) -> np.ndarray:
    """`rows` rows of random `qtype` blocks (uint8, shape [rows, bytes per row])."""
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(rows * columns // block_size, type_size), dtype=np.uint16).astype(np.uint8)
    for offset in SCALE_OFFSETS[qtype]:
        blocks[:, offset : offset + 2] = random_halves(len(blocks)).view(np.uint8).reshape(-1, 2)
    return blocks.reshape(rows, -1)


def build_tensors() -> dict[str, tuple[T, np.ndarray]]:
    """Tensor name → (type, raw bytes shaped [rows..., bytes per row])."""
    tensors: dict[str, tuple[T, np.ndarray]] = {}
    tensors["f32"] = (T.F32, random_float_bits(3 * 37, "f32").view(np.uint8).reshape(3, 37 * 4))
    tensors["f32.vector"] = (T.F32, rng.standard_normal(7).astype(np.float32).view(np.uint8))
    tensors["f32.cube"] = (T.F32, rng.standard_normal((2, 3, 5)).astype(np.float32).view(np.uint8))
    tensors["f16"] = (T.F16, random_float_bits(5 * 24, "f16").view(np.uint8).reshape(5, 48))
    tensors["bf16"] = (T.BF16, random_float_bits(4 * 20, "bf16").view(np.uint8).reshape(4, 40))
    for qtype, shape in [(T.Q8_0, (3, 96)), (T.Q4_0, (4, 64)), (T.Q4_1, (5, 32))]:
        data = (rng.standard_normal(shape) * rng.uniform(0.01, 3.0)).astype(np.float32)
        tensors[qtype.name.lower()] = (qtype, gguf.quants.quantize(data, qtype))
    for qtype, shape in [(T.Q8_0, (2, 64)), (T.Q4_0, (3, 32)), (T.Q4_1, (2, 96)),
                         (T.Q4_K, (3, 512)), (T.Q5_K, (3, 512)), (T.Q6_K, (3, 512))]:
        tensors[qtype.name.lower() + ".random"] = (qtype, random_blocks(qtype, *shape))
    tensors["q6_k.cube"] = (T.Q6_K, random_blocks(T.Q6_K, 2 * 2, 256).reshape(2, 2, -1))
    return tensors


def dequantize(raw: np.ndarray, qtype: T) -> np.ndarray:
    """gguf-py's reference dequantization to float32."""
    return np.ascontiguousarray(gguf.quants.dequantize(raw, qtype), dtype=np.float32)


def write_types_fixture() -> None:
    writer = gguf.GGUFWriter(HERE / "types.gguf", arch="test")
    writer.add_custom_alignment(64)
    # Metadata of every value type; GGUFTests checks these exact values.
    writer.add_uint8("test.uint8", 200)
    writer.add_int8("test.int8", -100)
    writer.add_uint16("test.uint16", 60000)
    writer.add_int16("test.int16", -30000)
    writer.add_uint32("test.uint32", 4_000_000_000)
    writer.add_int32("test.int32", -2_000_000_000)
    writer.add_float32("test.float32", 0.1)
    writer.add_uint64("test.uint64", 2**64 - 1)
    writer.add_int64("test.int64", -(2**63))
    writer.add_float64("test.float64", 0.1)
    writer.add_bool("test.true", True)
    writer.add_bool("test.false", False)
    writer.add_string("test.string", "héllo wörld ✓")
    writer.add_key_value("test.empty_string", "", V.STRING)
    writer.add_array("test.strings", ["a", "", "Ġthe", "<|im_end|>", "✓✓"])
    writer.add_key_value("test.int32s", [1, -2, 2_147_483_647], V.ARRAY, sub_type=V.INT32)
    writer.add_key_value("test.uint8s", [0, 255, 7], V.ARRAY, sub_type=V.UINT8)
    writer.add_key_value("test.int64s", [-(2**63), 2**63 - 1], V.ARRAY, sub_type=V.INT64)
    writer.add_key_value("test.float32s", [0.5, -1.25], V.ARRAY, sub_type=V.FLOAT32)
    writer.add_key_value("test.bools", [True, False, True], V.ARRAY, sub_type=V.BOOL)
    writer.add_key_value("test.nested", [[1, 2], [3]], V.ARRAY, sub_type=V.ARRAY)

    expected = HERE / "expected"
    expected.mkdir(exist_ok=True)
    for old in expected.glob("*.f32"):
        old.unlink()
    for name, (qtype, raw) in build_tensors().items():
        writer.add_tensor(name, raw, raw_dtype=qtype)
        (expected / f"{name}.f32").write_bytes(dequantize(raw, qtype).astype("<f4").tobytes())

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write_model_expectations() -> None:
    if not MODEL.exists():
        print(f"skipping smollm2-expected.json: {MODEL} is absent")
        return
    reader = gguf.GGUFReader(MODEL)
    sliced = {"token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_norm.weight", "blk.29.ffn_down.weight"}
    entries = []
    for tensor in reader.tensors:
        values = dequantize(np.asarray(tensor.data), tensor.tensor_type).ravel()
        bits = values.view(np.uint32)
        entry = {
            "name": tensor.name,
            "type": tensor.tensor_type.name,
            "shape": [int(d) for d in reversed(tensor.shape)],
            "bitSum": int(bits.astype(np.uint64).sum(dtype=np.uint64)),
            "sum": math.fsum(values.astype(np.float64)),
        }
        if tensor.name in sliced:
            entry["firstBits"] = [int(b) for b in bits[:64]]
            entry["lastBits"] = [int(b) for b in bits[-64:]]
        entries.append(entry)
    text = json.dumps({"file": MODEL.name, "size": MODEL.stat().st_size, "tensors": entries}, indent=1)
    (HERE / "smollm2-expected.json").write_text(text + "\n")


if __name__ == "__main__":
    write_types_fixture()
    write_model_expectations()
