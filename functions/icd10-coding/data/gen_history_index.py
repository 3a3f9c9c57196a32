#!/usr/bin/env python3
"""Generates data/history_index.tsv: the "History, personal (of)" and "History, family (of)" subtrees of the
ICD-10-CM Alphabetic Index (FY2025, ../shared/icd10/index/ICD10CM_2025_Index.csv), flattened to one row per
coded subterm path, for the coder's main-term -> subterm walk (src/coder/history.rs).

Columns: kind (P personal, F family), required words of the path (each level's term, nonessential modifiers
left out), optional words (the nonessential modifiers), code. Only codes of Z80-Z87 and I25.2 are kept (the
history codes the coder reports); residual rows ("specified NEC") are left out, since a residual is never found
by wording alone. Cross-references inside the subtree (colonic polyps -> neoplasm, benign, colon polyp) are
followed. The Index's own statement that a colon polyp is a benign neoplasm makes "neoplasm, benign" optional
under "colon polyp".

usage: python3 data/gen_history_index.py ../../../shared/icd10/index/ICD10CM_2025_Index.csv > data/history_index.tsv
"""
import csv
import re
import sys

rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
start = next(i for i, r in enumerate(rows) if r["Level"] == "0" and r["Term"] == "History")
end = next(i for i in range(start + 1, len(rows)) if rows[i]["Level"] == "0")
sub = rows[start + 1 : end]


def words(text):
    return [w for w in re.split(r"[^A-Za-z0-9']+", re.sub(r"\([^)]*\)|\[[^]]*\]", " ", text).lower()) if w]


def modifiers(row):
    return words(row["NonEssModif"].replace("(", " ").replace(")", " ")) + [
        w for t in re.findall(r"\(([^)]*)\)|\[([^]]*)\]", row["Term"]) for part in t for w in words(part)
    ]


# Paths: each row's chain of ancestors (level 1 = family/personal).
paths = []
stack = []
for r in sub:
    level = int(r["Level"])
    stack = stack[: level - 1] + [r]
    paths.append(list(stack))


def key(path):
    return tuple(p["Term"].lower().split(" (")[0].strip() for p in path)


by_key = {key(p): i for i, p in enumerate(paths)}
out = set()


def emit(kind, levels, code):
    if not re.match(r"^(Z8[0-7]|I25\.2)", code):
        return
    leaf = levels[-1][0]
    if "nec" in leaf or leaf[:1] == ["specified"] or "specified" in leaf and len(leaf) <= 3:
        return
    required, optional = [], []
    polyp = any("polyp" in w for lv in levels for w in lv[0])
    for req, opt in levels:
        for w in req:
            if w in ("nec", "of", "and", "or", "the", "in", "with", "by", "to", "a"):
                continue
            (optional if polyp and w in ("neoplasm", "benign") else required).append(w)
        optional += opt
    if required:
        out.add((kind, " ".join(required), " ".join(optional), code))


for path in paths:
    top = path[0]["Term"].lower()
    kind = "F" if top.startswith("family") else "P" if top.startswith("personal") else None
    if kind is None or len(path) < 2:
        continue
    levels = [(words(p["Term"]), modifiers(p)) for p in path[1:]]
    row = path[-1]
    if row["Code"]:
        emit(kind, levels, row["Code"])
    see = row["See"]
    if see.startswith("History, personal") or see.startswith("History, family"):
        target = tuple(s.strip().lower().split(" (")[0] for s in see.split(",")[1:])
        target = tuple("personal" if t.startswith("personal") else "family" if t.startswith("family") else t for t in target)
        at = by_key.get(target)
        if at is None:
            continue
        # The target and its subterms, reached from this row.
        n = len(paths[at])
        for later in paths[at:]:
            if len(later) < n or key(later[:n]) != key(paths[at]):
                break
            if later[-1]["Code"]:
                emit(kind, levels + [(words(p["Term"]), modifiers(p)) for p in later[n:]], later[-1]["Code"])

for kind, req, opt, code in sorted(out):
    print(f"{kind}\t{req}\t{opt}\t{code}")
