"""Builds the compact ICD-10-CM code table embedded in the coding tool.

Source: the CMS FY2026 ICD-10-CM tabular (April 1, 2026 release, public domain) as shipped inside the PyPI
package `simple-icd-10-cm` (pinned below). Run from the repository root:

    python functions/icd10-coding/data/gen_code_table.py

It installs the pinned package into `.venv` when missing, and writes `icd10cm-2026.tsv` beside this script.
One line per category, subcategory and code, sorted by code, tab-separated:

    code  kind  description  inclusion terms  excludes1  excludes2  code also  use additional  code first  7th chars

`kind` is `B` for billable (a leaf of the classification) and `H` for a header. List fields are joined with
` | `; the note fields keep only the code references in parentheses (e.g. `D62`, `H81.-`, `E00-E02`), which
is what the coder checks. `7th chars` is set where the tabular defines them (`A=initial encounter for closed
fracture;D=...`).
"""

import pathlib
import re
import subprocess
import sys

PACKAGE = "simple-icd-10-cm==1.5.0"
HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "icd10cm-2026.tsv"
CODE_REF = re.compile(r"\(([A-Z][0-9][0-9A-Z](?:\.[0-9A-Z\-]{1,4})?(?:-[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z\-]{1,4})?)?)\)")


def load():
    try:
        import simple_icd_10_cm as cm  # noqa: PLC0415
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", PACKAGE], check=True)
        import simple_icd_10_cm as cm  # noqa: PLC0415
    return cm


def clean(text):
    return " ".join(text.replace("\t", " ").replace("|", "/").split())


def refs(notes):
    found = []
    for note in notes:
        for ref in CODE_REF.findall(note):
            if ref not in found:
                found.append(ref)
    return " | ".join(found)


def main():
    cm = load()
    rows = []
    for code in cm.get_all_codes(with_dots=True):
        if cm.is_chapter_or_block(code):
            continue
        kind = "B" if cm.is_leaf(code) else "H"
        seven = cm.get_seven_chr_def(code, prioritize_blocks=False) if not cm.is_extended_subcategory(code) else {}
        seven_field = ";".join(f"{k}={clean(v)}" for k, v in sorted(seven.items())) if seven else ""
        rows.append(
            "\t".join(
                [
                    code,
                    kind,
                    clean(cm.get_description(code)),
                    " | ".join(clean(t) for t in cm.get_inclusion_term(code)),
                    refs(cm.get_excludes1(code)),
                    refs(cm.get_excludes2(code)),
                    refs(cm.get_code_also(code)),
                    refs([cm.get_use_additional_code(code)] if cm.get_use_additional_code(code) else []),
                    refs([cm.get_code_first(code)] if cm.get_code_first(code) else []),
                    seven_field,
                ]
            )
        )
    rows.sort()
    OUT.write_text("\n".join(rows) + "\n", encoding="utf-8")
    billable = sum(1 for r in rows if r.split("\t")[1] == "B")
    print(f"wrote {OUT.name}: {len(rows)} rows, {billable} billable, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
