"""A canary that starts failing: time from its first failing request to 0 % of new requests on it.

The canary lab (devstack/canary_lab.py: a real HAProxy or nginx, a real Prometheus scraping every
second, metrics-app processes as the two versions) and the promotion services the DAG's tasks call: the
release goes to the canary group, step 1 gives it 10 % of the traffic, a client sends ~50
requests/s through the proxy, the analysis runs (the AnalysisTrigger's own code, analysis/runner.py)
on the canary's error ratio. After `--healthy-s` the canary starts answering 20 % errors; the
analysis fails, `decide(rollback)` sends the traffic back to the stable group (then restores the
canary's previous digests).

Measured: first failing request (the client's send time of the first HTTP 500 from the canary) ->
the router's weight change back to the stable group returning (nginx: its reload confirmed, new
workers up and the old ones no longer accepting); compared with the analysis
configuration's own bound, interval x (failure_limit + 1). Goal: <= bound + 2 s, and no request
sent after the switch back answered by the canary.

Usage: python benchmarks/canary_rollback.py [--router haproxy|nginx] [--repeat 3] [--interval 1] [--failure-limit 1]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from devstack.canary_lab import ROUTERS, Responses, digest, start_canary_lab  # noqa: E402
from stella_operators.analysis.model import Analysis  # noqa: E402
from stella_operators.analysis.providers import Endpoint, open_sampler  # noqa: E402
from stella_operators.analysis.runner import run_analysis  # noqa: E402
from stella_operators.estate import parse_estate  # noqa: E402
from stella_operators.evidence import SigningKey  # noqa: E402
from stella_operators.ledger import Ledger  # noqa: E402
from stella_operators.promotion import strategies  # noqa: E402
from stella_operators.promotion.canary import decide, take_step  # noqa: E402
from stella_operators.promotion.service import deploy_promotion  # noqa: E402
from stella_operators.promotion.state import PromotionStatus as S  # noqa: E402
from stella_operators.release.model import ComponentDigest, Release  # noqa: E402

RATE_WINDOW_S = 3


def estate(lab, interval_s: float, failure_limit: int):
    inst = f"127.0.0.1:{lab.canary.port}"
    w = f"[{RATE_WINDOW_S}s]"
    query = (f'sum(rate(stella_demo_errors_total{{instance="{inst}"}}{w})) / '
             f'sum(rate(stella_demo_requests_total{{instance="{inst}"}}{w}))')
    return parse_estate(f"""
version: 1
registries: [{{host: reg.local, scheme: http}}]
apps: [{{name: shop, components: [{{name: web, repository: reg.local/shop/web}}]}}]
environments:
  - name: live
    requires: []
    strategy: canary
    canary:
      router: {lab.router_block()}
      steps: [10, 100]
      bake_s: 0
      analysis:
        metrics:
          - {{name: error-rate, query: '{query}', success_condition: result < 0.05, interval_s: {interval_s},
              count: 600, initial_delay_s: {RATE_WINDOW_S}, failure_limit: {failure_limit}}}
    targets:
      - {{name: s1, type: docker, connection: c_s1, group: stable}}
      - {{name: c1, type: docker, connection: c_c1, group: canary}}
""", source="bench.yaml")


def one_run(lab, workdir: Path, n: int, args) -> dict:
    lab.reset()
    est = estate(lab, args.interval, args.failure_limit)
    ledger = Ledger.open(f"sqlite:///{workdir / f'ledger-{n}.db'}")
    key = SigningKey.generate()
    back_at: list[float] = []
    strategies.router_of = lambda env: lab.timed(lab.router(), back_at)
    rel = ledger.add_release(Release.seal(
        id=f"rel-{n}", app="shop", name=f"shop-{n}", created_at=datetime.now(UTC), created_by="bench", source={},
        components=[ComponentDigest(name="web", repository="reg.local/shop/web", digest=digest(2), tag="2")]))
    promo = ledger.create_promotion("shop", "live", rel.id, "bench", "benchmark", "bench", f"run-{n}")
    for status in (S.EVALUATING, S.APPROVED):
        ledger.transition(promo.id, status, actor="bench")
    deploy_promotion(est, ledger, key, promo.id, lab.targets)
    step = take_step(est, ledger, key, promo.id, 0, lab.targets)
    failing_from: list[float] = []

    def start_failing():
        time.sleep(args.healthy_s)
        failing_from.append(time.monotonic())
        assert lab.canary.app is not None
        lab.canary.app.control(error_rate=0.2)

    async def analyse():
        async with open_sampler({"prometheus": Endpoint(lab.prometheus.url)}) as take:
            return await run_analysis(Analysis.model_validate(est.environment("live").canary.analysis), take,
                                      datetime.now(UTC))

    with Responses(lab.port, rps=50) as traffic:
        threading.Thread(target=start_failing, daemon=True).start()
        report = asyncio.run(analyse()).report()
        decide(est, ledger, key, promo.id, step, lab.targets, decision="rollback", decided_by="stella",
               reason=report["summary"], analysis=report)
        time.sleep(1)
    ledger.close()
    first_fail = min((t for t, code, body in traffic.seen if code == 500 and "v2" in body), default=None)
    after = [(t, code, body) for t, code, body in traffic.seen if back_at and t > back_at[0]]
    return {"outcome": report["outcome"], "first_fail": first_fail, "back": back_at[0] if back_at else None,
            "to_canary_after": sum(1 for _, _, b in after if "v2" in b), "after": len(after),
            "errors_started": failing_from[0] if failing_from else None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--router", choices=ROUTERS, default="haproxy", help="the proxy in front of the two versions")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--failure-limit", type=int, default=1)
    p.add_argument("--healthy-s", type=float, default=6.0, help="the canary is healthy this long first")
    args = p.parse_args()
    bound = args.interval * (args.failure_limit + 1)
    goal = bound + 2
    with tempfile.TemporaryDirectory(prefix="stella-canary-bench-") as tmp:
        lab = start_canary_lab(Path(tmp), router=args.router)
        try:
            runs = [one_run(lab, Path(tmp), n, args) for n in range(args.repeat)]
        finally:
            lab.stop()
    took = []
    for i, r in enumerate(runs, 1):
        if r["outcome"] != "fail" or r["first_fail"] is None or r["back"] is None:
            print(f"run {i}: no measurement ({r})")
            continue
        took.append(r["back"] - r["first_fail"])
        print(f"run {i}: first failing request -> 0 % on the canary: {took[-1]:.2f} s; requests to the canary "
              f"after: {r['to_canary_after']} of {r['after']}")
    if not took:
        return 1
    print(f"router {args.router}; analysis bound interval x (failure_limit + 1) = {bound:.1f} s; "
          f"goal <= bound + 2 s = {goal:.1f} s "
          f"(the query's rate window is {RATE_WINDOW_S} s, scrapes every 1 s)")
    print(f"median {statistics.median(took):.2f} s, max {max(took):.2f} s, ratio max/goal {max(took) / goal:.2f}; "
          f"requests to the canary after the switch back: {sum(r['to_canary_after'] for r in runs)}")
    ok = max(took) <= goal and all(r["to_canary_after"] == 0 for r in runs)
    print("goal met" if ok else "goal NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
