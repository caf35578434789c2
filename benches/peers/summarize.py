#!/usr/bin/env python3
"""Prints the mode x change table from verify.sh's reports (directory given as argv[1])."""
import json, os, re, sys

OUT = sys.argv[1]
MODES = ["argocd-legacy", "argocd-structured", "argocd-server-side", "flux-ssa"]
METHODS = ["ssa", "csa"]
# change -> (target kind, regex on its fields, or None when the object is deleted)
CHANGES = {
    "scale": ("Deployment", r"^spec\.replicas$"),
    "image": ("Deployment", r"^spec\.template\.spec\.containers\[(name=web|0)\]\.image$"),
    "label": ("Deployment", r"^metadata\.labels\.extra$"),
    "env": ("Deployment", r"containers\[(name=web|0)\]\.env(\[(name=DEBUG|1)\].*)?$"),
    "cmkey": ("ConfigMap", r"^data\.EXTRA$"),
    "unannotate": ("Deployment", r"^metadata\.annotations\.team$"),
    "delsvc": ("Service", None),
}

def load(ns, mode):
    p = os.path.join(OUT, f"{ns}.{mode}.json")
    if not os.path.exists(p):
        return None
    with open(p) as f:
        return json.load(f)

def brief(o):
    s = o["kind"]
    if o["error"]:
        return s + " (error: " + o["error"][:90] + ")"
    return s + (" [" + ", ".join(o["fields"]) + "]" if o["fields"] else "")

rows = []
notes = []
for mode in MODES:
    for method in METHODS:
        cells = []
        base = load(f"peers-{method}-none", mode)
        if base is None:
            cells.append("no report")
        elif base.get("unsupported"):
            cells.append("unsupported")
        else:
            bad = [o for o in base["objects"] if o["drifted"] or o["error"]]
            cells.append("ok" if not bad else "FALSE DRIFT/ERROR: " + "; ".join(brief(o) for o in bad))
        for ch, (kind, rx) in CHANGES.items():
            r = load(f"peers-{method}-{ch}", mode)
            if r is None or r.get("unsupported"):
                cells.append("n/a")
                continue
            tgt = [o for o in r["objects"] if o["kind"] == kind][0]
            if tgt["error"]:
                cell = "error"
            elif rx is None:
                cell = "found" if tgt["missing"] else "missed"
            elif tgt["drifted"] and any(re.search(rx, f) for f in tgt["fields"]):
                cell = "found"
            elif tgt["drifted"]:
                cell = "drifted, other fields"
            else:
                cell = "missed"
            other = [f for f in tgt["fields"] if not (rx and re.search(rx, f))]
            if other and tgt["drifted"]:
                notes.append(f"{mode}/{method}/{ch}: {kind} also lists {other}")
            cells.append(cell)
        rows.append((mode, method, cells, base))

hdr = ["mode", "applied with", "after apply"] + list(CHANGES)
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for mode, method, cells, _ in rows:
    print("| " + " | ".join([mode, "kubectl apply --server-side" if method == "ssa" else "kubectl apply (client-side)"] + cells) + " |")
print()
print("Per-change fields (exactly what each engine reported for the changed object):")
for ch, (kind, _) in CHANGES.items():
    for mode in MODES:
        for method in METHODS:
            r = load(f"peers-{method}-{ch}", mode)
            if r is None or r.get("unsupported"):
                continue
            tgt = [o for o in r["objects"] if o["kind"] == kind][0]
            extra = [brief(o) for o in r["objects"] if o is not tgt and (o["drifted"] or o["error"])]
            print(f"- {ch} / {mode} / {method}: {kind} drifted={tgt['drifted']} missing={tgt['missing']} fields={tgt['fields']}"
                  + (f" error={tgt['error'][:120]}" if tgt["error"] else "")
                  + (f"; other objects: {extra}" if extra else ""))
print()
print("Timing on the after-apply set (5 objects):")
for mode, method, _, base in rows:
    if base and not base.get("unsupported"):
        print(f"- {mode} / {method}: seconds={base['seconds']:.3f} setup_seconds={base['setup_seconds']:.3f} peak_rss_kb={base['peak_rss_kb']}")
