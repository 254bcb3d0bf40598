"""Target type `ssh`: an agentless Linux host (releases as dirs, a `current` symlink, your scripts).

Settings: targets/ssh/settings.py. Transport: the Airflow SSH provider's async hook (Connections)
and asyncssh, on the fan-out module's shared loop (fanout.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stella_operators.targets.registry import TargetType
from stella_operators.targets.ssh.settings import SshSettings

if TYPE_CHECKING:
    from stella_operators.estate.models import TargetConfig
    from stella_operators.targets.contract import Target


def _build(target: TargetConfig, settings: Any) -> Target:
    from stella_operators.hooks.ssh_host import ssh_endpoint
    from stella_operators.settings import estate_path
    from stella_operators.targets.ssh.target import SshTarget

    endpoint = ssh_endpoint(target.name, target.connection, known_hosts_file=settings.known_hosts_file,
                            insecure_demo=settings.insecure_demo, connect_timeout_s=settings.connect_timeout_s)
    return SshTarget(target.name, endpoint, settings, artifact_root=estate_path().parent)


TARGET_TYPE = TargetType(
    name="ssh",
    summary="agentless Linux host over SSH: release dirs + `current` symlink, your activate/status scripts",
    tested_against="real OpenSSH sshd hosts, each in its own network namespace",
    settings=SshSettings,
    build=_build,
    # no containers here: the component's activate/status scripts own ports, volumes and the rest
    unsupported=("ports", "networks", "volumes", "restart", "limits", "env_from", "role"),
)
