#!/usr/bin/env python3
"""Mutation fuzzing of the `circuits` CLI's inputs.

Each case mutates one input file from a seed (the tiny fixtures' model files and the seed corpus in
Tests/Fuzz/corpus), runs the command that reads it under a time and memory limit, and classifies
the outcome:

  ok            exit 0
  error         exit 1 or 2 with a one-line message that names the mutated file (or a usage error)
  vague error   exit 1 or 2 whose message does not name the file, or spans several lines
  silent NaN    exit 0 with "nan" in the results
  crash         killed by a signal or a Swift trap (exit 132/133/134/136/139)
  hang          still running at the time limit, twice (the second time with four times as long)

Usage: python3 Tests/Fuzz/fuzz.py [--cases N] [--seed S] [--circuits PATH] [--report FILE] [--keep DIR]
Exit status 1 when any case crashed or hung. Only the standard library is used.
"""

import argparse
import json
import os
import random
import re
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "Tests", "Fixtures")
CORPUS = os.path.join(ROOT, "Tests", "Fuzz", "corpus")
TINY_GGUF = os.path.join(FIXTURES, "tiny-llama-gguf", "tiny-llama.gguf")
TIME_LIMIT = 30
MEMORY_LIMIT = 8 << 30

INTERESTING_INTS = [0, 1, -1, 2, 255, 256, 65535, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53, 2**62, 2**63 - 1, 2**63, 2**64 - 1]
INTERESTING_JSON = [None, True, 0, -1, 1.5, -2.5, 2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 1e308, -1e308, 1e-320,
                    "", "x" * 5000, "\u0000\u202e", [], {}, [1, 2, 3], {"a": 1}]


# --- mutators ---------------------------------------------------------------------------------

def mutate_bytes(data: bytes, rng: random.Random, focus: int | None = None) -> bytes:
    """Byte-level mutations: flips, interesting integers at aligned offsets, truncation, splicing."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        if not buf:
            buf += bytes(rng.randrange(256) for _ in range(8))
        span = min(len(buf), focus) if focus else len(buf)
        kind = rng.random()
        if kind < 0.35:
            i = rng.randrange(span)
            buf[i] ^= 1 << rng.randrange(8)
        elif kind < 0.65:
            width = rng.choice([4, 8])
            i = rng.randrange(0, max(1, span - width)) & ~(width - 1)
            value = rng.choice(INTERESTING_INTS) & ((1 << (8 * width)) - 1)
            buf[i:i + width] = value.to_bytes(width, "little")
        elif kind < 0.75:
            cut = rng.randrange(len(buf))
            del buf[cut:]
        elif kind < 0.85:
            i, n = rng.randrange(len(buf)), rng.randint(1, 64)
            buf[i:i] = bytes(rng.randrange(256) for _ in range(n))
        elif kind < 0.92:
            i = rng.randrange(len(buf))
            del buf[i:i + rng.randint(1, 64)]
        else:
            i, j = rng.randrange(len(buf)), rng.randrange(len(buf))
            buf[i:i] = buf[j:j + rng.randint(1, 256)]
    return bytes(buf)


def json_paths(value, path=()):
    """Every path to a value inside parsed JSON (dict keys and list indices)."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from json_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value[:50]):
            yield from json_paths(v, path + (i,))


def mutate_json(text: str, rng: random.Random) -> str:
    """Structural JSON mutations (replace, delete or duplicate a value), or byte mutations of the text."""
    if rng.random() < 0.25:
        return mutate_bytes(text.encode(), rng).decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        return mutate_bytes(text.encode(), rng).decode("utf-8", "replace")
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in json_paths(doc) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        key, kind = path[-1], rng.random()
        if kind < 0.6:
            parent[key] = rng.choice(INTERESTING_JSON)
        elif kind < 0.8:
            del parent[key]
        elif isinstance(parent, list):
            parent.insert(key, parent[key])
        else:
            parent[str(key) + rng.choice(["", "d", "_"])] = parent[key]
    out = json.dumps(doc)
    if rng.random() < 0.1:  # NaN and Infinity literals, which strict JSON lacks
        out = out.replace("1.5", rng.choice(["NaN", "Infinity", "-Infinity"]), 1)
    return out


def mutate_lines(text: str, rng: random.Random) -> str:
    """Line mutations for JSONL and CSV: drop, repeat, swap, truncate, add CRs or junk; sometimes JSON inside a line."""
    lines = text.split("\n")
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(lines))
        kind = rng.random()
        if kind < 0.15:
            del lines[i]
        elif kind < 0.3:
            lines.insert(i, lines[i])
        elif kind < 0.4:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind < 0.5:
            lines[i] = lines[i][:rng.randrange(len(lines[i]) + 1)]
        elif kind < 0.6:
            lines[i] += rng.choice(["\r", "\r\r", ",", '"', "\u00a0", "\t"])
        elif kind < 0.8 and lines[i].startswith("{"):
            lines[i] = mutate_json(lines[i], rng)
        else:
            lines[i] = mutate_bytes(lines[i].encode(), rng).decode("utf-8", "replace")
        if not lines:
            lines = [""]
    return "\n".join(lines)


# --- targets ----------------------------------------------------------------------------------

def read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


def hf_model_dir(case):
    """A GPT-2 model folder (tiny fixture weights and tokenizer) inside the case folder."""
    folder = os.path.join(case, "model")
    os.makedirs(folder)
    for name in ["config.json", "model.safetensors"]:
        shutil.copy(os.path.join(FIXTURES, "tiny-gpt2", name), folder)
    shutil.copy(os.path.join(FIXTURES, "tiny-tokenizer", "tokenizer.json"), folder)
    return folder


def discover(case, data, extra=()):
    return ["discover", "--model", TINY_GGUF, "--data", data, "--method", "eap", "--held-out", "0", "--edges", "5",
            "--out", os.path.join(case, "out"), "--render-timeout", "0", "--top", "0", *extra]


def target_gguf(case, rng):
    path = os.path.join(case, "model.gguf")
    with open(path, "wb") as f:
        f.write(mutate_bytes(read(TINY_GGUF), rng, focus=4096 if rng.random() < 0.8 else None))
    return path, ["run", "--model", path, "--top", "2", "the cat"]


def target_safetensors(case, rng):
    folder = hf_model_dir(case)
    path = os.path.join(folder, "model.safetensors")
    data = read(path)
    header = struct.unpack("<Q", data[:8])[0] + 8
    if rng.random() < 0.5:  # mutate the header JSON structurally, fixing up its length
        text = mutate_json(data[8:header].decode("utf-8", "replace"), rng).encode()
        data = struct.pack("<Q", len(text)) + text + data[header:]
    else:
        data = mutate_bytes(data, rng, focus=header)
    with open(path, "wb") as f:
        f.write(data)
    return path, ["run", "--model", folder, "--top", "2", "the cat"]


def target_json_in_model(name):
    def target(case, rng):
        folder = hf_model_dir(case)
        path = os.path.join(folder, name)
        mutated = mutate_json(read(path, "r"), rng)
        with open(path, "w") as f:
            f.write(mutated)
        return path, ["run", "--model", folder, "--top", "2", "the cat"]
    return target


def target_pairs(seed_name):
    def target(case, rng):
        path = os.path.join(case, seed_name)
        text = read(os.path.join(CORPUS, seed_name), "r")
        with open(path, "w") as f:
            f.write(mutate_json(text, rng) if seed_name.endswith(".json") else mutate_lines(text, rng))
        return path, discover(case, path)
    return target


def target_circuit(case, rng):
    path = os.path.join(case, "circuit.json")
    with open(path, "w") as f:
        f.write(mutate_json(read(os.path.join(CORPUS, "circuit.json"), "r"), rng))
    return path, ["evaluate", "--circuit", path, "--model", TINY_GGUF, "--data", os.path.join(CORPUS, "pairs.jsonl"), "--held-out", "0"]


def target_acdc_state(case, rng):
    path = os.path.join(case, "acdc-state.json")
    with open(path, "w") as f:
        f.write(mutate_json(read(os.path.join(CORPUS, "acdc-state.json"), "r"), rng))
    return path, ["discover", "--model", TINY_GGUF, "--data", os.path.join(CORPUS, "pairs.jsonl"), "-n", "4", "--method", "acdc",
                  "--held-out", "0", "--resume", path, "--out", os.path.join(case, "out"), "--render-timeout", "0", "--top", "0"]


TARGETS = {
    "gguf": target_gguf,
    "safetensors": target_safetensors,
    "config.json": target_json_in_model("config.json"),
    "tokenizer.json": target_json_in_model("tokenizer.json"),
    "pairs.jsonl": target_pairs("pairs.jsonl"),
    "pairs.json": target_pairs("pairs.json"),
    "pairs.csv": target_pairs("pairs.csv"),
    "circuit JSON": target_circuit,
    "ACDC state": target_acdc_state,
}


# --- running and classifying ------------------------------------------------------------------

def limit_resources():
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def classify(returncode, stdout, stderr, path, timed_out):
    if timed_out:
        return "hang"
    if returncode < 0 or returncode in (132, 133, 134, 136, 139):
        return "crash"
    if returncode == 0:
        # NaN as a printed number ("nan", "-nan"), not inside a word or a path.
        return "silent NaN" if re.search(r"(?<![\w/.-])-?nan(?![\w/.])", stdout, re.IGNORECASE) else "ok"
    lines = [line for line in stderr.strip().split("\n") if line.strip()]
    errors = [line for line in lines if ": error: " in line or line.startswith("circuits ")]
    if returncode == 2 and errors:
        return "error"  # usage errors name the option, not a file
    named = any(os.path.basename(path) in line or os.path.dirname(path) in line for line in errors)
    return "error" if errors and named and len(errors) == 1 and len(errors[0]) < 2000 else "vague error"


def run_case(circuits, target, rng, work):
    case = tempfile.mkdtemp(dir=work)
    path, arguments = TARGETS[target](case, rng)
    start = time.time()
    # A run past the limit is tried once more with four times as long, so that a busy machine is not
    # mistaken for a hang.
    for limit in (TIME_LIMIT, 4 * TIME_LIMIT):
        try:
            done = subprocess.run([circuits] + arguments, capture_output=True, text=True, errors="replace", timeout=limit,
                                  preexec_fn=limit_resources, cwd=case)
            return case, path, arguments, classify(done.returncode, done.stdout, done.stderr, path, False), done.stderr, time.time() - start
        except subprocess.TimeoutExpired as expired:
            stderr = expired.stderr.decode("utf-8", "replace") if isinstance(expired.stderr, bytes) else (expired.stderr or "")
    return case, path, arguments, "hang", stderr, time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--circuits", default=os.path.join(ROOT, ".build", "release", "circuits"))
    parser.add_argument("--report", help="write a Markdown table of the outcomes here")
    parser.add_argument("--keep", help="copy the inputs of crashes, hangs and vague errors here")
    args = parser.parse_args()
    if not os.access(args.circuits, os.X_OK):
        sys.exit(f"fuzz.py: {args.circuits} is not an executable; build it with `swift build -c release`")
    rng = random.Random(args.seed)
    counts = {target: Counter() for target in TARGETS}
    examples = []
    work = tempfile.mkdtemp(prefix="circuits-fuzz-")
    started = time.time()
    try:
        for i in range(args.cases):
            target = list(TARGETS)[i % len(TARGETS)]
            case, path, arguments, outcome, stderr, seconds = run_case(args.circuits, target, rng, work)
            counts[target][outcome] += 1
            if outcome in ("crash", "hang", "vague error", "silent NaN"):
                last = stderr.strip().split("\n")[-1][:300] if stderr.strip() else ""
                examples.append((outcome, target, i, last))
                if args.keep:
                    shutil.copytree(case, os.path.join(args.keep, f"{outcome.replace(' ', '-')}-{i}"), dirs_exist_ok=True)
            shutil.rmtree(case, ignore_errors=True)
            if (i + 1) % 100 == 0 or i + 1 == args.cases:
                total = sum((c for c in counts.values()), Counter())
                elapsed = time.time() - started
                print(f"{i + 1}/{args.cases} cases, {elapsed:.0f} s, about {elapsed / (i + 1) * (args.cases - i - 1):.0f} s left: "
                      + ", ".join(f"{k} {v}" for k, v in sorted(total.items())), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    outcomes = ["ok", "error", "vague error", "silent NaN", "crash", "hang"]
    table = ["| input | cases | " + " | ".join(outcomes) + " |", "|---|---:|" + "---:|" * len(outcomes)]
    for target, counter in counts.items():
        table.append(f"| {target} | {sum(counter.values())} | " + " | ".join(str(counter[o]) for o in outcomes) + " |")
    total = sum(counts.values(), Counter())
    table.append(f"| **all** | {sum(total.values())} | " + " | ".join(str(total[o]) for o in outcomes) + " |")
    report = "\n".join(table)
    print(report)
    for outcome, target, i, last in examples[:40]:
        print(f"  case {i} ({target}): {outcome}: {last}")
    if args.report:
        with open(args.report, "w") as f:
            f.write(f"`python3 Tests/Fuzz/fuzz.py --cases {args.cases} --seed {args.seed}`, {time.strftime('%Y-%m-%d')}, "
                    f"{time.time() - started:.0f} s\n\n{report}\n\n")
            for outcome, target, i, last in examples:
                f.write(f"- case {i} ({target}): {outcome}: `{last}`\n")
    sys.exit(1 if total["crash"] or total["hang"] else 0)


if __name__ == "__main__":
    main()
