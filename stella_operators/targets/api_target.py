"""What the targets driven through one remote API client (ecs, nomad, winrm) share: a name, the
client, the typed settings and a repr; `PollingTarget` adds the cancel() of targets that poll a
rollout (see contract.Cancellable), which stops the poll at its next round.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from stella_operators.targets.contract import DeployError

SettingsT = TypeVar("SettingsT", bound=BaseModel)


class ApiTarget(Generic[SettingsT]):
    """A target whose every action is a call through `client` (a boto3 client, a python-nomad
    client, a winrm Session: the hook's connection)."""

    kind: ClassVar[str]

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
