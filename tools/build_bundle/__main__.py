"""`python -m tools.build_bundle`: fetch the pinned inputs, build the bundle, print what was written."""

from __future__ import annotations

import argparse
import json
import sys
import sysconfig
from pathlib import Path

from tools.build_bundle import __doc__ as DESCRIPTION
from tools.build_bundle.build import build
from tools.build_bundle.common import BuildError, sha256_bytes
from tools.build_bundle.cpython import select_stdlib_files
from tools.build_bundle.pins import fetch_packages

REPO = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.build_bundle", description=(DESCRIPTION or "").split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=REPO / "src/forgetless/data/bundled")
    parser.add_argument("--card", type=Path, default=REPO / "docs/data.md")
    parser.add_argument("--work", type=Path, default=Path.home() / ".cache/forgetless-bundle-sources")
    parser.add_argument("--stdlib", type=Path, default=Path(sysconfig.get_paths()["stdlib"]))
    parser.add_argument(
        "--pin-stdlib", action="store_true", help="print pins.json's stdlib_sha256 for --stdlib and exit"
    )
    args = parser.parse_args(argv)
    if args.pin_stdlib:
        pins = {
            rel: sha256_bytes((args.stdlib / rel).read_bytes()) for rel in select_stdlib_files(args.stdlib)
        }
        print(json.dumps(pins, indent=2))
        return 0
    try:
        root = fetch_packages(args.work)
        manifest = build(root, args.stdlib, args.out, args.card)
    except BuildError as err:
        print(f"build_bundle: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} and {args.card}:")
    for path in sorted(
        p for p in args.out.rglob("*") if p.is_file() and p.suffix != ".py" and "__pycache__" not in p.parts
    ):
        print(
            f"  {sha256_bytes(path.read_bytes())}  {path.stat().st_size:>10,}  {path.relative_to(args.out)}"
        )
    print(f"  {sha256_bytes(args.card.read_bytes())}  {args.card.stat().st_size:>10,}  {args.card.name}")
    print(f"bundle data: {manifest['total_bytes']:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
