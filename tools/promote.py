"""Promote approved documents, their chunks and their vectors to the next environment.

    venv/bin/python -m tools.promote --from stage --to prod [--since 2025-11-01] [--dry-run]
    venv/bin/python tools/promote.py ...        (the same)

Connections come from the environment, never the command line (README,
"Promoting documents from stage to prod", says how to open them):

    PROMOTE_SOURCE_DSN, PROMOTE_TARGET_DSN          postgresql://user:password@host:port/<env>_shia_chatbot
    PROMOTE_SOURCE_QDRANT, PROMOTE_TARGET_QDRANT    http://host:port
    PROMOTE_SOURCE_QDRANT_API_KEY, PROMOTE_TARGET_QDRANT_API_KEY

Both runs print the same report first; a dry run stops there and says what a
real run would do. Exit status: 0 done (or nothing to do), 1 refused or failed
with nothing committed, 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional, get_args

import psycopg

if __package__ in (None, ""):
    # Run as a file (python tools/promote.py), Python puts tools/ on the path,
    # not the project root that holds the settings and tools packages.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from settings.model import Environment  # noqa: E402
from settings.naming import Naming  # noqa: E402
from tools import promote_postgres as pg  # noqa: E402
from tools.promote_qdrant import Collection, QdrantError, copy_points  # noqa: E402

ORDER = get_args(Environment)  # dev, stage, prod: content passes through each in turn


def iso_date(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    # A bare date means midnight UTC, whatever the servers' time zone.
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tools.promote", description=__doc__.split("\n")[0])
    parser.add_argument("--from", dest="source", required=True, choices=ORDER)
    parser.add_argument("--to", dest="target", required=True, choices=ORDER)
    parser.add_argument("--since", type=iso_date, help="only documents created after this date (ISO, UTC)")
    parser.add_argument("--dry-run", action="store_true", help="report what would move and change nothing")
    args = parser.parse_args(argv)
    if ORDER.index(args.target) != ORDER.index(args.source) + 1:
        parser.error(f"promotion goes one step up {' -> '.join(ORDER)}; not {args.source} -> {args.target}")
    return args


def _env(name: str, required: bool = True) -> Optional[str]:
    value = os.environ.get(name)
    if required and not value:
        raise pg.PromotionError(f"{name} is not set")
    return value


def _report(args: argparse.Namespace, plan: pg.Plan, vectors: int) -> None:
    src, tgt = Naming(args.source), Naming(args.target)
    since = f", created after {args.since.isoformat()}" if args.since else ""
    print(f"Promote approved documents{since}: {args.source} -> {args.target}")
    print(f"  from {src.database}, collection {src.collection}")
    print(f"  to   {tgt.database}, collection {tgt.collection}")
    rows = [
        (f"approved documents in {args.source}", plan.approved),
        (f"already in {args.target} (left as they are)", plan.present),
        ("documents to copy", len(plan.document_ids)),
        ("chunks to copy", plan.chunks),
        ("vectors to copy", vectors),
    ]
    if plan.columns.source_only:
        rows.append((f"columns {args.target} lacks (refused)", ", ".join(plan.columns.source_only)))
    if plan.columns.target_only:
        rows.append((f"columns {args.source} lacks ({args.target}'s default)", ", ".join(plan.columns.target_only)))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    sys.stdout.flush()  # seen before a long copy starts, through a pipe too


def promote(args: argparse.Namespace) -> int:
    src, tgt = Naming(args.source), Naming(args.target)
    source_points = Collection(_env("PROMOTE_SOURCE_QDRANT"), src.collection,
                               _env("PROMOTE_SOURCE_QDRANT_API_KEY", required=False))
    target_points = Collection(_env("PROMOTE_TARGET_QDRANT"), tgt.collection,
                               _env("PROMOTE_TARGET_QDRANT_API_KEY", required=False))
    with pg.connect_source(_env("PROMOTE_SOURCE_DSN"), src.database) as source, \
            pg.connect_target(_env("PROMOTE_TARGET_DSN"), tgt.database) as target:
        plan = pg.plan(source, target, args.since)
        vectors = source_points.count(plan.document_ids)
        _report(args, plan, vectors)
        if plan.columns.source_only:
            # Copying without them would lose their values for good: release
            # the migration to the target first (its slot's migrate step adds them).
            raise pg.PromotionError(f"{args.target} lacks columns {args.source} has; release the migration first")
        if args.dry_run:
            if plan.document_ids:
                would = (f"copy {len(plan.document_ids)} documents, {plan.chunks} chunks and {vectors} vectors"
                         f" into {tgt.database} and {tgt.collection}")
            else:
                would = "find nothing to promote"
            print(f"Dry run: nothing was written. A real run (the same command without --dry-run) would {would}.")
            return 0
        if not plan.document_ids:
            print("Nothing to promote.")
            return 0
        # The vectors go in before PostgreSQL commits: if they fail, nothing is
        # committed and a re-run starts over (re-upserting a point is harmless).
        with target.transaction():
            copied = pg.copy(source, target, plan)
            vectors = copy_points(source_points, target_points, copied.document_ids)
    print(f"Promoted {len(copied.document_ids)} documents, {copied.chunks} chunks, {vectors} vectors.")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        return promote(args)
    except (pg.PromotionError, QdrantError, psycopg.Error) as e:
        print(f"promote: {e}", file=sys.stderr)
        if args.dry_run:
            print("promote: this was a dry run, which writes nothing; a real run would stop here too.", file=sys.stderr)
        else:
            print(f"promote: nothing was committed to {Naming(args.target).database}; a re-run is safe.",
                  file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
