"""Registry access without Airflow: resolve tags to verified manifest digests."""

from stella_operators.registry.client import (
    MANIFEST_ACCEPT,
    Challenge,
    DigestMismatch,
    RegistryClient,
    RegistryError,
    RegistryUnauthorized,
    RegistryUnreachable,
    ResolvedImage,
    UnknownRepositoryOrTag,
    parse_www_authenticate,
)

__all__ = [
    "MANIFEST_ACCEPT",
    "Challenge",
    "DigestMismatch",
    "RegistryClient",
    "RegistryError",
    "RegistryUnauthorized",
    "RegistryUnreachable",
    "ResolvedImage",
    "UnknownRepositoryOrTag",
    "parse_www_authenticate",
]
