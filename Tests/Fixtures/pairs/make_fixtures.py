"""Writes the pairs-file fixtures of Tests/TasksTests and their expected values.

Run from the repository root:  /root/ckvenv/bin/python Tests/Fixtures/pairs/make_fixtures.py

Outputs (next to this script):
  good.jsonl, bad.jsonl                      our JSONL format
  good-auto-circuit.json, bad-auto-circuit.json, broken-auto-circuit.json
                                             auto-circuit's datasets JSON ({"prompts": [...]}, indent 2)
  good-eap-ig.csv, bad-eap-ig.csv            EAP-IG's CSV (pandas index column, token ids)
  greater-than-eap-ig.csv                    EAP-IG's greater-than CSV (correct_idx = start year)
  expected.json                              what the tests expect, computed here with HF `tokenizers`
                                             (GPT-2's encoder.json/vocab.bpe, found as the tests
                                             find them: Tests/Fixtures/README.md) and
                                             `transformers` (SmolLM2 from the cached GGUF), never
                                             with CircuitKit.

The malformed files put one problem on each listed line; the expected line of each problem is
found by searching the written text for a marker unique to that entry.
"""

import csv
import io
import json
import os
from pathlib import Path

from tokenizers import ByteLevelBPETokenizer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]


def gpt2_dir():
    """GPT-2's tokenizer folder, looked for in the tests' order (Tests/TestSupport/Fixtures.swift)."""
    cache = Path(os.environ.get("CIRCUITKIT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "circuitkit")
    candidates = [Path(p) for p in [os.environ.get("CIRCUITKIT_GPT2_TOKENIZER")] if p]
    candidates += [ROOT.parent / "shared" / "data" / "gpt2-tokenizer", cache / "gpt2-tokenizer"]
    for folder in candidates:
        if (folder / "encoder.json").exists() and (folder / "vocab.bpe").exists():
            return folder
    raise SystemExit("GPT-2 tokenizer not found in " + ", ".join(map(str, candidates)))


GPT2_DIR = gpt2_dir()
SMOL_GGUF = Path(os.path.expanduser("~/.cache/circuitkit/models/SmolLM2-135M-Instruct.Q4_1.gguf"))

gpt2 = ByteLevelBPETokenizer(str(GPT2_DIR / "encoder.json"), str(GPT2_DIR / "vocab.bpe"))


def gpt2_ids(text):
    return gpt2.encode(text).ids


def line_of(text, marker):
    """1-based line of the only occurrence of marker in text."""
    assert text.count(marker) == 1, marker
    return text[: text.index(marker)].count("\n") + 1


def pair(clean, corrupt, correct, incorrect):
    return {"clean": clean, "corrupt": corrupt, "correct": correct, "incorrect": incorrect}


IOI_CLEAN = "When Mary and John went to the store, John gave a drink to"
IOI_CORRUPT = "When Alice and Bob went to the store, Carl gave a drink to"
GT_CLEAN = "The war lasted from the year 1352 to the year 13"
GT_CORRUPT = "The war lasted from the year 1301 to the year 13"

# ---------------------------------------------------------------- ours (JSONL)

good_lines = [
    json.dumps(pair(IOI_CLEAN, IOI_CORRUPT, [" Mary"], [" John"])),
    "",
    json.dumps(pair(GT_CLEAN, GT_CORRUPT, ["53", "54", "99"], ["01", "52"])),
    # \u escapes, an escaped quote, and fields in another order
    '{"incorrect": [" Tom"], "correct": [" Anna"], "clean": "Then, Anna and Tom went to the caf\\u00e9. Tom gave a \\"gift\\" to", '
    '"corrupt": "Then, Lisa and Paul went to the caf\\u00e9. Mark gave a \\"gift\\" to"}',
    # fields the format does not define, as published datasets often carry: ignored
    '{"clean": "When Mary and John went to the store, John gave a drink to", "corrupt": "When Alice and Bob went to the store, Carl gave a drink to", '
    '"correct": [" Mary"], "incorrect": [" John"], "template": 3, "meta": {"source": "x"}, "template": 4}',
    "   ",
]
for line in good_lines:
    if line.strip():
        entry = json.loads(line)
        assert len(gpt2_ids(entry["clean"])) == len(gpt2_ids(entry["corrupt"])), entry
(HERE / "good.jsonl").write_text("\n".join(good_lines) + "\n")

valid = json.dumps(pair(IOI_CLEAN, IOI_CORRUPT, [" Mary"], [" John"]))
bad_entries = [
    ("valid", valid),
    ("bad JSON", '{"clean": "When Mary and John went", "corrupt": "When Alice and Bob went" "correct": [" Mary"], "incorrect": [" John"]}'),
    ("valid", valid),
    ("two-token answer", json.dumps(pair(IOI_CLEAN, IOI_CORRUPT, [" Zachary"], [" John"]))),
    ("length mismatch", json.dumps(pair(IOI_CLEAN, "When Alice and Bob went to the big store, Carl gave a drink to", [" Mary"], [" John"]))),
    ("empty answer list", json.dumps(pair(IOI_CLEAN, IOI_CORRUPT, [" Mary"], []))),
    ("field type", json.dumps(pair(IOI_CLEAN, IOI_CORRUPT, " Mary", [" John"]))),
    ("misspelled field", json.dumps({"clean": IOI_CLEAN, "corrupted": IOI_CORRUPT, "correct": [" Mary"], "incorrect": [" John"]})),
    ("missing field", json.dumps({"clean": IOI_CLEAN, "corrupt": IOI_CORRUPT, "correct": [" Mary"]})),
    ("list element type", json.dumps(pair(IOI_CLEAN, IOI_CORRUPT, [5], [" John"]))),
    ("valid", valid),
    ("not an object", "[1, 2, 3]"),
    ("answer in both", json.dumps(pair(IOI_CLEAN, IOI_CORRUPT, [" Mary", " John"], [" John"]))),
]
(HERE / "bad.jsonl").write_text("\n".join(text for _, text in bad_entries) + "\n")

# ---------------------------------------------------------------- auto-circuit (JSON)

good_ac = {
    "word_idxs": {"IO": 2, "S1": 4, "S2": 10, "end": 14},
    "prompts": [
        {"clean": IOI_CLEAN, "corrupt": IOI_CORRUPT, "answers": [" Mary"], "wrong_answers": [" John"]},
        {"clean": "Then, Scott and Jeremy went to the hospital. Jeremy gave a snack to",
         "corrupt": "Then, Michael and Anderson went to the hospital. Rachel gave a snack to",
         "answers": [" Scott"], "wrong_answers": [" Jeremy"]},
        {"clean": GT_CLEAN, "corrupt": GT_CORRUPT, "answers": ["53", "60", "99"], "wrong_answers": ["00", "52"]},
    ],
}
(HERE / "good-auto-circuit.json").write_text(json.dumps(good_ac, indent=2) + "\n")

bad_ac_prompts = [
    ("valid", {"clean": IOI_CLEAN, "corrupt": IOI_CORRUPT, "answers": [" Mary"], "wrong_answers": [" John"]}, None),
    ("two-token answer", {"clean": IOI_CLEAN, "corrupt": IOI_CORRUPT, "answers": [" Mary", " Jacqueline"], "wrong_answers": [" John"]}, '" Jacqueline"'),
    ("length mismatch", {"clean": IOI_CLEAN, "corrupt": "When Alice and Bob went to the old store, Carl gave a drink to", "answers": [" Mary"], "wrong_answers": [" John"]}, "the old store"),
    ("empty answer list", {"clean": "When Kate and Tom went to the park, Tom gave a ball to", "corrupt": "When Lisa and Paul went to the park, Mark gave a ball to", "answers": [" Kate"], "wrong_answers": []}, '"wrong_answers": []'),
    ("field type", {"clean": "When Anna and Sam went to the bank, Sam gave a coin to", "corrupt": "When Lucy and Paul went to the bank, Mark gave a coin to", "answers": " Anna", "wrong_answers": [" Sam"]}, '"answers": " Anna"'),
    ("misspelled field", {"clean": "When Jane and Tim went to the zoo, Tim gave a hat to", "corrupted": "When Lucy and Paul went to the zoo, Mark gave a hat to", "answers": [" Jane"], "wrong_answers": [" Tim"]}, '"corrupted"'),
    ("valid", {"clean": "When Emma and Jack went to the lake, Jack gave a cup to", "corrupt": "When Lucy and Paul went to the lake, Mark gave a cup to", "answers": [" Emma"], "wrong_answers": [" Jack"]}, None),
]
bad_ac = {"prompts": [p for _, p, _ in bad_ac_prompts]}
bad_ac_text = json.dumps(bad_ac, indent=2) + "\n"
(HERE / "bad-auto-circuit.json").write_text(bad_ac_text)

broken_ac_text = '{\n  "prompts": [\n    {\n      "clean": "When Mary and John went to the store",\n      "corrupt": "x",\n      "answers": [" Mary"],,\n      "wrong_answers": [" John"]\n    }\n  ]\n}\n'
(HERE / "broken-auto-circuit.json").write_text(broken_ac_text)

# ---------------------------------------------------------------- EAP-IG (CSV)


def write_csv(path, header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buffer.getvalue())
    return buffer.getvalue()


def ioi_row(index, clean, corrupt, hard, io, s):
    return [index, clean, corrupt, hard, gpt2_ids(io)[0], gpt2_ids(s)[0]]


eap_header = ["", "clean", "corrupted", "corrupted_hard", "correct_idx", "incorrect_idx"]
good_eap_rows = [
    ioi_row(470, "Then, Aaron and Amber were working at the house. Aaron decided to give a drink to",
            "Then, Aaron and Amber were working at the house. Tiffany decided to give a drink to",
            "Then, Aaron and Amber were working at the house. Amber decided to give a drink to", " Amber", " Aaron"),
    ioi_row(12, 'When "Kate" and Tom went to the park, Tom gave a ball to',
            'When "Lisa" and Paul went to the park, Mark gave a ball to',
            'When "Kate" and Tom went to the park, Kate gave a ball to', " Kate", " Tom"),
    ioi_row(7, "Then,\nMary and John went to the store. John gave a drink to",
            "Then,\nAlice and Bob went to the store. Carl gave a drink to",
            "Then,\nMary and John went to the store. Mary gave a drink to", " Mary", " John"),
    ioi_row(3, "After Emma and Jack went to the lake, Jack gave a cup to",
            "After Lucy and Paul went to the lake, Mark gave a cup to",
            "After Emma and Jack went to the lake, Emma gave a cup to", " Emma", " Jack"),
]
for row in good_eap_rows:
    assert len(gpt2_ids(row[1])) == len(gpt2_ids(row[2])), row
write_csv(HERE / "good-eap-ig.csv", eap_header, good_eap_rows)

bad_eap_entries = [
    ("valid", ioi_row(1, "Then,\nMary and John went to the bank. John gave a coin to", "Then,\nAlice and Bob went to the bank. Carl gave a coin to",
                      "x", " Mary", " John"), None),
    ("not an integer", [2, "When Jane and Tim went to the zoo, Tim gave a hat to", "When Lucy and Paul went to the zoo, Mark gave a hat to", "x", "Jane", gpt2_ids(" Tim")[0]], "Jane and Tim"),
    ("out of range", [3, "When Kate and Tom went to the park, Tom gave a ball to", "When Lisa and Paul went to the park, Mark gave a ball to", "x", 99999, gpt2_ids(" Tom")[0]], "Kate and Tom"),
    ("field count", [4, "When Emma and Jack went to the lake, Jack gave a cup to", "When Lucy and Paul went to the lake, Mark gave a cup to", gpt2_ids(" Emma")[0], gpt2_ids(" Jack")[0]], "Emma and Jack"),
    ("length mismatch", [5, "When Amy and Ben went to the farm, Ben gave a pen to", "When Lucy and Paul went to the old farm, Mark gave a pen to", "x", gpt2_ids(" Amy")[0], gpt2_ids(" Ben")[0]], "Amy and Ben"),
    ("answer in both", [6, "When Eva and Dan went to the gym, Dan gave a key to", "When Lucy and Paul went to the gym, Mark gave a key to", "x", gpt2_ids(" Dan")[0], gpt2_ids(" Dan")[0]], "Eva and Dan"),
    ("valid", ioi_row(7, "When Ruth and Leo went to the mall, Leo gave a map to", "When Lucy and Paul went to the mall, Mark gave a map to", "x", " Ruth", " Leo"), None),
]
for kind, row, _ in bad_eap_entries:
    if kind != "length mismatch":
        assert len(gpt2_ids(row[1])) == len(gpt2_ids(row[2])), row
bad_eap_text = write_csv(HERE / "bad-eap-ig.csv", eap_header, [row for _, row, _ in bad_eap_entries])

gt_rows = [
    ["The contract lasted from the year 1352 to the year 13", "The contract lasted from the year 1301 to the year 13", 52],
    ["The plan lasted from the year 1642 to the year 16", "The plan lasted from the year 1601 to the year 16", 42],
    ["The trip lasted from the year 1799 to the year 17", "The trip lasted from the year 1701 to the year 17", 99],
    ["The deal lasted from the year 1230 to the year 12", "The deal lasted from the year 1201 to the year 12", 130],
    ["The war lasted from the year 1585 to the year 15", "The war lasted from the year 1501 to the year 15", 85],
]
write_csv(HERE / "greater-than-eap-ig.csv", ["clean", "corrupted", "correct_idx"], gt_rows)

# ---------------------------------------------------------------- expected values


def token_info(encode, decode):
    two_digit = ["%02d" % n for n in range(100)]
    digits = [str(n) for n in range(10)]
    return {
        "two_digit_ids": [encode(t) for t in two_digit],
        "digit_ids": [encode(t) for t in digits],
    }


bad_jsonl_lines = [i + 1 for i, (kind, _) in enumerate(bad_entries) if kind != "valid"]
expected = {
    "good_jsonl_count": sum(1 for line in good_lines if line.strip()),
    "good_jsonl_ignored_fields": ["template", "meta"],
    "bad_jsonl": [{"line": i + 1, "kind": kind} for i, (kind, _) in enumerate(bad_entries) if kind != "valid"],
    "bad_jsonl_valid_count": sum(1 for kind, _ in bad_entries if kind == "valid"),
    "good_auto_circuit_count": len(good_ac["prompts"]),
    "bad_auto_circuit": [{"line": line_of(bad_ac_text, marker), "kind": kind}
                         for kind, _, marker in bad_ac_prompts if marker is not None],
    "broken_auto_circuit_line": line_of(broken_ac_text, ",,"),
    "good_eap_ig": [{"clean": r[1], "corrupt": r[2], "correct_id": r[4], "incorrect_id": r[5]} for r in good_eap_rows],
    "bad_eap_ig": [{"line": line_of(bad_eap_text, marker), "kind": kind}
                   for kind, _, marker in bad_eap_entries if marker is not None],
    "greater_than_eap_ig_years": [r[2] for r in gt_rows],
    "gpt2": {
        "ids": {w: gpt2_ids(w) for w in [" Mary", " John", " Zachary", " Jacqueline", " Anna", " Tom"]},
        "pieces": {w: [gpt2.decode([i]) for i in gpt2_ids(w)] for w in [" Zachary", " Jacqueline"]},
        "ioi_clean_length": len(gpt2_ids(IOI_CLEAN)),
        "length_mismatch_corrupt_length": len(gpt2_ids("When Alice and Bob went to the big store, Carl gave a drink to")),
        **token_info(lambda t: gpt2_ids(t), gpt2.decode),
    },
}

tasks = {name: json.loads((ROOT / "Tasks" / name / "task.json").read_text()) for name in ["ioi", "greater-than", "induction"]}


def one_token(encode, words):
    return [w for w in words if len(encode(" " + w)) == 1]


def task_filters(encode):
    return {
        "ioi_names": one_token(encode, tasks["ioi"]["names"]),
        "ioi_places": one_token(encode, tasks["ioi"]["places"]),
        "ioi_objects": one_token(encode, tasks["ioi"]["objects"]),
        "greater_than_nouns": one_token(encode, tasks["greater-than"]["nouns"]),
        "induction_words": one_token(encode, tasks["induction"]["words"]),
    }


expected["gpt2"].update(task_filters(gpt2_ids))

if SMOL_GGUF.exists():
    from transformers import AutoTokenizer

    smol = AutoTokenizer.from_pretrained(str(SMOL_GGUF.parent), gguf_file=SMOL_GGUF.name)

    def smol_ids(text):
        return smol.encode(text, add_special_tokens=False)

    expected["smollm2"] = {
        "ids": {w: smol_ids(w) for w in [" Mary", " John", " Brandon"]},
        **token_info(smol_ids, lambda ids: smol.decode(ids)),
        **task_filters(smol_ids),
    }

(HERE / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
print("wrote fixtures to", HERE)
