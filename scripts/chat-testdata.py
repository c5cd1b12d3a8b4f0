#!/usr/bin/env python3
"""Extracts the conversation test cases of llama.cpp's tests/test-chat-template.cpp (name, Jinja
template, expected output of llama_chat_apply_template) into a C header of test data.
usage: chat-testdata.py LLAMA_CPP_DIR > tests/data/chat_cases.h"""
import re, subprocess, sys

root = sys.argv[1]
src = open(root + "/tests/test-chat-template.cpp", encoding="utf-8").read()
commit = subprocess.run(["git", "-C", root, "rev-parse", "--short=9", "HEAD"],
                        capture_output=True, text=True).stdout.strip() or "unknown"

def lit(s, i):
    """Parses a (u8)"..." literal starting at s[i]; returns (text, end index)."""
    if s.startswith('u8"', i): i += 2
    assert s[i] == '"', s[i:i + 40]
    i += 1
    out = []
    esc = {'n': '\n', 't': '\t', '\\': '\\', '"': '"', "'": "'"}
    while s[i] != '"':
        if s[i] == '\\':
            out.append(esc[s[i + 1]])   # KeyError on an escape this script does not know
            i += 2
        else:
            out.append(s[i]); i += 1
    return ''.join(out), i + 1

def field(block, name):
    m = re.search(r'/\* \.' + name + r'= \*/\s*', block)
    return lit(block, m.end())[0]

def c_lines(text, width=96):
    """C literal pieces of at most ~width source characters, split only between characters."""
    esc = {'\n': '\\n', '\t': '\\t', '\\': '\\\\', '"': '\\"'}
    pieces, cur = [], ''
    for ch in text:
        e = esc.get(ch, ch)
        assert e == ch and ord(ch) >= 0x20 or ch in esc, repr(ch)
        if len(cur) + len(e) > width:
            cut = cur.rfind(' ', width - 32) + 1   # after a space when there is one near the end
            if cut <= 0 or cur[cut - 2:cut] == '\\ ': cut = len(cur)
            pieces.append(cur[:cut]); cur = cur[cut:]
        cur += e
        if ch == '\n' and len(cur) > width // 2:
            pieces.append(cur); cur = ''
    if cur or not pieces: pieces.append(cur)
    return pieces

start = src.index('std::vector<TestCase> test_cases {')
end = src.index('std::vector<char> formatted_chat')
blocks = re.split(r'\n        \},?\n', src[start:end])
cases = [(field(b, 'name'), field(b, 'template_str'), field(b, 'expected_output'))
         for b in blocks if '.name=' in b]

print(f"""/* Test data: the conversation test cases of llama.cpp's tests/test-chat-template.cpp at commit
 * {commit} (a model's name, its Jinja chat template, and the text llama_chat_apply_template
 * produces for the fixed conversation with add_ass = true), extracted by
 * scripts/chat-testdata.py. Data only, no code of llama.cpp's; regenerate, do not edit. */
#ifndef PF_TESTS_DATA_CHAT_CASES_H
#define PF_TESTS_DATA_CHAT_CASES_H

struct chat_case {{
    const char *model;    /* the model the template comes from */
    const char *jinja;    /* its tokenizer.chat_template */
    const char *expected; /* llama.cpp's output for chat_conversation, add_ass = true */
}};

static const struct chat_case chat_cases[] = {{""")
for name, tmpl, exp in cases:
    print("    {")
    for label, text in (("model", name), ("jinja", tmpl), ("expected", exp)):
        p = c_lines(text)
        print(f"        /* {label} */")
        for k, piece in enumerate(p):
            print(f'        "{piece}"' + ("," if k == len(p) - 1 else ""))
    print("    },")
print("};\n\n#endif")
print(len(cases), "cases", file=sys.stderr)
