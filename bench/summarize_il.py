#!/usr/bin/env python3
"""Mean ± std of the Inverse Learning runs of bench/repro_il.sh (a markdown table)."""
import json, os, statistics as st, sys

out, seeds = sys.argv[1], sys.argv[2:]
names = {"bce": "BCE (baseline)", "neg": "BCE, draws as negatives", "idl": "+ IDL", "ig": "+ IDL + IG", "igref": "+ IDL + IG (reference quirks)"}
metrics = ["auc", "gauc", "ndcg@10", "mrr"]
print("| model | training | " + " | ".join(metrics) + " | AUC gain vs BCE | s/epoch (x BCE) | IG forward/inverse/mid |")
print("|---|---|" + "---|" * (len(metrics) + 3))
for m in ["gmf", "neumf"]:
    base = None
    for s_ in ["bce", "neg", "idl", "ig", "igref"]:
        res = []
        for s in seeds:
            p = f"{out}/{m}_{s_}_s{s}/result.json"
            if os.path.exists(p):
                res.append(json.load(open(p)))
        if not res:
            continue
        def ms(k):
            v = [r["test"][k] for r in res]
            return st.mean(v), (st.stdev(v) if len(v) > 1 else 0.0)
        auc = ms("auc")[0]
        secs = st.mean(r["seconds_per_epoch"] for r in res)
        if s_ == "bce":
            base = (auc, secs)
        gain = f"{100 * (auc / base[0] - 1):+.2f}%" if base and s_ != "bce" else ""
        rel = f"{secs:.2f} ({secs / base[1]:.2f}x)" if base else f"{secs:.2f}"
        ig = ""
        if "ig" in res[0]:
            ig = ", ".join(f"{r['ig']['forward']}/{r['ig']['inverse']}/{r['ig']['mid']}" for r in res)
        cells = " | ".join("%.4f ± %.4f" % ms(k) for k in metrics)
        print(f"| {m} | {names[s_]} (n={len(res)}) | {cells} | {gain} | {rel} | {ig} |")
