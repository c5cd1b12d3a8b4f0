#!/usr/bin/env python3
"""Reference pre-tokenizations for tests/test_tokenizer_bpe.c, made with Python's `regex`
module (Debian: python3-regex), an implementation independent of PCRE2, from the patterns the
models' own tokenizer.json files carry (Llama 3 / tiktoken cl100k-style, Qwen2). pinfer has no
Llama 3 or Qwen2 vocabulary to run llama.cpp's vectors with, so these splits are how the
pre-tokenizers of those names are checked.

    python3 scripts/pretok-ref.py tests/data/pretok

writes <name>.txt per pre-tokenizer: for each case a line `in <hex>` and a line `out <hex>|...`
(the UTF-8 bytes of the input, then of each pre-token). Inputs: hand-written cases, then seeded
random strings over a character set chosen to avoid code points whose Unicode category changed
between Unicode 14 (Debian 12's PCRE2) and the version Python's regex uses.
"""
import os
import random
import sys

import regex

PATTERNS = {
    # meta-llama/Meta-Llama-3-8B tokenizer.json, pre_tokenizer Split pattern
    "llama-bpe": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    # Qwen/Qwen2-7B tokenizer.json: the same with single digits
    "qwen2": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
}

HAND = [
    "Hello, world!", "I'm here, you're there; we'll see. THEY'LL, SHE'S, it'D", "1 12 123 1234 12345 1234567",
    "x=3.14159*2", "  leading spaces", "trailing spaces   ", "tab\tand\nnewline\r\nCRLF\n\n\nthree",
    "mixed   \n   whitespace \t\n", "$100.00 + 50% = ??? !!!", "email@example.com http://x.y/z?q=1&r=2",
    "naïve café résumé", "Ελληνικά και Русский текст", "中文字符和日本語のテキスト", "한국어 텍스트",
    "emoji 🦙🚀 and ❤️ here", "١٢٣ ٤٥٦ arabic-indic digits", "ｆｕｌｌｗｉｄｔｈ １２３", "a\u00a0b\u2009c\u3000d",
    "combining e\u0301 and a\u0308", "'s's'S 'll'LL 've", "don't won't can't", "((()))[]{}<>",
    "line1\n\tline2\n\t\tline3", "   ", "\n", "", "a", "1", "'", "x'", "ab'cd", "\u2028sep\u2029para",
]

CHARS = (list("abcXYZ019 '\t\n\r.,;:!?-_()$%&*+=/\\\"")
         + list("éüßñçøÅ") + list("αβγΔΩ") + list("абвЖЯ") + list("中文字日本語") + list("한국")
         + list("١٢٣") + list("１２３ａｂ") + ["\u00a0", "\u2009", "\u3000", "\u0301", "\u0308"]
         + list("🦙🚀❤") + list("…—–“”‘’«»"))


def cases(seed=7, n=300):
    yield from HAND
    rnd = random.Random(seed)
    for _ in range(n):
        k = rnd.randint(1, 40)
        yield "".join(rnd.choice(CHARS) for _ in range(k))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/pretok"
    os.makedirs(out, exist_ok=True)
    for name, pat in PATTERNS.items():
        rx = regex.compile(pat)
        with open(os.path.join(out, name + ".txt"), "w") as f:
            f.write("# made by scripts/pretok-ref.py with Python regex %s\n" % regex.__version__)
            for s in cases():
                words = rx.findall(s)
                assert "".join(words) == s, (name, s)
                f.write("in " + s.encode().hex() + "\n")
                f.write("out " + "|".join(w.encode().hex() for w in words) + "\n")


if __name__ == "__main__":
    main()
