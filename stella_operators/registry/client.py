"""Resolve image tags to verified manifest digests on an OCI / Docker v2 registry."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, NoReturn

import httpx

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
# All four, always: without the OCI types an OCI manifest answers 404, and without the Docker v2
# type a v2 manifest is converted to schema1 on the fly and answers with a different digest.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2))
_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws")

_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
_CHALLENGE_PARAM_RE = re.compile(r'([A-Za-z_][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_TOKEN_MARGIN_S = 10.0


class RegistryError(Exception):
    """Any failure to resolve an image on a registry; messages never contain credentials."""

    def __init__(self, message: str, *, registry: str | None = None) -> None:
        super().__init__(message)
        self.registry = registry


class UnknownRepositoryOrTag(RegistryError):
    """The registry does not know the repository, tag or digest (404 / NAME_UNKNOWN / MANIFEST_UNKNOWN)."""


class RegistryUnauthorized(RegistryError):
    """The registry refused the request even after authenticating (or no credentials were configured)."""


class RegistryUnreachable(RegistryError):
    """No HTTP answer: connection refused, DNS failure, TLS failure or timeout."""


class DigestMismatch(RegistryError):
    """The manifest bytes do not hash to the digest the registry reported or that was asked for."""


@dataclass(frozen=True)
class ResolvedImage:
    """A manifest pinned by digest; `repository` includes the registry host."""

    repository: str
    tag: str | None
    digest: str
    media_type: str
    size: int

    @property
    def pinned(self) -> str:
        """`registry/repo@sha256:...`, the reference to deploy."""
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class Challenge:
    """A parsed WWW-Authenticate challenge."""

    scheme: str  # lower-cased: "basic" or "bearer"
    params: dict[str, str]


def parse_www_authenticate(header: str) -> Challenge | None:
    """Parse `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {
        m.group(1).lower(): (m.group(2).replace('\\"', '"') if m.group(2) is not None else m.group(3))
        for m in _CHALLENGE_PARAM_RE.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


class RegistryClient:
    """Minimal Docker Registry HTTP API v2 client: manifest digest resolution with Basic/Bearer auth."""

    def __init__(
        self,
        registry: str,
        *,
        username: str | None = None,
        password: str | None = None,
        scheme: str = "https",
        timeout: float = 10.0,
        verify_tls: bool | str = True,
    ) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"scheme must be http or https, not {scheme!r}")
        if not registry or "/" in registry or "@" in registry:
            raise ValueError(f"registry must be host[:port], not {registry!r}")
        self.registry = registry
        self.scheme = scheme
        self.username = username
        self.__password = password  # name-mangled and left out of __repr__
        self._base = f"{scheme}://{registry}"
        # A CA bundle path becomes an SSL context: httpx deprecates passing the path directly.
        verify = ssl.create_default_context(cafile=verify_tls) if isinstance(verify_tls, str) else verify_tls
        # httpx drops the Authorization header when a redirect leaves the origin.
        self._http = httpx.Client(timeout=timeout, verify=verify, follow_redirects=True)
        self._tokens: dict[str, tuple[str, float]] = {}
        self._basic_preferred = False

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RegistryClient:
        """`RegistryClient.from_url("http://127.0.0.1:5000")`; a bare host means https."""
        parts = urllib.parse.urlsplit(url if "://" in url else f"https://{url}")
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/"):
            raise ValueError(f"registry URL must be http(s)://host[:port], not {url!r}")
        return cls(parts.netloc, scheme=parts.scheme, **kwargs)

    def __repr__(self) -> str:
        return f"RegistryClient(registry={self.registry!r}, scheme={self.scheme!r}, username={self.username!r})"

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def resolve(self, repository: str, reference: str) -> ResolvedImage:
        """Resolve a tag or digest to the manifest digest, verified against the manifest bytes."""
        if not _REPO_RE.match(repository):
            raise ValueError(f"invalid repository name {repository!r}")
        by_digest = ":" in reference
        if not (_DIGEST_RE.match(reference) if by_digest else _TAG_RE.match(reference)):
            raise ValueError(f"invalid tag or digest {reference!r}")
        what = f"{self.registry}/{repository}{'@' if by_digest else ':'}{reference}"

        scope = f"repository:{repository}:pull"
        # GET, not HEAD: we need the bytes to check the digest, and some registries omit it on HEAD.
        resp = self._get(f"/v2/{repository}/manifests/{reference}", scope, what)
        if resp.status_code != 200:
            self._raise_for(resp, what, repository, scope)
        body = resp.content
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip() or _body_media_type(body)
        if media_type in _SCHEMA1:
            raise RegistryError(f"{what}: registry served a schema1 manifest, whose digest is not stable",
                                registry=self.registry)
        computed = _digest_of(body, reference.split(":", 1)[0] if by_digest else "sha256")
        reported = resp.headers.get("Docker-Content-Digest")
        if reported and _DIGEST_RE.match(reported) and _digest_of(body, reported.split(":", 1)[0]) != reported:
            raise DigestMismatch(f"{what}: registry reported Docker-Content-Digest {reported} but the manifest "
                                 f"bytes hash to {_digest_of(body, reported.split(':', 1)[0])}",
                                 registry=self.registry)
        if by_digest and computed != reference:
            raise DigestMismatch(f"{what}: manifest bytes hash to {computed}, not the requested digest",
                                 registry=self.registry)
        return ResolvedImage(repository=f"{self.registry}/{repository}", tag=None if by_digest else reference,
                             digest=computed, media_type=media_type, size=len(body))

    # --- artifacts next to an image (signatures, attestations) ------------------------------

    def fetch_manifest(self, repository: str, reference: str) -> tuple[bytes, str] | None:
        """(manifest bytes, media type) of a tag or digest, None when there is none; a manifest
        asked for by digest must hash to it."""
        if not _REPO_RE.match(repository):
            raise ValueError(f"invalid repository name {repository!r}")
        scope = f"repository:{repository}:pull"
        what = f"{self.registry}/{repository}:{reference}"
        resp = self._get(f"/v2/{repository}/manifests/{reference}", scope, what)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            self._raise_for(resp, what, repository, scope)
        if _DIGEST_RE.match(reference) and _digest_of(resp.content, reference.split(":", 1)[0]) != reference:
            raise DigestMismatch(f"{what}: manifest bytes do not hash to the requested digest", registry=self.registry)
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip() or _body_media_type(resp.content)
        return resp.content, media_type

    def fetch_blob(self, repository: str, digest: str, *, max_bytes: int = 4 * 1024 * 1024) -> bytes:
        """A blob's bytes, checked against its digest (signature payloads, DSSE envelopes: small)."""
        if not _REPO_RE.match(repository) or not _DIGEST_RE.match(digest):
            raise ValueError(f"invalid blob reference {repository}@{digest}")
        scope = f"repository:{repository}:pull"
        what = f"{self.registry}/{repository}@{digest} (blob)"
        resp = self._get(f"/v2/{repository}/blobs/{digest}", scope, what)
        if resp.status_code != 200:
            self._raise_for(resp, what, repository, scope)
        if len(resp.content) > max_bytes:
            raise RegistryError(f"{what}: larger than {max_bytes} bytes", registry=self.registry)
        if _digest_of(resp.content, digest.split(":", 1)[0]) != digest:
            raise DigestMismatch(f"{what}: blob bytes do not hash to its digest", registry=self.registry)
        return resp.content

    def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        """The OCI 1.1 referrers of a manifest (descriptors), or None when the registry has no
        referrers API (Distribution 2.x answers 404): callers then use the tag scheme."""
        scope = f"repository:{repository}:pull"
        what = f"{self.registry}/{repository}@{digest} (referrers)"
        resp = self._get(f"/v2/{repository}/referrers/{digest}", scope, what)
        if resp.status_code in (404, 405) or "json" not in resp.headers.get("Content-Type", ""):
            return None
        if resp.status_code != 200:
            self._raise_for(resp, what, repository, scope)
        try:
            index = json.loads(resp.content)
        except ValueError:
            return None
        manifests = index.get("manifests") if isinstance(index, dict) else None
        return [m for m in manifests if isinstance(m, dict)] if isinstance(manifests, list) else None

    # --- HTTP and auth -------------------------------------------------------------------

    def _get(self, path: str, scope: str, what: str) -> httpx.Response:
        """GET with the manifest Accept list, answering one 401 challenge; auth failures raise."""
        headers = {"Accept": MANIFEST_ACCEPT}
        resp = self._send(path, self._cached_auth(scope), headers)
        if resp.status_code == 401:
            challenge = parse_www_authenticate(resp.headers.get("WWW-Authenticate", ""))
            auth = self._authenticate(challenge, scope, what)
            resp = self._send(path, auth, headers)
            if resp.status_code == 401:
                reason = "rejected the credentials" if self.username else "requires credentials and none are configured"
                raise RegistryUnauthorized(self._denied(what, f"{reason} (401)"), registry=self.registry)
        if resp.status_code == 403:
            raise RegistryUnauthorized(self._denied(what, "denied access (403)"), registry=self.registry)
        return resp

    def _raise_for(self, resp: httpx.Response, what: str, repository: str, scope: str) -> NoReturn:
        codes, detail = _errors(resp)
        if resp.status_code == 404 or codes & {"NAME_UNKNOWN", "MANIFEST_UNKNOWN"}:
            if "NAME_UNKNOWN" not in codes:
                # Distribution answers MANIFEST_UNKNOWN for a missing repository too; the tag list tells them apart.
                probe = self._get(f"/v2/{repository}/tags/list?n=1", scope, what)
                if probe.status_code == 404:
                    codes, detail = _errors(probe)
                    codes.add("NAME_UNKNOWN")
            if "NAME_UNKNOWN" in codes:
                message = f"repository {repository!r} does not exist on {self.registry}"
            else:
                message = f"repository {repository!r} has no such tag or manifest"
            raise UnknownRepositoryOrTag(f"{what}: {message} ({detail or f'HTTP {resp.status_code}'})",
                                         registry=self.registry)
        raise RegistryError(f"{what}: registry answered HTTP {resp.status_code}" + (f" ({detail})" if detail else ""),
                            registry=self.registry)

    def _send(self, path: str, auth: str | None, headers: dict[str, str]) -> httpx.Response:
        if auth:
            headers = {**headers, "Authorization": auth}
        try:
            return self._http.get(self._base + path, headers=headers)
        except httpx.TransportError as exc:
            # `from None`: the httpx exception carries the request, Authorization header included.
            raise RegistryUnreachable(f"cannot reach registry {self.registry} over {self.scheme}: "
                                      f"{_reason(exc)}", registry=self.registry) from None

    def _cached_auth(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token and token[1] > time.monotonic():
            return f"Bearer {token[0]}"
        if self._basic_preferred:
            return self._basic()
        return None

    def _basic(self) -> str | None:
        if self.username is None:
            return None
        raw = f"{self.username}:{self.__password or ''}".encode()
        return f"Basic {base64.b64encode(raw).decode()}"

    def _authenticate(self, challenge: Challenge | None, scope: str, what: str) -> str:
        if challenge is None:
            raise RegistryUnauthorized(self._denied(what, "answered 401 without a WWW-Authenticate challenge"),
                                       registry=self.registry)
        if challenge.scheme == "basic":
            basic = self._basic()
            if basic is None:
                raise RegistryUnauthorized(self._denied(what, "requires credentials and none are configured"),
                                           registry=self.registry)
            self._basic_preferred = True
            return basic
        if challenge.scheme == "bearer":
            return f"Bearer {self._fetch_token(challenge, scope, what)}"
        raise RegistryUnauthorized(self._denied(what, f"asks for unsupported auth scheme {challenge.scheme!r}"),
                                   registry=self.registry)

    def _fetch_token(self, challenge: Challenge, scope: str, what: str) -> str:
        realm = challenge.params.get("realm")
        if not realm:
            raise RegistryUnauthorized(f"{what}: registry sent a Bearer challenge without realm",
                                       registry=self.registry)
        params = {"scope": challenge.params.get("scope") or scope}
        if challenge.params.get("service"):
            params["service"] = challenge.params["service"]
        basic = self._basic()
        realm_parts = urllib.parse.urlsplit(realm)
        realm_host = realm_parts.netloc or realm
        if basic and self.scheme == "https" and realm_parts.scheme != "https":
            raise RegistryError(f"{what}: refusing to send credentials to token service {realm_host} over "
                                f"{realm_parts.scheme or 'an unknown scheme'} for an https registry",
                                registry=self.registry)
        try:
            resp = self._http.get(realm, params=params, headers={"Authorization": basic} if basic else {})
        except httpx.TransportError as exc:
            raise RegistryUnreachable(f"cannot reach token service {realm_host} for registry {self.registry}: "
                                      f"{_reason(exc)}", registry=self.registry) from None
        if resp.status_code in (401, 403):
            reason = "rejected the credentials" if basic else "requires credentials and none are configured"
            raise RegistryUnauthorized(self._denied(what, f"{reason} at its token service {realm_host} "
                                                    f"(HTTP {resp.status_code})"), registry=self.registry)
        try:
            data = resp.raise_for_status().json()
            token = data.get("token") or data.get("access_token")
        except (httpx.HTTPStatusError, ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{what}: token service {realm_host} returned HTTP "
                                f"{resp.status_code} without a token", registry=self.registry)
        expires_in = data.get("expires_in") if isinstance(data.get("expires_in"), (int, float)) else 60
        self._tokens[scope] = (token, time.monotonic() + max(float(expires_in) - _TOKEN_MARGIN_S, 0.0))
        return token

    def _denied(self, what: str, reason: str) -> str:
        who = f"as user {self.username!r}" if self.username else "anonymously"
        return (f"{what}: registry {self.registry} {reason} ({who}); credentials come from the "
                "Airflow Connection configured for this registry")


def _errors(resp: httpx.Response) -> tuple[set[str], str]:
    """Codes and a readable summary of the registry's `{"errors": [...]}` body, if any."""
    try:
        errors = resp.json().get("errors") or []
    except (ValueError, AttributeError):
        return set(), ""
    codes = {str(e.get("code")) for e in errors if isinstance(e, dict) and e.get("code")}
    detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
    return codes, detail


def _digest_of(body: bytes, algorithm: str) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, body).hexdigest()}"


def _body_media_type(body: bytes) -> str:
    try:
        value = json.loads(body).get("mediaType")
    except (ValueError, AttributeError):
        return ""
    return value if isinstance(value, str) else ""


def _reason(exc: httpx.TransportError) -> str:
    text = str(exc) or type(exc).__name__
    reason = f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text
    if "WRONG_VERSION_NUMBER" in text:  # the classic symptom of https against a plain-HTTP registry
        reason += " (does the registry speak plain HTTP? then use scheme http)"
    return reason
