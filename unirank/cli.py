"""The `unirank` command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import polars as pl

from unirank.atomic import write_parquet


def _calibrate(args: argparse.Namespace) -> None:
    from unirank.fitting import fit_targets

    comparisons = _read_table(args.comparisons)
    items = _read_table(args.items) if args.items else None
    try:
        targets, fit = fit_targets(comparisons, items=items, link=args.link, l2=args.l2)
    except ValueError as error:
        raise SystemExit(f"unirank calibrate: {args.comparisons}: {error}") from None
    write_parquet(targets, args.out)
    summary = {
        "items": targets.height,
        "groups": targets["group_id"].n_unique(),
        "comparisons": comparisons.height,
        "log_likelihood": fit.log_likelihood,
        "converged": fit.converged,
        "newton_iterations": fit.iterations,
        "out": str(args.out),
    }
    print(json.dumps(summary, indent=2))


def _read_table(path: Path) -> pl.DataFrame:
    try:
        return pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise SystemExit(f"unirank: cannot read {path} as parquet: {error}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unirank", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    calibrate = commands.add_parser(
        "calibrate", help="fit Thurstone latents to a comparisons table and write the targets table"
    )
    calibrate.add_argument("--comparisons", type=Path, required=True, help="comparisons.parquet")
    calibrate.add_argument("--items", type=Path, help="items.parquet: uncompared items get a target too")
    calibrate.add_argument("--out", type=Path, required=True, help="targets.parquet to write")
    calibrate.add_argument("--link", choices=["thurstone", "bradley-terry"], default="thurstone")
    calibrate.add_argument("--l2", type=float, default=1.0, help="prior precision (default 1)")
    calibrate.set_defaults(run=_calibrate)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    args.run(args)


if __name__ == "__main__":
    main()
