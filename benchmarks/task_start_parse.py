"""What a task start spends parsing its DAG file, at 50 and 500 apps in the same run.

A task start (Airflow 3's task runner) re-parses the one file that defines its DAG, with the
parsing context set (`_AIRFLOW_PARSING_CONTEXT_DAG_ID` / `_TASK_ID`), through a DagBag with
safe_mode and operator links off. This script does exactly that, in a fresh process per
measurement, for the `deploy` task of one promote DAG, against the files `stella dags render`
writes (default 25 apps per file):

- task start: the shard file holding the DAG, parsing context set (the figure the goal is about:
  500 apps within 10 % of 50 apps);
- baseline: a plain Airflow DAG file defining one DAG of the same shape (EmptyOperator), parsed
  the same way: what Airflow itself charges a task start;
- task start, cold cache: once, before any other parse of that estate version (the parsed
  estate is cached by content hash; the dag-processor's parse primes it);
- dag-processor: the same shard file without the context (whole estate validated, the shard's
  DAGs built);
- before: one file holding every DAG, without the context: what every task start paid before.

Each parse reports its wall-clock time and the CPU time of the parsing process; on a shared
machine the CPU time is the steadier figure for comparing 50 and 500 apps.

Usage: python benchmarks/task_start_parse.py [--apps 50 500] [--envs 4] [--repeat 5] [--skip-before]
"""

from __future__ import annotations

import argparse
import compileall
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from dagbag_parse import estate_yaml

from stella_operators.dag_builder.builder import promote_dag_id, shard_of
from stella_operators.dag_builder.render import file_name, render_dag_files, shard_count

MEASURE = textwrap.dedent("""
    import sys, time
    from airflow.dag_processing.dagbag import DagBag
    t0, c0 = time.perf_counter(), time.process_time()
    bag = DagBag(dag_folder=sys.argv[1], safe_mode=False, load_op_links=False)
    t1, c1 = time.perf_counter(), time.process_time()
    assert not bag.import_errors, bag.import_errors
    print(len(bag.dags), t1 - t0, c1 - c0)
""")

BASELINE = textwrap.dedent("""
    from datetime import datetime
    from airflow.sdk import DAG, Param
    from airflow.providers.standard.operators.empty import EmptyOperator
    with DAG("promote__app__env2", schedule=None, start_date=datetime(2026, 1, 1),
             params={"release": Param(type="string"), "reason": Param(type="string")}) as d:
        (EmptyOperator(task_id="request") >> EmptyOperator(task_id="gates") >> EmptyOperator(task_id="approval")
         >> EmptyOperator(task_id="deploy") >> EmptyOperator(task_id="verify"))
""")


def once(file: Path, env: dict, context: tuple[str, str] | None) -> tuple[int, float, float]:
    """(DAGs parsed, wall-clock s, CPU s of the parsing process)."""
    env = dict(env)
    env.pop("_AIRFLOW_PARSING_CONTEXT_DAG_ID", None)
    env.pop("_AIRFLOW_PARSING_CONTEXT_TASK_ID", None)
    if context:
        env["_AIRFLOW_PARSING_CONTEXT_DAG_ID"], env["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = context
    out = subprocess.run([sys.executable, "-c", MEASURE, str(file)], capture_output=True, text=True, env=env,
                         check=False)
    if out.returncode:
        raise SystemExit(f"parse of {file} failed:\n{out.stderr[-3000:]}")
    n, t, cpu = out.stdout.split()[-3:]
    return int(n), float(t), float(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--apps", type=int, nargs="+", default=[50, 500])
    ap.add_argument("--envs", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7, help="seed of the order of the cases in each round")
    ap.add_argument("--skip-before", action="store_true", help="skip the slow one-file-for-everything case")
    args = ap.parse_args()
    # As `pip install` does (PYTHONDONTWRITEBYTECODE may be set here): else every parse would also
    # compile the package from this source tree, which no installed deployment does.
    compileall.compile_dir(str(ROOT / "stella_operators"), quiet=1)
    base_env = {**os.environ, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": str(ROOT)}
    results: dict[tuple[str, int], list[float]] = {}       # wall-clock s
    cpu_results: dict[tuple[str, int], list[float]] = {}   # CPU s of the parsing process
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base_env.setdefault("AIRFLOW_HOME", str(tmp / "airflow"))
        (tmp / "baseline.py").write_text(BASELINE)
        cases = []
        for n in args.apps:
            estate = tmp / f"estate{n}.yaml"
            estate.write_text(estate_yaml(n, args.envs))
            shards = shard_count(n)
            render_dag_files(tmp / f"dags{n}", shards)
            render_dag_files(tmp / f"one{n}", 1)
            app = f"app{n // 2:03d}"
            dag_id = promote_dag_id(app, f"env{args.envs // 2}")
            shard_file = tmp / f"dags{n}" / file_name(shard_of(app, shards), shards)
            env = {**base_env, "STELLA_ESTATE": str(estate), "STELLA_HOME": str(tmp / f"home{n}")}
            cases += [(("task start", n), shard_file, env, (dag_id, "deploy"), 1),
                      (("dag-processor, one shard file", n), shard_file, env, None, None)]
            if not args.skip_before:
                cases.append((("before: one file, every DAG", n), tmp / f"one{n}" / "stella_estate.py", env, None,
                               n * (1 + args.envs)))
            print(f"{n} apps: {shards} DAG file(s); task start of {dag_id}.deploy parses {shard_file.name}",
                  flush=True)
        cases.append((("baseline", 0), tmp / "baseline.py", base_env, ("promote__app__env2", "deploy"), 1))
        # The first task start after an estate change finds no parsed-estate cache unless the
        # dag-processor has parsed the file since (it primes the cache): measure that case once.
        for key, file, env, ctx, _ in cases:
            if key[0] == "task start":
                shutil.rmtree(Path(env["STELLA_HOME"]) / "cache", ignore_errors=True)
                _, t, cpu = once(file, env, ctx)
                results[("task start, cold cache", key[1])] = [t]
                cpu_results[("task start, cold cache", key[1])] = [cpu]
        rng = random.Random(args.seed)
        for _ in range(args.repeat):
            # Interleaved, in a new order each round: load changes on the machine, and whatever the
            # previous parse left in the CPU caches, hit every case alike.
            for key, file, env, ctx, expect in rng.sample(cases, len(cases)):
                count, t, cpu = once(file, env, ctx)
                if expect is not None and count != expect:
                    raise SystemExit(f"{key}: expected {expect} DAGs, parsed {count}")
                results.setdefault(key, []).append(t)
                cpu_results.setdefault(key, []).append(cpu)
    med = {k: statistics.median(v) for k, v in results.items()}
    base = med[("baseline", 0)]
    print(f"\nmedian of {args.repeat} fresh-process parses (cold cache: one) "
          "(DagBag of one file, as the task runner builds it)")
    print(f"baseline: plain Airflow file, one DAG of the same shape, parsing context set: {base * 1000:.0f} ms")
    for what in ("task start", "task start, cold cache", "dag-processor, one shard file",
                 "before: one file, every DAG"):
        for n in args.apps:
            if (what, n) in med:
                m, lo = med[(what, n)], min(results[(what, n)])
                cpu = statistics.median(cpu_results[(what, n)])
                print(f"{what:30} {n:4} apps: {m * 1000:7.0f} ms  "
                      f"({m / base:.2f}x baseline; fastest {lo * 1000:.0f} ms; CPU {cpu * 1000:.0f} ms)")
    if len(args.apps) >= 2:
        lo, hi = min(args.apps), max(args.apps)
        ratio = med[("task start", hi)] / med[("task start", lo)]
        verdict = "within" if abs(ratio - 1) <= 0.10 else "NOT within"
        fastest = min(results[("task start", hi)]) / min(results[("task start", lo)])
        print(f"task start {hi} apps / {lo} apps: {ratio:.3f} ({verdict} 10 %); fastest runs: {fastest:.3f}")
        # CPU time of the parsing process: what the parse costs, without the other jobs of a shared
        # machine that stretch its wall-clock time (the figure to compare across runs here).
        cpu_ratio = (statistics.median(cpu_results[("task start", hi)])
                     / statistics.median(cpu_results[("task start", lo)]))
        verdict = "within" if abs(cpu_ratio - 1) <= 0.10 else "NOT within"
        cpu_fastest = min(cpu_results[("task start", hi)]) / min(cpu_results[("task start", lo)])
        print(f"task start {hi} apps / {lo} apps, CPU time: {cpu_ratio:.3f} ({verdict} 10 %); "
              f"least CPU: {cpu_fastest:.3f}")


if __name__ == "__main__":
    main()
