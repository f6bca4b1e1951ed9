#!/usr/bin/env python3
"""Writes the seed corpus of the C-ABI fuzzer (Tests/fuzz/corpus), deterministically.

Each input's first byte picks the entry point (fuzz_losskit.c: LLVMFuzzerTestOneInput); the
rest is decoded byte by byte, and missing bytes read as 0. Per entry point: a few inputs of
pseudo-random bytes (fixed seeds), and hand-made calls for the edges the issue names.
Run: python3 Tests/fuzz/make_corpus.py [folder]
"""
import hashlib
import os
import random
import sys

ENTRIES = [
    "version", "status_name", "last_error", "options_init",
    "dense_f32", "dense_f64", "lists_f32", "lists_f64", "chain_f32", "chain_f64",
    "viterbi_f32", "viterbi_f64", "marginals_f32", "marginals_f64", "lsoftmax_f32", "lsoftmax_f64",
]
E = {name: i for i, name in enumerate(ENTRIES)}

# Indices into fuzz_losskit.c's special_sizes, as a size byte (240 + index).
SIZE = {"-1": 240, "INT64_MIN": 241, "INT64_MAX": 242, "2^62": 243, "2^61": 244, "2^32": 245,
        "2^31": 246, "3037000499": 247, "3037000500": 248}


def hand_made():
    """(name, bytes): calls decoded field by field (options: flags, loss, mask; then the
    NULL switch and mask; then the sizes)."""
    plain_opts = [0, 0, 0]          # flags 0, loss byte 0 (LK_LOSS_LOG), no field changed
    ramp_opts = [0, 7, 0]           # LK_LOSS_INFINITE_RAMP
    no_nulls = [0, 0]
    return [
        # Chains: n = 0, t_max = 0, tags = 3037000499 (tags^2 * 8 overflows).
        ("chain_f64_tags_overflow", [E["chain_f64"]] + plain_opts + no_nulls + [0, 0, SIZE["3037000499"]]),
        # Chains: t_max = 0 and n = 2^62 / INT64_MAX (lengths far beyond any buffer).
        ("chain_f64_n_2_62", [E["chain_f64"]] + plain_opts + no_nulls + [SIZE["2^62"], 0, 1]),
        ("chain_f32_n_max", [E["chain_f32"]] + plain_opts + no_nulls + [SIZE["INT64_MAX"], 0, 1]),
        ("viterbi_f64_n_2_62", [E["viterbi_f64"]] + plain_opts + no_nulls + [SIZE["2^62"], 0, 1]),
        ("marginals_f32_n_2_62", [E["marginals_f32"]] + plain_opts + no_nulls + [SIZE["2^62"], 0, 1]),
        # Infinite ramp on a chain: 1 sequence, 2 positions, 1 tag, emissions -1e308 (byte 208).
        ("chain_f64_ramp_overflow", [E["chain_f64"]] + ramp_opts + no_nulls + [1, 2, 1, 208, 208, 100, 100, 100, 2]),
        # Lists and dense with impossible sizes.
        ("lists_f64_n_max", [E["lists_f64"]] + plain_opts + no_nulls + [SIZE["INT64_MAX"]]),
        ("dense_f32_k_2_62", [E["dense_f32"]] + plain_opts + no_nulls + [1, SIZE["2^62"]]),
        ("lsoftmax_f64_d_2_62", [E["lsoftmax_f64"]] + plain_opts + no_nulls + [0, SIZE["2^62"], 4]),
        # NULL opt.
        ("dense_f64_null_opt", [E["dense_f64"], 0x0f] + no_nulls + [2, 3]),
        # z_loss 0.5 and softcap 2 (flags 0xce, then the byte saying both follow), on 2 x 3 rows.
        ("dense_f64_z_loss_softcap", [E["dense_f64"], 0xce, 0, 0, 3, 8, 32] + no_nulls + [2, 3]),
        ("dense_f32_z_loss_softcap", [E["dense_f32"], 0xce, 3, 0, 3, 8, 32] + no_nulls + [2, 3]),
        # bfloat16 dense rows (dense_f32's byte + 24, also 36 and 48): plain, z-loss and softcap,
        # k = 2^62.
        ("dense_bf16_small", [E["dense_f32"] + 24] + plain_opts + no_nulls + [2, 3]),
        ("dense_bf16_z_loss_softcap", [E["dense_f32"] + 36, 0xce, 3, 0, 3, 8, 32] + no_nulls + [2, 3]),
        ("dense_bf16_k_2_62", [E["dense_f32"] + 48] + plain_opts + no_nulls + [1, SIZE["2^62"]]),
        # The bfloat16 fused linear layer (L-Softmax f32's byte + 12 with the top bit): n = 3,
        # d = 2, k = 4, and d = 2^62.
        ("linear_bf16_small", [0x80 | (E["lsoftmax_f32"] + 12), 0, 3, 0] + no_nulls + [3, 2, 4]),
        # ... with d_x and d_w_f32 NULL (null_on, bit 7: shifted, d_w_f32 shares d_x's bit), so
        # that d_w is formed in its scratch tile and narrowed.
        ("linear_bf16_d_w_alone", [0x80 | (E["lsoftmax_f32"] + 12), 0, 3, 0, 192, 0x80, 3, 2, 4]),
        ("linear_bf16_d_2_62", [0x80 | (E["lsoftmax_f32"] + 24)] + plain_opts + no_nulls + [1, SIZE["2^62"], 4]),
        # The fused linear layer: n = 3, d = 2, k = 4 (softmax-margin), and d = 2^62 (an
        # impossible size, found before anything is read).
        ("linear_f64_small", [0x80 | E["lsoftmax_f64"], 0, 3, 0] + no_nulls + [3, 2, 4]),
        ("linear_f32_d_2_62", [0x80 | E["lsoftmax_f32"]] + plain_opts + no_nulls + [1, SIZE["2^62"], 4]),
        # Vocabulary-parallel dense rows: each phase on n = 3, k = 6, the columns [2, 5), with
        # genuine statistics (mode bit 3) for phases 2 and 3; hinge (loss byte 2) for the argmax;
        # and k_offset = 2^62 (an impossible shard).
        *[(f"vocab_f64_phase_{p}_{name}", [0x80 | E["marginals_f64"], 0, loss, 0] + no_nulls + [8 | p, 3, 6, 2, 3])
          for p in (1, 2, 3) for name, loss in (("log", 0), ("hinge", 2))],
        ("vocab_f32_phase_3_log", [0x80 | E["marginals_f32"]] + plain_opts + no_nulls + [8 | 3, 3, 6, 0, 6]),
        ("vocab_f64_offset_2_62", [0x80 | E["marginals_f64"]] + plain_opts + no_nulls + [1, 2, 6, SIZE["2^62"], 3]),
    ]


# Inputs the long cataloguing runs found (LK_OK with a NaN output from finite input), kept as seeds
# once fixed, as the hex the findings log prints. Long lines: each is one input.
FOUND = [
    ("dense_f64_softmax_margin_cost_scale_minus_zero", "690044966df1ff4f70747074696f6e616c0000000000260000000000a500059217d3d2696f6e616c0000000000260000000000a500059217d3d269f2cf"),
    ("dense_f64_hope_fear_costs_near_max", "69003e3e3e00009d2d2e00042e006904446f75626c6552dcdcdcdc3e3e3e00009d2d2e0004fa00692dd3d2f2cf2d2e0004fa00692dd3d2f2cf"),
    ("dense_f64_risk_weight_times_scale_a", "6900040528a5070033c1a7f7b02d8984cd263449a551794a61cd263449a551794a61a9a55de1a9a55dffffffffffffffffffffffffffffffffffffffffffffffffffff6c6c6c6c6c6c6c6c6cffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff5d2cca8ca9a55de1a9a55d5d2cca8cd7"),
    ("dense_f64_risk_weight_times_scale_b", "69436c5d647e44073cb17e4430d144073cb17e4430d1c788bd993edcc788bd993edcd77eac4a"),
    ("dense_f64_risk_weight_times_scale_c", "5dc56c6f90007ad66472b9944cb2643db8fdca3ad72669100d71b1bcff9c07fe8f010000ffff61f9ff57ffffffff6e2727272727272727272727843a3a3ad48c8c8c0f9393939993b31d1d1d2626262627272727272727"),
    ("dense_hessian_f32_softmax_margin_rounding_ties", "8480d3ff0100f902a8bc0a4f6274ff6e643b6300007074696f6e610000000000000000e2d72b0d6d247074696ff70000000000280000000000002b0000000000000000000000000000000000000000000000000000000000000000000024b1bcc55208496e745e7fa5a57aa55e5e5e5e000000"),
    ("lsoftmax_f64_gold_norm_1e300_over_flt_min", "0f617461948b80a5a5a586188bc48b2eb67979e5e5dfdfdf79e5e5dfdfd461160ddf"),
    ("lists_hessian_f64_soft_ramp_opposite_infinities", "f752616e676514848ed0d0d0d00000a5d78fdfcacacaca25da24cacacaca8acacacacacaca436c6f7300f90000000000000000000000000000d0d0d0d0d0d0d000cf16ad0067caf4"),
    ("chain_f32_soft_ramp_zero_cost_under_dbl_max_cost_scale", "949595959518ffffff07f6ffff04272d0dba0030645f656e64002d6d01002d"),
    ("lsoftmax_f64_weight_1e308_over_subnormal_class_rows", "0f82d73f1500003400000009bce2e5e3e3a3e3e3e3e31002050800fe"),
    ("linear_f32_empty_batch_k_2_62", "8e00436c6f73656452610000f304"),
    ("dense_f64_ramp_softcap_z_loss_1e308_saturated", "51dec8925353ffffffffffffffff5353535353535353d35353020000005353535353535353d7105810d000d2d2d20100000000000013747200010000"),
    ("dense_f64_ramp_z_loss_two_lse_overflows", "51dec8925353ffffffffffffff53ff5b04ce2dd9ab2fb9d180e3306495311766b8f1630eb97ddc9bb63d2d653b899f64c2f772466b03000308200000b75f02c805030013747200010000"),
    ("dense_f64_ramp_minus_inf_loss_plus_inf_z_loss", "51dec8925353ffffffffffffffff535b5353020000005353535353535353d7105810d000d2d2cb747200010000"),
    ("linear_f64_perceptron_z_loss_weight_1e300_bias_dbl_max", "ffdede00ac282b48283d6d487148486f75626c654fecd19595cbcb617267c1cb"),
    ("lists_f32_perceptron_oracle_by_cost_weight_flt_max", "0608aa2da57f04840003c52cc5c5c5c5c5c5413ac5c5c5fe08fefefefe0000000fc5c52c85c5c5e55d"),
    ("dense_f64_squared_kappa_dbl_max_zero_miss", "1dbbbebb2cbbd3bbfebbbbffbbbbff9cbbbbbbd3f4bbbb29d3bbbbbbbbbbbbd3bbbbd3f4"),
    ("vocab_f64_nan_row_argmax_minus_inf_trap", "8d00020100002b2b2b06400640020362912b2b2b06ffffffffff1b582be9"),
    ("vocab_f32_subnormal_flag_nan_loss", "8c4ac3104b4a2c624a7662e3e3e3e3e3e3e3e3e33be3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3e3000000000000000000000000e3e9aa"),
    ("lists_hessian_f64_soft_ramp_loss_beyond_double_weight_below_one", "f75261010000076e676514848ed0d0d0d000a52970203535355bd9da24cacaca9f73cfcf5aff90ff57"),
    ("dense_f64_squared_softcap_slope_underflow_gradient_overflow", "51de22c87f0001000000ffffffffffff00d0a560bb1d6d132c03"),
    ("dense_hessian_f64_smoothing_mean_of_dbl_max", "f51000534fb411fea4b2b2b2b2b2b2b2b2b2b2b240b2b200d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d100b2b2b240b2b2b2b2b2b2b2b2b215b2b2b2b2b2b2b22008270f99998461f57cff"),
    ("lists_hessian_f32_soft_ramp_costs_near_flt_max_model_cancels", "c65d95b97100001100000000ddce282822222222a6a5a57f00000000007c0000002222227f002a28ce28523000043b670000002222000000006c1602000000000000002222cdce28860181fcfa7b798384007d898989898989890000000084867c7bff7dcf2cce08cf2c0c2f4f02b67a0000000000000000a7cf2c0c2f8989898989898989898989890000000084867c7bff7dcf2cce08010f002600a5"),
    ("dense_hessian_f64_smoothing_log_loss_beyond_double", "f51000534fb411fe2dff0f994199007171d1c7d1d1d1d1d1d1d1d1d17ad1d1d1d1d1d1d1d1d1d10071d1d1d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d42cd4d4d4d4d4d4d4d4d4d4d4c3d4d1d1d1d1940000000000748b65"),
    ("dense_f64_squared_z_loss_opposite_overflows", "51de22c87f8f84d2438affffffffffffffffa7f47f1e6e4f70a11a1876"),
]


def main():
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    os.makedirs(folder, exist_ok=True)
    inputs = []
    for entry, name in enumerate(ENTRIES):
        rng = random.Random(entry)
        for length in (12, 48, 160):
            inputs.append((f"{name}_random_{length}", bytes([entry] + [rng.randrange(256) for _ in range(length)])))
    # The first byte's top bit: the Hessian entry points (dense, lists), the fused linear layer
    # (L-Softmax's entries) and vocabulary-parallel dense rows (chain marginals' entries).
    for names, seed, rename in ((("dense_f32", "dense_f64", "lists_f32", "lists_f64"), 100, ("_f", "_hessian_f")),
                                (("lsoftmax_f32", "lsoftmax_f64"), 200, ("lsoftmax", "linear")),
                                (("marginals_f32", "marginals_f64"), 300, ("marginals", "vocab"))):
        for name in names:
            entry = E[name]
            rng = random.Random(seed + entry)
            for length in (12, 48, 160):
                inputs.append((f"{name.replace(*rename)}_random_{length}",
                               bytes([0x80 | entry] + [rng.randrange(256) for _ in range(length)])))
    rng = random.Random(400)
    for length in (12, 48, 160):
        inputs.append((f"dense_bf16_random_{length}",
                       bytes([E["dense_f32"] + 24] + [rng.randrange(256) for _ in range(length)])))
    for length in (12, 48, 160):
        inputs.append((f"linear_bf16_random_{length}",
                       bytes([0x80 | (E["lsoftmax_f32"] + 12)] + [rng.randrange(256) for _ in range(length)])))
    inputs += [(name, bytes(data)) for name, data in hand_made()]
    inputs += [(f"found_{name}", bytes.fromhex(data)) for name, data in FOUND]
    for name, data in inputs:
        digest = hashlib.sha1(data).hexdigest()[:8]
        with open(os.path.join(folder, f"{name}-{digest}"), "wb") as f:
            f.write(data)
    print(f"{len(inputs)} inputs in {folder}")


if __name__ == "__main__":
    main()
