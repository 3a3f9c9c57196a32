#!/usr/bin/env python3
"""Generates data/index_paths.tsv: chosen subtrees of the ICD-10-CM Alphabetic Index (FY2025,
../shared/icd10/index/ICD10CM_2025_Index.csv), flattened to one row per coded main term -> subterm path, for the
coder's general Index walk (src/coder/alphabetic.rs).

Only the subtrees in SUBTREES are kept: those whose subterms carry an axis the tabular's wording leaves to the
coder's reading (stage, quadrant, side, class, subtype, site implies primary). The whole Index is 81,000 rows;
embedding it would cost the binary what the goal cannot spare, and an earlier round showed that the Index used as
general synonyms lowers precision.

Columns: required slots (space-separated; a slot is one word or alternatives joined by `|`, as in "acute,
subacute" or "pelvic or perineal"), optional words (the nonessential modifiers), code (as the Index gives it; a
trailing `-` means the tabular completes it), head (the code of the main term, or of the first subterm for a
subtree: the condition unspecified, which the path's code specifies). A path is kept only when its code is billable in the FY2026 tabular
(data/icd10cm-2026.tsv) or is a category/subcategory with billable codes under it (the main term alone is kept
for a whole subtree, for the side the tabular completes: M54.3-). Residual rows ("specified NEC") are left out: a
residual is never found by wording alone. See cross-references are followed to their target and its subterms (paths reached that way carry the words of the referring path, as a coder reads them).

usage: python3 data/gen_index_paths.py ../../../shared/icd10/index/ICD10CM_2025_Index.csv data/icd10cm-2026.tsv \
    > data/index_paths.tsv
"""
import csv
import re
import sys

# (main term, first-level subterm or None for the whole main term)
SUBTREES = [
    ("Disease, diseased", "kidney"),
    ("Pain", "abdominal"),
    ("Sciatica", None),
    ("Obesity", None),
    ("Otitis", "media"),
    ("Osteoarthritis", None),
    ("Dermatitis", "contact"),
    ("Insomnia", None),
    ("Asthma, asthmatic", None),
    ("Migraine", None),
    ("Sinusitis", None),
    ("Conjunctivitis", None),
    ("Pharyngitis", None),
    ("Bronchitis", None),
    ("Hypothyroidism", None),
    ("Gastroenteritis", None),
    ("Cellulitis", None),
    ("Bite", None),
]

STOP = {"nec", "of", "and", "or", "the", "in", "with", "by", "to", "a", "an", "as", "on", "for", "nos", "due"}

rows = list(csv.DictReader(open(sys.argv[1], encoding="utf-8")))
tabular = {}
for line in open(sys.argv[2], encoding="utf-8"):
    f = line.rstrip("\n").split("\t")
    tabular[f[0]] = f[1] == "B"
codes = sorted(tabular)


def resolvable(code):
    """Billable, or a header with billable codes under it."""
    c = code.rstrip("-").rstrip(".")
    if tabular.get(c):
        return True
    return c in tabular and any(k.startswith(c) and tabular[k] for k in codes)


def clean(text):
    return re.sub(r"\([^)]*\)|\[[^]]*\]", " ", text).lower()


def words(text):
    # Hyphens and apostrophes stay inside a word, as the coder's tokenizer keeps them ("post-traumatic").
    return [w.strip("-'") for w in re.split(r"[^a-z0-9'\-/]+", clean(text)) if w.strip("-'") and w not in STOP]


def slots(term):
    """A term's required slots: "pelvic or perineal" and "acute, subacute" are one slot of alternatives, while
    any other comma inverts ("lymphonodular, acute" is acute lymphonodular: both words required); the "joint" of
    a named joint ("hand joint", "foot joint") is what the site already says."""
    t = clean(term).strip()
    if re.fullmatch(r"[a-z]+ joint", t):
        return [t.split()[0]]
    if re.fullmatch(r"acute,\s*subacute", t):
        return ["acute|subacute"]
    parts = [p.strip() for p in re.split(r"\s+or\s+", t) if p.strip()]
    if len(parts) > 1 and all(len(words(p)) == 1 for p in parts):
        return ["|".join(words(p)[0] for p in parts)]
    return words(term)


def modifiers(row):
    found = re.findall(r"\(([^)]*)\)", row["NonEssModif"]) + re.findall(r"\(([^)]*)\)|\[([^]]*)\]", row["Term"])
    out = []
    for f in found:
        for part in f if isinstance(f, tuple) else (f,):
            out += words(part)
    return out


# The tree: each row with its children, in document order.
children = {None: []}
parent_of = {}
stack = []
for i, r in enumerate(rows):
    level = int(r["Level"])
    stack = stack[:level]
    parent = stack[-1] if stack else None
    children.setdefault(parent, []).append(i)
    children.setdefault(i, [])
    parent_of[i] = parent
    stack.append(i)


def norm_term(term):
    return re.sub(r"\s+", " ", clean(term)).strip()


def resolve(see):
    """The row a See reference names ("Otitis, media, suppurative, acute"): walk from the main terms, each step
    taking the child whose term is the longest prefix of what is left."""
    left = norm_term(see)
    node = None
    while left:
        best = None
        for c in children.get(node, []):
            t = norm_term(rows[c]["Term"])
            if t and (left == t or left.startswith(t + ",")) and (best is None or len(t) > len(norm_term(rows[best]["Term"]))):
                best = c
        if best is None:
            return None
        left = left[len(norm_term(rows[best]["Term"])) :].lstrip(", ").strip()
        node = best
    return node


out = set()


def main_of(node):
    while parent_of[node] is not None:
        node = parent_of[node]
    return node


HEAD = [""]


def emit(path_slots, optional, code):
    if not path_slots or not code or not resolvable(code):
        return
    out.add((" ".join(path_slots), " ".join(sorted(set(optional))), code, HEAD[0]))


def walk(node, path_slots, optional, depth, seen):
    r = rows[node]
    term = r["Term"]
    leaf_words = words(term)
    if "specified" in clean(term).split() or clean(term).strip().endswith("nec") and len(leaf_words) == 0:
        return
    if re.search(r"\bnec\b", clean(term)) and not children.get(node):
        return
    here = path_slots + slots(term)
    opt = optional + modifiers(r)
    emit(here, opt, r["Code"])
    if r["See"] and depth < 3:
        target = resolve(r["See"])
        # Only references inside the same main term: another main term's subtree is another condition.
        if target is not None and target not in seen and main_of(target) == main_of(node):
            t = rows[target]
            emit(here, opt + modifiers(t), t["Code"])
            for c in children.get(target, []):
                walk(c, here, opt, depth + 1, seen | {target})
    for c in children.get(node, []):
        walk(c, here, opt, depth, seen)


for main, sub in SUBTREES:
    m = next(i for i in children[None] if rows[i]["Term"] == main)
    main_slots = slots(rows[m]["Term"])
    if main == "Disease, diseased":
        main_slots = ["disease|diseased"]
    HEAD[0] = rows[m]["Code"]
    if sub is None:
        # The main term alone: its code may still take the documented side in the tabular (M54.3-).
        emit(main_slots, modifiers(rows[m]), rows[m]["Code"])
    for c in children[m]:
        if sub is None or norm_term(rows[c]["Term"]) == sub:
            HEAD[0] = rows[m]["Code"] if sub is None else rows[c]["Code"]
            walk(c, main_slots, modifiers(rows[m]), 0, frozenset())

for req, opt, code, head in sorted(out):
    print(f"{req}\t{opt}\t{code}\t{head}")
