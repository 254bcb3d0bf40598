"""DagBag parse time of a generated estate (50 apps x 4 environments) against a baseline.

Baseline: one plain Airflow DAG file that defines the same number of DAGs with the same task
shape (1 task per release DAG, 5 per promote DAG) using EmptyOperator and no estate file:
the cost Airflow itself charges for that many DAGs. The ratio is what the estate file, its
validation and our operators add on top. Each measurement parses in a fresh process. The stella
side is the DAGs folder `stella dags render` writes (25 apps per file; `--shards 1` for the single
file of earlier versions); every file validates the whole estate.

Usage: python benchmarks/dagbag_parse.py [--apps 50] [--envs 4] [--repeat 5] [--shards N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stella_operators.dag_builder.render import render_dag_files, shard_count

MEASURE = textwrap.dedent("""
    import sys, time
    t0 = time.perf_counter()
    from airflow.dag_processing.dagbag import DagBag
    t1 = time.perf_counter()
    bag = DagBag(dag_folder=sys.argv[1])
    t2 = time.perf_counter()
    assert not bag.import_errors, bag.import_errors
    print(len(bag.dags), t2 - t1)
""")


def estate_yaml(apps: int, envs: int) -> str:
    lines = ["version: 1", "registries:", "  - {host: 'reg.local:5000', scheme: http}", "apps:"]
    for a in range(apps):
        lines += [f"  - name: app{a:03d}", "    components:"]
        lines += [f"      - {{name: c{c}, repository: reg.local:5000/team/app{a:03d}-c{c}}}" for c in range(3)]
    lines.append("environments:")
    for e in range(envs):
        lines += [f"  - name: env{e}", "    targets:"]
        lines += [f"      - {{name: env{e}-host{h}, type: docker, connection: conn_env{e}_{h}}}" for h in range(2)]
    return "\n".join(lines) + "\n"


BASELINE = textwrap.dedent("""
    from datetime import datetime
    from airflow.sdk import DAG, Param
    from airflow.providers.standard.operators.empty import EmptyOperator
    for a in range({apps}):
        with DAG(f"release__app{{a:03d}}", schedule=None, start_date=datetime(2026, 1, 1),
                 params={{"name": Param(type="string")}}) as d:
            EmptyOperator(task_id="create_release")
        globals()[d.dag_id] = d
        for e in range({envs}):
            with DAG(f"promote__app{{a:03d}}__env{{e}}", schedule=None, start_date=datetime(2026, 1, 1),
                     params={{"release": Param(type="string"), "reason": Param(type="string")}}) as d:
                (EmptyOperator(task_id="request") >> EmptyOperator(task_id="gates") >> EmptyOperator(task_id="approval")
                 >> EmptyOperator(task_id="deploy") >> EmptyOperator(task_id="verify"))
            globals()[d.dag_id] = d
""")


def measure(folder: Path, repeat: int, env: dict) -> tuple[int, list[float]]:
    times, count = [], 0
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", MEASURE, str(folder)], capture_output=True, text=True,
                             env=env, check=True)
        n, t = out.stdout.split()[-2:]
        count, times = int(n), times + [float(t)]
    return count, times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, default=50)
    ap.add_argument("--envs", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--shards", type=int, help="DAG files (default: as `stella dags render`, 25 apps per file)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "stella").mkdir()
        (tmp / "baseline").mkdir()
        estate = tmp / "estate.yaml"
        estate.write_text(estate_yaml(args.apps, args.envs))
        shards = shard_count(args.apps) if args.shards is None else args.shards
        render_dag_files(tmp / "stella", shards)  # the files `stella dags render` writes
        (tmp / "baseline" / "plain_dags.py").write_text(BASELINE.format(apps=args.apps, envs=args.envs))
        env = {**os.environ, "STELLA_ESTATE": str(estate), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
               "STELLA_HOME": str(tmp / "stella-home"), "PYTHONPATH": str(ROOT),
               "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", str(tmp / "airflow"))}
        n_s, t_s = measure(tmp / "stella", args.repeat, env)
        n_b, t_b = measure(tmp / "baseline", args.repeat, env)
    assert n_s == n_b == args.apps * (1 + args.envs), (n_s, n_b)
    ms, mb = statistics.median(t_s), statistics.median(t_b)
    print(f"estate: {args.apps} apps x {args.envs} environments = {n_s} DAGs in {shards} DAG file(s)")
    print(f"stella generated DAGs  : median {ms * 1000:.0f} ms over {args.repeat} fresh parses")
    print(f"baseline plain DAG file: median {mb * 1000:.0f} ms over {args.repeat} fresh parses")
    print(f"ratio stella/baseline  : {ms / mb:.2f}x")


if __name__ == "__main__":
    main()
