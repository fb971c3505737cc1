"""Command line: ``python -m resnet_viz <command>``."""
from __future__ import annotations

import argparse
import sys


def _train_bundled(args: argparse.Namespace) -> int:
    from .bundled import train_bundled

    for path in train_bundled(args.names or None):
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m resnet_viz", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train-bundled", help="retrain the bundled twins on shapes (CPU, deterministic)")
    p.add_argument("names", nargs="*", help="which bundled models (default: all)")
    p.set_defaults(func=_train_bundled)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
