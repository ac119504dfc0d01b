"""Writes the IOI pairs the EAP benchmarks run on: ioi_pairs.json (token ids) and ioi_pairs.jsonl (text).

100 indirect-object-identification pairs from eight templates of different lengths, e.g.
"When Mary and John went to the store, John gave a drink to" → " Mary" (correct) vs " John"
(incorrect). The corrupt prompt replaces the three name slots with three other names (the "ABC"
corruption of EAP-IG), so clean and corrupt have the same token count. Half the pairs put the
indirect object first (ABBA), half second (BABA). Names are single tokens with a leading space.

Token ids come from SmolLM2's tokenizer rebuilt from the GGUF vocabulary with digits isolated
(Tests/Fixtures/generate_smollm2.py), checked against design §2's example. Outputs:
  ioi_pairs.json   {"clean": [[ids]], "corrupt": [[ids]], "correct": [[id]], "incorrect": [[id]]} for torch_eap.py
  ioi_pairs.jsonl  one {"clean", "corrupt", "correct", "incorrect"} text object a line (design §9)
Regenerate (deterministic):
  /root/ckvenv/bin/python Benchmarks/baselines/make_ioi_pairs.py
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.dont_write_bytecode = True  # keep __pycache__ out of Tests/Fixtures
sys.path.insert(0, str(HERE.parents[1] / "Tests" / "Fixtures"))
import gguf  # noqa: E402
from generate_smollm2 import MODEL, smollm2_tokenizer  # noqa: E402

TEMPLATES = [
    "When {A} and {B} went to the store, {S} gave a drink to",
    "Then, {A} and {B} had a long argument. Afterwards, {S} said to",
    "After {A} and {B} walked to the park by the old lake, {S} handed a ball to",
    "When {A} and {B} arrived, {S} gave a book to",
    "While {A} and {B} were working at the office, {S} gave a report to",
    "Friends {A} and {B} found a letter at the school. {S} gave it to",
    "The day {A} and {B} visited the museum, {S} bought a ticket for",
    "After the long meeting at the bank, {A} and {B} went outside, and {S} passed the keys to",
]
NAMES = ["Mary", "John", "Sarah", "David", "Lisa", "Tom", "Anna", "Mark", "James", "Michael", "Robert", "Emma",
         "Daniel", "Paul", "Kate", "Laura", "Peter", "Alice", "Jack", "Rachel", "Steven", "Andrew", "Helen", "George"]
COUNT = 100
DESIGN_EXAMPLE = [2427, 5099, 284, 2322, 3514, 288, 260, 4249, 28, 2322, 4502, 253, 5968, 288]


def main() -> None:
    tok = smollm2_tokenizer(gguf.GGUFReader(str(MODEL)))
    example = tok.encode(TEMPLATES[0].format(A="Mary", B="John", S="John")).ids
    assert example == DESIGN_EXAMPLE, f"tokenizer differs from design §2: {example}"
    names = [n for n in NAMES if len(tok.encode(" " + n).ids) == 1]
    assert len(names) >= 10, f"too few single-token names: {names}"

    rng = random.Random(0)
    rows, ids = [], {"clean": [], "corrupt": [], "correct": [], "incorrect": []}
    for i in range(COUNT):
        template = TEMPLATES[i % len(TEMPLATES)]
        io, s, *others = rng.sample(names, 5)
        a, b = (io, s) if i % 2 == 0 else (s, io)  # ABBA or BABA
        clean = template.format(A=a, B=b, S=s)
        corrupt = template.format(A=others[0], B=others[1], S=others[2])
        clean_ids, corrupt_ids = tok.encode(clean).ids, tok.encode(corrupt).ids
        assert len(clean_ids) == len(corrupt_ids), f"pair {i}: {clean!r} and {corrupt!r} differ in length"
        rows.append({"clean": clean, "corrupt": corrupt, "correct": [" " + io], "incorrect": [" " + s]})
        ids["clean"].append(clean_ids)
        ids["corrupt"].append(corrupt_ids)
        ids["correct"].append(tok.encode(" " + io).ids)
        ids["incorrect"].append(tok.encode(" " + s).ids)

    (HERE / "ioi_pairs.json").write_text(json.dumps(ids, separators=(",", ":")) + "\n")
    (HERE / "ioi_pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    lengths = sorted({len(c) for c in ids["clean"]})
    print(f"wrote {COUNT} pairs ({sum(map(len, ids['clean']))} tokens per side, lengths {lengths}) "
          f"to {HERE / 'ioi_pairs.json'} and ioi_pairs.jsonl")


if __name__ == "__main__":
    main()
