#!/usr/bin/python3
"""A small Mixtral-shaped GGUF (llama architecture, merged expert tensors) written with
llama.cpp's own gguf-py, so pinfer's MoE loader is tested on a file no pinfer code wrote.

    PYTHONPATH=/work/llama.cpp/gguf-py /usr/bin/python3 scripts/llama-ref/moe_model.py OUT.gguf \
        --dim 128 --layers 2 --heads 4 --kv-heads 2 --ffn 64 --experts 4 --experts-used 2 \
        --type f16 --seed 1

Weights are Gaussian with std 1/sqrt(n_in) (the router 3/sqrt(n_in), so routing is rarely a
near tie; embeddings 0.25), norms 1 + N(0, 0.1^2), embeddings tied to the output. The router and norms are F32
(as convert_hf_to_gguf.py writes them); the rest f16 or f32. The vocabulary is a 384-token
SentencePiece one: <unk> <s> </s>, the 256 byte tokens, then 125 pieces. Needs numpy (Debian's
python3-numpy) and gguf-py from the llama.cpp snapshot (c392e5094)."""
import argparse

import numpy as np
import gguf


def vocab():
    letters = "etaoinshrdlucmfwypvbgkjqxz"
    pieces = ["\u2581"] + list(letters) + ["\u2581" + c for c in letters] + [a + b for a in "etaoin" for b in "etaoinshrdlu"]
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)] + pieces
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL] + [gguf.TokenType.BYTE] * 256 \
        + [gguf.TokenType.NORMAL] * len(pieces)
    scores = [0.0] * 259 + [-float(i) for i in range(len(pieces))]
    assert len(toks) == 384 and len(set(toks)) == 384
    return toks, scores, types


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=64)
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--experts-used", type=int, default=2)
    ap.add_argument("--type", choices=["f16", "f32"], default="f16")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    big = np.float16 if a.type == "f16" else np.float32
    d, f, x, hd = a.dim, a.ffn, a.experts, a.dim // a.heads
    toks, scores, types = vocab()

    w = gguf.GGUFWriter(a.out, "llama")
    w.add_name("moe-ref")
    w.add_context_length(256)
    w.add_embedding_length(d)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(f)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_rope_dimension_count(hd)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_expert_count(x)
    w.add_expert_used_count(a.experts_used)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if a.type == "f16" else gguf.LlamaFileType.ALL_F32)
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def mat(*shape, scale=1.0):  # numpy shape is ggml's ne reversed: rows last
        return (rng.standard_normal(shape) * scale / np.sqrt(shape[-1])).astype(np.float32)

    def norm():
        return (1.0 + 0.1 * rng.standard_normal(d)).astype(np.float32)

    w.add_tensor("token_embd.weight", (rng.standard_normal((384, d)) * 0.25).astype(big))
    w.add_tensor("output_norm.weight", norm())
    for l in range(a.layers):
        p = "blk.%d." % l
        w.add_tensor(p + "attn_norm.weight", norm())
        w.add_tensor(p + "attn_q.weight", mat(a.heads * hd, d).astype(big))
        w.add_tensor(p + "attn_k.weight", mat(a.kv_heads * hd, d).astype(big))
        w.add_tensor(p + "attn_v.weight", mat(a.kv_heads * hd, d).astype(big))
        w.add_tensor(p + "attn_output.weight", mat(d, a.heads * hd).astype(big))
        w.add_tensor(p + "ffn_norm.weight", norm())
        w.add_tensor(p + "ffn_gate_inp.weight", mat(x, d, scale=3.0))             # {d, x}
        w.add_tensor(p + "ffn_gate_exps.weight", mat(x, f, d).astype(big))        # {d, f, x}
        w.add_tensor(p + "ffn_up_exps.weight", mat(x, f, d).astype(big))          # {d, f, x}
        w.add_tensor(p + "ffn_down_exps.weight", mat(x, d, f).astype(big))        # {f, d, x}
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
