"""`stella validate | schema | target-types | dags render`: the estate file and what it generates."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stella_operators.cli.common import default_estate
from stella_operators.settings import estate_path


def cmd_validate(args) -> int:
    from stella_operators.estate.loader import load_estate

    estate = load_estate(args.file)
    targets = sum(len(e.targets) for e in estate.environments)
    print(f"{args.file}: ok ({len(estate.apps)} apps, {len(estate.environments)} environments, {targets} targets)")
    return 0


def cmd_schema(args) -> int:
    from stella_operators.estate.schema import estate_json_schema

    text = json.dumps(estate_json_schema(), indent=2, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_target_types(args) -> int:
    """Installed target types: one name per line, or --json with each type's settings schema."""
    from stella_operators.entry_points import stella_entry_points
    from stella_operators.targets.registry import TARGETS_GROUP, target_types

    eps = {ep.name: ep for ep in stella_entry_points(TARGETS_GROUP)}
    types = target_types()
    if args.json:
        rows = []
        for name in sorted(types):
            kind, ep = types[name], eps[name]
            rows.append({"name": name, "summary": kind.summary, "tested_against": kind.tested_against,
                         "settings": kind.settings.model_json_schema(), "object": ep.value,
                         "distribution": ep.dist.name if ep.dist else None,
                         "version": ep.dist.version if ep.dist else None})
        print(json.dumps(rows, indent=2))
    else:
        for name in sorted(types):
            print(name)
    return 0


def cmd_dags_render(args) -> int:
    from stella_operators.dag_builder.render import render_dag_files, shard_count
    from stella_operators.estate.loader import load_estate

    estate = load_estate(args.estate)  # never render files for an estate that does not validate
    shards = args.shards or shard_count(len(estate.apps), args.apps_per_file)
    written, removed = render_dag_files(args.output, shards)
    for f in removed:
        print(f"removed {f}")
    for f in written:
        print(f"wrote {f}")
    print(f"{len(estate.apps)} apps in {shards} DAG file(s); they read the estate from STELLA_ESTATE "
          f"(now resolving to {estate_path()})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:

    v = sub.add_parser("validate", help="validate an estate file")
    v.add_argument("file", nargs="?", default=default_estate())
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("schema", help="print the estate JSON Schema")
    s.add_argument("-o", "--output")
    s.set_defaults(func=cmd_schema)

    tt = sub.add_parser("target-types", help="list installed target types (one per line)")
    tt.add_argument("--json", action="store_true", help="name, object, distribution and version of each")
    tt.set_defaults(func=cmd_target_types)

    d = sub.add_parser("dags", help="the estate's DAG files").add_subparsers(dest="dags_cmd", required=True)
    dr = d.add_parser("render", help="write the thin DAG files (apps split over shard files) into a DAGs folder")
    dr.add_argument("--estate", default=default_estate())
    dr.add_argument("-o", "--output", required=True, help="the DAGs folder")
    grp = dr.add_mutually_exclusive_group()
    grp.add_argument("--apps-per-file", type=int, default=25, help="shards = ceil(apps / this) (default 25)")
    grp.add_argument("--shards", type=int, help="number of DAG files, whatever the estate size")
    dr.set_defaults(func=cmd_dags_render)
