"""The upstream gate: a release enters an environment only after it was verified upstream.

Always evaluated first, whatever the estate lists; the promotion path is not optional.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from stella_operators.gates.contract import Decision, PromotionContext, Verdict


class UpstreamGate:
    type: ClassVar[str] = "upstream"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

    def __init__(self, name: str = "upstream", config: Config | None = None):
        self.name = name

    def collect(self, ctx: PromotionContext) -> dict[str, Any]:
        return {"release_id": ctx.release.id, "upstream_verified": dict(sorted(ctx.upstream_verified.items()))}

    def decide(self, inputs: dict[str, Any]) -> Decision:
        missing = sorted(env for env, ok in inputs["upstream_verified"].items() if not ok)
        if not missing:
            return Decision(verdict=Verdict.PASS, message="verified in every upstream environment"
                            if inputs["upstream_verified"] else "first environment of the path")
        envs = ", ".join(missing)
        return Decision(verdict=Verdict.FAIL, reasons=("upstream.not_verified",),
                        message=f"release {inputs['release_id']} has not been deployed and verified in {envs}",
                        remedy=f"promote it to {envs} first", details={"missing": missing})
