"""Regenerate solutions/ene_v9.tsv (ids, parents, names) from the official ENE JSONL.

    python scripts/make_ene_table.py [ENE_Definition_v9.0.0-with-attributes-20220714.jsonl] [-o OUT]

Only ids, parent ids and names are kept; definitions and attributes are left out.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solutions import ene  # noqa: E402

DEFAULT_SOURCE = ROOT.parent / "shared" / "data" / "ene" / ene.OFFICIAL_FILENAME


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="公式の ENE 定義 JSONL から solutions/ene_v9.tsv (ID・親・名前) を作り直します。")
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE,
                        help=f"ENE 定義 JSONL (既定: {DEFAULT_SOURCE})")
    parser.add_argument("-o", "--output", type=Path, default=ene.TABLE_PATH,
                        help=f"書き出す TSV (既定: {ene.TABLE_PATH})")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        parser.error(f"ENE 定義ファイルがありません: {args.source}")
    hierarchy = ene.load_hierarchy(args.source)
    args.output.write_text(ene.format_table(hierarchy, source=args.source.name), encoding="utf-8")
    print(f"{args.output}: {len(hierarchy)} ノード ({len(hierarchy.leaves())} 葉) を書きました")
    return 0


if __name__ == "__main__":
    sys.exit(main())
