"""OciRegistryHook: a RegistryClient whose credentials come from an Airflow Connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from stella_operators.estate.models import Component, Estate, Registry
from stella_operators.hooks.connections import connection_or_none

if TYPE_CHECKING:
    from stella_operators.registry.client import RegistryClient
    from stella_operators.release.service import Resolver


class OciRegistryHook(BaseHook):
    """Resolves tags to digests through the OCI Distribution API.

    :param registry: the estate's registry entry (host, scheme, TLS, connection id).
    """

    hook_name = "OCI registry"

    def __init__(self, registry: Registry):
        super().__init__()
        self.registry = registry

    def get_conn(self) -> RegistryClient:
        from stella_operators.registry.client import RegistryClient

        username = password = None
        if self.registry.connection:
            conn = connection_or_none(self.registry.connection)
            if conn is None:
                raise ValueError(f"registry {self.registry.host}: Airflow Connection "
                                 f"{self.registry.connection!r} is not defined")
            username, password = conn.login or None, conn.password or None
        return RegistryClient(self.registry.host, username=username, password=password,
                              scheme=self.registry.scheme, verify_tls=self.registry.verify_tls)


def registry_resolver(estate: Estate) -> Resolver:
    """A release Resolver that resolves through each repository's registry (one client per registry)."""
    from stella_operators.release.model import ComponentDigest

    clients: dict[str, RegistryClient] = {}

    def resolve(component: Component, repository: str, reference: str) -> ComponentDigest:
        registry = estate.registry_for(repository)
        if registry is None:  # the estate's checks refuse a repository of an undeclared registry
            raise ValueError(f"repository {repository}: its registry is not declared in the estate")
        if registry.host not in clients:
            clients[registry.host] = OciRegistryHook(registry).get_conn()
        resolved = clients[registry.host].resolve(repository.split("/", 1)[1], reference)
        return ComponentDigest(name=component.name, repository=repository, digest=resolved.digest,
                               tag=None if reference.startswith("sha256:") else reference)

    return resolve


def registry_access(estate: Estate) -> Callable[[str], tuple[RegistryClient, str]]:
    """`repository ("host/path") -> (client, path)` through the estate's registries and their
    Connections (one client per registry), for gates that read the registry."""
    clients: dict[str, RegistryClient] = {}

    def access(repository: str) -> tuple[RegistryClient, str]:
        registry = estate.registry_for(repository)
        if registry is None:
            raise ValueError(f"{repository}: its registry is not declared in the estate")
        if registry.host not in clients:
            clients[registry.host] = OciRegistryHook(registry).get_conn()
        return clients[registry.host], repository.split("/", 1)[1]

    return access
