"""Regenerate the tables the documentation shows from the code that defines them, so that they
cannot drift: in each markdown file given, the text between `<!-- methods:start -->` and
`<!-- methods:end -->` becomes the method registry's table (minillm/experiments/methods.py), and
between `<!-- settings:PRESET:start -->` and `<!-- settings:PRESET:end -->` the preset's settings
(minillm/experiments/settings.py). Files without a marker are left as they are.

  python tools/write_doc_tables.py README.md docs/*.md        (--check: exit 1 if a file is stale)
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script: make `minillm` importable without installing
    sys.path.insert(0, str(REPO_ROOT))

from minillm.experiments import methods, settings  # noqa: E402
from minillm.experiments.rendering import replace_marked_section  # noqa: E402
from minillm.fileio import atomic_write_text  # noqa: E402


def regenerate(text: str, name: str) -> str:
    if "<!-- methods:start -->" in text:
        text = replace_marked_section(text, "methods", methods.markdown_table(), name)
    for preset in re.findall(r"<!-- settings:(\w+):start -->", text):
        text = replace_marked_section(text, f"settings:{preset}", settings.markdown_table(preset), name)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table is stale")
    args = parser.parse_args(argv)
    stale = []
    for path in args.files:
        text = path.read_text()
        updated = regenerate(text, str(path))
        if updated != text:
            stale.append(str(path))
            if not args.check:
                atomic_write_text(path, updated)
    if args.check and stale:
        print(f"stale tables in {', '.join(stale)}: run python tools/write_doc_tables.py {' '.join(stale)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
