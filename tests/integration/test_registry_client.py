"""RegistryClient against real distribution 2.8 registries (plain, htpasswd and Bearer token auth)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack.registry import RegistryServer, free_port
from stella_operators.registry import (
    DigestMismatch,
    RegistryClient,
    RegistryError,
    RegistryUnauthorized,
    RegistryUnreachable,
    UnknownRepositoryOrTag,
    parse_www_authenticate,
)
from tests.fixtures.registry_peer import REGISTRY_PASSWORD, REGISTRY_USER, ImageFactory

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def _client(server: RegistryServer, **kwargs: object) -> RegistryClient:
    return RegistryClient.from_url(server.url, timeout=5.0, **kwargs)


@pytest.mark.parametrize(("fmt", "media_type"), [("v2s2", DOCKER_V2), ("oci", OCI_MANIFEST)])
def test_resolve_tag_returns_pushed_digest(
    registry: RegistryServer, image_factory: ImageFactory, fmt: str, media_type: str
) -> None:
    pushed = image_factory("stella/resolve", f"v1-{fmt}", fmt=fmt, files={"/version": f"{fmt}\n"})
    with _client(registry) as client:
        resolved = client.resolve("stella/resolve", f"v1-{fmt}")
    assert resolved.digest == pushed
    assert resolved.media_type == media_type
    assert resolved.repository == f"{registry.host_port}/stella/resolve"
    assert resolved.tag == f"v1-{fmt}"
    assert resolved.size > 0
    assert resolved.pinned == f"{registry.host_port}/stella/resolve@{pushed}"


def test_digest_reference_round_trip(registry: RegistryServer, image_factory: ImageFactory) -> None:
    pushed = image_factory("stella/bydigest", "v1", files={"/version": "bydigest\n"})
    with _client(registry) as client:
        by_tag = client.resolve("stella/bydigest", "v1")
        by_digest = client.resolve("stella/bydigest", by_tag.digest)
    assert by_digest.digest == by_tag.digest == pushed
    assert by_digest.tag is None
    assert by_digest.size == by_tag.size and by_digest.media_type == by_tag.media_type


def test_unknown_repository_and_tag(registry: RegistryServer, image_factory: ImageFactory) -> None:
    image_factory("stella/known", "v1", files={"/version": "known\n"})
    with _client(registry) as client:
        with pytest.raises(UnknownRepositoryOrTag) as repo_err:
            client.resolve("stella/no-such-repo", "v1")
        with pytest.raises(UnknownRepositoryOrTag) as tag_err:
            client.resolve("stella/known", "no-such-tag")
        with pytest.raises(UnknownRepositoryOrTag) as digest_err:
            client.resolve("stella/known", "sha256:" + "0" * 64)
    assert f"{registry.host_port}/stella/no-such-repo:v1" in str(repo_err.value)
    assert "NAME_UNKNOWN" in str(repo_err.value) and "does not exist" in str(repo_err.value)
    assert f"{registry.host_port}/stella/known:no-such-tag" in str(tag_err.value)
    assert "MANIFEST_UNKNOWN" in str(tag_err.value) and "no such tag" in str(tag_err.value)
    assert "@sha256:000" in str(digest_err.value)


def test_invalid_names_are_rejected_before_any_request() -> None:
    client = RegistryClient("127.0.0.1:1", scheme="http")
    for repo, ref in [("Upper/Case", "v1"), ("ok", "bad tag"), ("ok", "sha256:short"), ("../x", "v1")]:
        with pytest.raises(ValueError):
            client.resolve(repo, ref)


def test_closed_port_is_unreachable_fast() -> None:
    port = free_port()  # nothing listens there
    started = time.monotonic()
    with RegistryClient(f"127.0.0.1:{port}", scheme="http", timeout=5.0) as client:
        with pytest.raises(RegistryUnreachable) as err:
            client.resolve("stella/app", "v1")
    assert time.monotonic() - started < 2.0
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "ConnectError" in str(err.value)


def test_silent_registry_times_out_as_unreachable() -> None:
    with socket.socket() as listener:  # accepts TCP but never answers HTTP
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        started = time.monotonic()
        with RegistryClient(f"127.0.0.1:{port}", scheme="http", timeout=0.5) as client:
            with pytest.raises(RegistryUnreachable) as err:
                client.resolve("stella/app", "v1")
    assert time.monotonic() - started < 3.0
    assert "Timeout" in str(err.value) and f"127.0.0.1:{port}" in str(err.value)


def test_basic_auth(registry_auth: RegistryServer, image_factory: ImageFactory) -> None:
    creds = (REGISTRY_USER, REGISTRY_PASSWORD)
    pushed = image_factory("stella/private", "v1", target=registry_auth, creds=creds, files={"/v": "basic\n"})

    with _client(registry_auth, username=REGISTRY_USER, password=REGISTRY_PASSWORD) as client:
        assert client.resolve("stella/private", "v1").digest == pushed
        assert client.resolve("stella/private", pushed).digest == pushed  # Basic reused preemptively
        assert REGISTRY_PASSWORD not in repr(client)
        with pytest.raises(UnknownRepositoryOrTag):
            client.resolve("stella/private", "nope")

    with _client(registry_auth) as anonymous, pytest.raises(RegistryUnauthorized) as no_creds:
        anonymous.resolve("stella/private", "v1")
    assert registry_auth.host_port in str(no_creds.value)
    assert "none are configured" in str(no_creds.value) and "Airflow Connection" in str(no_creds.value)

    with _client(registry_auth, username=REGISTRY_USER, password="wrong-" + REGISTRY_PASSWORD) as bad:
        with pytest.raises(RegistryUnauthorized) as wrong:
            bad.resolve("stella/private", "v1")
        assert "wrong-" not in repr(bad)
    message = str(wrong.value)
    assert "rejected the credentials" in message and "'ci'" in message and "Airflow Connection" in message
    assert REGISTRY_PASSWORD not in message and REGISTRY_PASSWORD not in repr(wrong.value)
    assert wrong.value.__cause__ is None


def test_bearer_token_auth_against_real_token_validation(
    registry_bearer: RegistryServer, image_factory: ImageFactory
) -> None:
    creds = (REGISTRY_USER, REGISTRY_PASSWORD)
    pushed = image_factory("stella/tokened", "v1", target=registry_bearer, creds=creds, fmt="oci",
                           files={"/v": "bearer\n"})
    token_server = registry_bearer.token_server
    assert token_server is not None

    with _client(registry_bearer, username=REGISTRY_USER, password=REGISTRY_PASSWORD) as client:
        issued_before = token_server.issued
        assert client.resolve("stella/tokened", "v1").digest == pushed
        assert client.resolve("stella/tokened", pushed).digest == pushed
        assert token_server.issued == issued_before + 1  # one token per scope, reused
        with pytest.raises(UnknownRepositoryOrTag):
            client.resolve("stella/other", "v1")
        assert token_server.issued == issued_before + 2  # new repository, new scope

    with _client(registry_bearer) as anonymous, pytest.raises(RegistryUnauthorized) as no_creds:
        anonymous.resolve("stella/tokened", "v1")
    assert "token service" in str(no_creds.value) and "Airflow Connection" in str(no_creds.value)

    with _client(registry_bearer, username=REGISTRY_USER, password="not-" + REGISTRY_PASSWORD) as bad:
        with pytest.raises(RegistryUnauthorized) as wrong:
            bad.resolve("stella/tokened", "v1")
    assert REGISTRY_PASSWORD not in str(wrong.value) and registry_bearer.host_port in str(wrong.value)


def test_parse_www_authenticate() -> None:
    c = parse_www_authenticate(
        'Bearer realm="https://auth.example.test/token",service="reg",scope="repository:a/b:pull,push"'
    )
    assert c is not None and c.scheme == "bearer"
    assert c.params == {"realm": "https://auth.example.test/token", "service": "reg",
                        "scope": "repository:a/b:pull,push"}
    basic = parse_www_authenticate('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic" and basic.params == {"realm": "Registry Realm"}
    assert parse_www_authenticate("") is None


def test_from_url() -> None:
    client = RegistryClient.from_url("http://127.0.0.1:5000")
    assert (client.registry, client.scheme) == ("127.0.0.1:5000", "http")
    assert RegistryClient.from_url("registry.example.test").scheme == "https"
    with pytest.raises(ValueError):
        RegistryClient.from_url("http://127.0.0.1:5000/some/path")


@pytest.fixture
def lying_registry() -> Iterator[str]:
    """Not a registry fake for the happy path: the one thing a real registry will not do is lie."""
    body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_V2}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", DOCKER_V2)
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(b"other").hexdigest())
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_digest_header_mismatch_is_an_error(lying_registry: str) -> None:
    with RegistryClient(lying_registry, scheme="http") as client, pytest.raises(DigestMismatch) as err:
        client.resolve("stella/app", "v1")
    assert isinstance(err.value, RegistryError)
    assert "Docker-Content-Digest" in str(err.value)


def test_bearer_registry_really_validates_tokens(registry_bearer: RegistryServer) -> None:
    import httpx

    resp = httpx.get(f"{registry_bearer.url}/v2/stella/tokened/manifests/v1",
                     headers={"Authorization": "Bearer not.a.jwt"}, timeout=5)
    assert resp.status_code == 401
