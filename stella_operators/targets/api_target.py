"""What the targets driven through one remote API client (ecs, nomad, winrm) share: a name, the
client, the typed settings, a repr and the frame of prepare (every failure carries what was
started, for discard); `PollingTarget` adds the cancel() of targets that poll a rollout (see
contract.Cancellable), which stops the poll at its next round.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from stella_operators.targets.contract import DeployError, PreparedChange, TargetPlan

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class ApiTarget(Generic[SettingsT]):
    """A target whose every action is a call through `client` (a boto3 client, a python-nomad
    client, a winrm Session: the hook's connection)."""

    kind: ClassVar[str]
    # Where the remote side owns a component's command, env and health check (the ECS task
    # definition, the Nomad job): a plan that sets them is refused with this text.
    keeps_runtime: ClassVar[str | None] = None
    # Failures of prepare other than DeployError that become one (with `prepared`), worded by
    # error_text(); others propagate.
    wrap_errors: ClassVar[tuple[type[Exception], ...]] = ()

    def __init__(self, name: str, client: Any, settings: SettingsT):
        self.name = name
        self.client = client
        self.settings = settings

    def describe(self) -> str:
        """What the target drives, for its repr ("" for the name alone)."""
        return ""

    def __repr__(self) -> str:
        detail = self.describe()
        return f"{type(self).__name__}({self.name!r}{', ' + detail if detail else ''})"

    def error_text(self, exc: Exception) -> str:
        """A client error in the remote API's own words."""
        return f"{type(exc).__name__}: {exc}"

    def prepare(self, plan: TargetPlan) -> PreparedChange:
        """`_prepare(plan, prepared)`; a failure is a DeployError carrying `prepared` for discard."""
        prepared = PreparedChange(target=self.name)
        try:
            if self.keeps_runtime is not None:
                for spec in plan.components:
                    if spec.command is not None or spec.env or spec.health is not None:
                        raise DeployError(self.name, f"{spec.component.name}: {self.keeps_runtime}")
            self._prepare(plan, prepared)
        except DeployError as exc:
            raise DeployError(self.name, str(exc).removeprefix(f"{self.name}: "), prepared=prepared) from None
        except self.wrap_errors as exc:
            raise DeployError(self.name, f"prepare failed: {self.error_text(exc)}", prepared=prepared) from None
        return prepared

    def _prepare(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        raise NotImplementedError


class PollingTarget(ApiTarget[SettingsT]):
    """An ApiTarget whose prepare waits for the remote side (a rollout, a deployment) by polling."""

    def __init__(self, name: str, client: Any, settings: SettingsT):
        super().__init__(name, client, settings)
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        """Make a wait in flight stop at its next poll (see contract.Cancellable)."""
        self._cancelled.set()

    def stop_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise DeployError(self.name, "cancelled: the deployment was interrupted")
