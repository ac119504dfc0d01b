#!/usr/bin/env python3
"""Generates the tokenizer test fixtures from HF `tokenizers` (the independent reference).

Run from the repository root:

    /root/ckvenv/bin/python Tests/Fixtures/tokenizer/generate.py

Inputs (read, never copied into the project):
- the SmolLM2-135M-Instruct GGUF in ~/.cache/circuitkit/models (vocabulary embedded in its metadata);
- ../shared/data/gpt2-tokenizer/encoder.json + vocab.bpe (the original GPT-2 vocabulary).

Outputs:
- Tests/Fixtures/tiny-tokenizer/{tokenizer.json, tokenizer-digits.json, vocab.json, merges.txt}:
  a tiny byte-level BPE (512 tokens, special token "<|endoftext|>") trained here on a seeded
  synthetic corpus; tokenizer-digits.json is the same model with SmolLM2's pre-tokenizer
  (Digits(individual_digits) then ByteLevel).
- Tests/Fixtures/tokenizer/strings.json: the test strings (seeded, deterministic).
- Tests/Fixtures/tokenizer/<vocabulary>.json for gpt2, smollm2, tiny, tiny-digits: HF's ids for
  every string, HF's decodes of id slices (some cut UTF-8 sequences), and single-token decodes.

A vocabulary whose input is missing is skipped with a message; the existing output is kept.
Everything is seeded, so rerunning reproduces the files byte for byte.
"""

import json
import os
import random
import sys

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
OUT = os.path.join(ROOT, "Tests", "Fixtures", "tokenizer")
TINY = os.path.join(ROOT, "Tests", "Fixtures", "tiny-tokenizer")
GGUF = os.path.expanduser("~/.cache/circuitkit/models/SmolLM2-135M-Instruct.Q4_1.gguf")
GPT2 = os.path.join(ROOT, "..", "shared", "data", "gpt2-tokenizer")
IOI = "When Mary and John went to the store, John gave a drink to"
IOI_IDS = [2427, 5099, 284, 2322, 3514, 288, 260, 4249, 28, 2322, 4502, 253, 5968, 288]

# ---------------------------------------------------------------------------------------------
# Test strings

HAND_WRITTEN = [
    "",
    " ",
    "  ",
    "\n",
    "\t",
    IOI,
    " Mary",
    " John",
    "Mary",
    "Ms. O'Neil",
    "Mr. O'Brien and Mrs. McDonald's",
    "Jean-Luc Picard",
    "1987",
    " 1987",
    "32",
    " 17",
    "from 1705 to 17",
    "The war lasted from 1914 to 1918.",
    "1,000,000",
    "1.000.000,50",
    "3.14159",
    "$1,234.56",
    "-42",
    "+1 (555) 123-4567",
    "10:30 p.m.",
    "2023-01-15T08:30:00Z",
    "0x1F 0b1010 1e-5",
    "v1.2.3",
    "café",
    "naïve résumé",
    "Zürich, Köln, Malmö",
    "ñandú",
    "e\u0301",
    "cafe\u0301 au lait",
    "a\u0300\u0301\u0302b",
    "Ελληνικά",
    "Привет, мир!",
    "北京欢迎你",
    "日本語のテキスト、カタカナ。",
    "한국어 문장입니다",
    "مرحبا بالعالم",
    "שלום עולם",
    "abc \u05e9\u05dc\u05d5\u05dd 123",
    "हिन्दी",
    "ภาษาไทย",
    "👍",
    "👍🏽",
    "👨‍👩‍👧‍👦",
    "🇫🇷🇩🇪",
    "I ❤️ NY",
    "½ ¾ ² ³",
    "٣٤٥ and ۱۲",
    "Ⅻ Ⅳ",
    "１２３ＡＢＣ",
    "a  \n\n  b",
    "a\n\nb",
    "a \n b",
    "a\t\tb",
    "hello   ",
    "   hello",
    "trailing\n",
    "line one\nline two\r\nline three",
    "\n\n\n",
    " \t \n ",
    "a\u00a0b",
    "a\u00a0\u00a0b",
    "x\u3000 y",
    "a\u2028b\u2029c",
    "a\u0085b",
    "a\u200bb",
    "a\u1680b\u2005c\u202fd\u205fe\u180ef\ufeffg",
    "a\x1cb\x1ec\x1fd\x0be\x0cf",
    "a\u2009b",
    "don't",
    "I'LL",
    "it's",
    "we've",
    "they're",
    "I'd",
    "you'll",
    "I'm",
    "'s",
    "'sup",
    " 's",
    "rock 'n' roll",
    "it’s",
    "Hello, world!",
    "...",
    "?!",
    "--",
    "(a) [b] {c} <d>",
    "\"quoted\" and 'single'",
    "50% off!!!",
    "a@b.com",
    "https://example.com/path?q=1&r=2",
    "#hashtag @mention",
    "def f(x):\n    return x**2\n",
    "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}",
    "if x == 1 and y != 2:\n        pass",
    "SELECT * FROM t WHERE id = 7;",
    "<html><body>Hi</body></html>",
    "let xs = [1, 2, 3].map { $0 * 2 }",
    "<|endoftext|>",
    "a<|endoftext|>b",
    "Hello<|endoftext|> world",
    "<|endoftext|><|endoftext|>",
    "<|endoftext|",
    "<|endoftext|>>",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|><|im_end|>",
    "<reponame>x<filename>y.py",
]

WORDS = [
    "the", "The", "of", "and", "to", "in", "is", "was", "for", "on", "with", "as", "store", "drink",
    "gave", "went", "garden", "school", "restaurant", "hospital", "book", "ball", "apple", "computer",
    "transformer", "circuit", "attention", "neuron", "tokenizer", "indirect", "object", "THE", "HELLO",
    "iPhone", "McDonald", "naïve", "über", "straße", "déjà", "vu", "Ångström", "fiancée", "Ωmega",
]
NAMES = [
    "Mary", "John", "Alice", "Bob", "Sarah", "Michael", "O'Neil", "D'Angelo", "José", "Zoë", "Björn",
    "Nguyễn", "Søren", "Chloé", "Łukasz", "Dvořák", "Mohammed", "Ana-María", "Jean-Luc", "Xi", "Kim",
]
NUMBERS = [
    "0", "7", "17", "32", "42", "99", "100", "1705", "1987", "2024", "12345", "1,000", "3.5", "0.001",
    "10,000,000", "1st", "2nd", "3rd", "4th", "19th", "1990s", "'90s", "50%", "$5", "€10", "£3.50", "-1",
]
PUNCT = [
    ".", ",", "!", "?", ";", ":", "...", "—", "–", "-", "(", ")", "[", "]", "\"", "'", "’", "“", "”",
    "«", "»", "/", "\\", "*", "&", "#", "@", "%", "^", "~", "`", "|", "<", ">", "=", "+", "_", "§", "•",
]
CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'LL", "'D"]
UNICODE = [
    "é", "ü", "ñ", "ç", "ø", "å", "ß", "ž", "ő", "α", "β", "Ж", "я", "中", "文", "字", "日本", "語", "한",
    "글", "ع", "ر", "ب", "ש", "ל", "ו", "ם", "न", "ि", "ก", "ข", "😀", "🎉", "🚀", "👍🏽", "❤️", "✓",
    "→", "∑", "∞", "≠", "√", "π", "°", "©", "®", "™", "\u0301", "\u0308", "\u200d", "\ufe0f",
    "Ⅻ", "½", "²", "٣", "１", "𝔸", "𝟙", "\U00010348",
]
SPACES = [" ", " ", " ", " ", "  ", "   ", "\n", "\n\n", "\t", " \n", "\n ", "  \n\n  ", "\r\n", "\u00a0", "\u3000"]


def random_sentence(rng):
    """A sentence-like string: words, names, numbers, punctuation and unicode with varied spacing."""
    parts = []
    for _ in range(rng.randint(1, 9)):
        kind = rng.random()
        if kind < 0.35:
            piece = rng.choice(WORDS)
        elif kind < 0.5:
            piece = rng.choice(NAMES)
        elif kind < 0.65:
            piece = rng.choice(NUMBERS)
        elif kind < 0.78:
            piece = rng.choice(PUNCT)
        elif kind < 0.85:
            piece = rng.choice(WORDS) + rng.choice(CONTRACTIONS)
        else:
            piece = "".join(rng.choice(UNICODE) for _ in range(rng.randint(1, 3)))
        parts.append(piece)
        r = rng.random()
        parts.append("" if r < 0.15 else rng.choice(SPACES) if r < 0.35 else " ")
    if rng.random() < 0.5:
        parts.pop()  # no trailing separator
    return "".join(parts)


def random_soup(rng):
    """Characters drawn one by one from every class, to stress the pre-tokenizer's boundaries."""
    pool = (
        list("abcXYZ019 '\n\t.,!-_") + ["'s", "'ll", "  ", "\u00a0", "\u3000", "\u2028"]
        + UNICODE + PUNCT + ["<|endoftext|>"]
    )
    return "".join(rng.choice(pool) for _ in range(rng.randint(1, 24)))


def random_ioi(rng):
    """Prompts shaped like the IOI task's."""
    a, b = rng.sample(NAMES, 2)
    place = rng.choice(["store", "garden", "school", "restaurant", "hospital"])
    thing = rng.choice(["drink", "book", "ball", "apple", "computer"])
    return f"When {a} and {b} went to the {place}, {b} gave a {thing} to"


def random_year(rng):
    """Year ranges in the greater-than task's shape."""
    century = rng.choice([11, 12, 13, 14, 15, 16, 17, 18, 19, 20])
    start = rng.randint(2, 98)
    return f"The war lasted from the year {century}{start:02d} to the year {century}"


def test_strings():
    rng = random.Random(20240611)
    strings = list(HAND_WRITTEN)
    makers = [random_sentence] * 5 + [random_soup] * 3 + [random_ioi, random_year]
    while len(strings) < 640:
        s = rng.choice(makers)(rng)
        if s not in strings:
            strings.append(s)
    return strings


# ---------------------------------------------------------------------------------------------
# Reference tokenizers


def smollm_pre_tokenizer():
    """SmolLM2's tokenizer.json pre-tokenizer: every digit isolated, then GPT-2's byte-level split."""
    return pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])


def byte_level_bpe(vocab, merges, pre_tokenizer, specials):
    tokenizer = Tokenizer(models.BPE(vocab, merges))
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tokenizer


def smollm2_reference():
    if not os.path.exists(GGUF):
        print(f"skipping smollm2: {GGUF} is absent", file=sys.stderr)
        return None
    import gguf

    reader = gguf.GGUFReader(GGUF)

    def field(key):
        f = reader.fields[key]
        return [f.contents(i) for i in range(len(f.data))]

    assert reader.fields["tokenizer.ggml.pre"].contents() == "smollm"
    tokens = field("tokenizer.ggml.tokens")
    merges = [tuple(m.split(" ")) for m in field("tokenizer.ggml.merges")]
    types = field("tokenizer.ggml.token_type")
    specials = [t for t, kind in zip(tokens, types) if kind == 3]
    tokenizer = byte_level_bpe({t: i for i, t in enumerate(tokens)}, merges, smollm_pre_tokenizer(), specials)
    assert tokenizer.encode(IOI).ids == IOI_IDS, tokenizer.encode(IOI).ids
    return tokenizer


def gpt2_reference():
    encoder = os.path.join(GPT2, "encoder.json")
    if not os.path.exists(encoder):
        print(f"skipping gpt2: {encoder} is absent", file=sys.stderr)
        return None
    vocab, merges = models.BPE.read_file(encoder, os.path.join(GPT2, "vocab.bpe"))
    tokenizer = byte_level_bpe(vocab, merges, pre_tokenizers.ByteLevel(add_prefix_space=False), ["<|endoftext|>"])
    known = {" Mary": [5335], " John": [1757], " 17": [1596], "32": [2624]}
    for text, ids in known.items():
        assert tokenizer.encode(text).ids == ids, (text, tokenizer.encode(text).ids)
    return tokenizer


def training_corpus():
    rng = random.Random(7)
    makers = [random_sentence] * 6 + [random_ioi, random_year]
    return [rng.choice(makers)(rng) for _ in range(3000)]


def train_tiny():
    """Trains the tiny tokenizer and writes its files; returns (gpt2-style, digits-style) tokenizers."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    os.makedirs(TINY, exist_ok=True)
    tokenizer.save(os.path.join(TINY, "tokenizer.json"), pretty=True)
    tokenizer.model.save(TINY)  # vocab.json + merges.txt

    digits = Tokenizer.from_str(tokenizer.to_str())
    digits.pre_tokenizer = smollm_pre_tokenizer()
    digits.save(os.path.join(TINY, "tokenizer-digits.json"), pretty=True)
    return tokenizer, digits


# ---------------------------------------------------------------------------------------------
# Expected values


def expectations(tokenizer, strings, seed):
    rng = random.Random(seed)
    ids = [tokenizer.encode(s).ids for s in strings]
    for s, row in zip(strings, ids):
        assert tokenizer.decode(row, skip_special_tokens=False) == s, s
    # Slices of the encodings, cut anywhere: exercises replacement characters for split UTF-8.
    slices = []
    for row in rng.sample(ids, 200):
        if not row:
            continue
        start = rng.randrange(len(row))
        end = rng.randint(start + 1, len(row))
        piece = row[start:end]
        slices.append({"ids": piece, "text": tokenizer.decode(piece, skip_special_tokens=False)})
    # Single tokens, including byte tokens that are not valid UTF-8 on their own.
    size = tokenizer.get_vocab_size()
    picked = sorted(set(list(range(0, min(size, 300))) + rng.sample(range(size), min(size, 300))))
    singles = [{"id": i, "text": tokenizer.decode([i], skip_special_tokens=False)} for i in picked]
    return {"ids": ids, "decodes": slices, "tokens": singles}


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


def main():
    strings = test_strings()
    write_json(os.path.join(OUT, "strings.json"), strings)
    tiny, tiny_digits = train_tiny()
    references = {
        "gpt2": gpt2_reference(),
        "smollm2": smollm2_reference(),
        "tiny": tiny,
        "tiny-digits": tiny_digits,
    }
    for seed, (name, tokenizer) in enumerate(sorted(references.items())):
        if tokenizer is None:
            continue
        write_json(os.path.join(OUT, f"{name}.json"), expectations(tokenizer, strings, seed))
        print(f"{name}: {len(strings)} strings, vocabulary {tokenizer.get_vocab_size()}")


if __name__ == "__main__":
    main()
