"""Start and stop a real OCI registry (distribution 2.8) for tests and demos."""

from __future__ import annotations

import base64
import datetime as dt
import errno
import json
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

REGISTRY_BINARY = "/usr/bin/docker-registry"
TOKEN_SERVICE = "stella-devstack-registry"
TOKEN_ISSUER = "stella-devstack-token-issuer"


class RegistryStartError(RuntimeError):
    """The registry could not be started (binary missing, port busy, crashed, too slow)."""


@dataclass
class TokenServer:
    """A tiny Bearer token issuer (docker token auth spec) running in a thread."""

    url: str
    users: dict[str, str]
    issued: int = 0
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@dataclass
class RegistryServer:
    """A running registry process owned by the caller; `stop()` ends it by pid."""

    host_port: str
    url: str
    pid: int
    workdir: Path
    token_server: TokenServer | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def stop(self, timeout: float = 5.0) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout)
        self._proc = None
        if self.token_server is not None:
            self.token_server.stop()


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a currently unused TCP port on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def start_registry(
    workdir: Path,
    host: str = "127.0.0.1",
    port: int = 5000,
    htpasswd_users: dict[str, str] | None = None,
    *,
    token_users: dict[str, str] | None = None,
    ready_timeout: float = 15.0,
) -> RegistryServer:
    """Start `docker-registry serve` with its own config/storage/log under `workdir`.

    `htpasswd_users` enables Basic auth; `token_users` enables Bearer token auth served by a
    thread-local token issuer whose signing certificate the registry trusts (mutually exclusive).
    """
    if htpasswd_users and token_users:
        raise ValueError("choose htpasswd_users or token_users, not both")
    if not os.access(REGISTRY_BINARY, os.X_OK):
        raise RegistryStartError(f"{REGISTRY_BINARY} not found (apt-get install docker-registry)")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _require_free(host, port)

    host_port = f"{host}:{port}"
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "formatter": "text"},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "storage")},
            "delete": {"enabled": True},
        },
        # An explicit secret avoids the "no HTTP secret" warning on every start.
        "http": {"addr": host_port, "secret": secrets.token_hex(16)},
    }
    token_server: TokenServer | None = None
    if htpasswd_users:
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(_htpasswd_lines(htpasswd_users))
        config["auth"] = {"htpasswd": {"realm": "stella-devstack", "path": str(htpasswd)}}
    if token_users:
        token_server, cert_path = _start_token_server(workdir, host, token_users)
        config["auth"] = {
            "token": {
                "realm": token_server.url,
                "service": TOKEN_SERVICE,
                "issuer": TOKEN_ISSUER,
                "rootcertbundle": str(cert_path),
            }
        }
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    log = open(workdir / "registry.log", "ab")
    try:
        # New session: a Ctrl-C in the test runner must not kill the registry before teardown.
        proc = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        log.close()
    (workdir / "registry.pid").write_text(f"{proc.pid}\n")
    server = RegistryServer(host_port, f"http://{host_port}", proc.pid, workdir, token_server, proc)
    try:
        _wait_ready(server, proc, ready_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _require_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR like the registry itself: TIME_WAIT leftovers are not "in use", listeners are.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise RegistryStartError(f"cannot start registry: {host}:{port} is already in use") from exc
            raise RegistryStartError(f"cannot start registry on {host}:{port}: {exc.strerror}") from exc


def _wait_ready(server: RegistryServer, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (server.workdir / "registry.log").read_text(errors="replace")[-2000:]
            if "address already in use" in tail:
                raise RegistryStartError(f"cannot start registry: {server.host_port} is already in use")
            raise RegistryStartError(f"registry exited with {proc.returncode}; log tail:\n{tail}")
        try:
            with urllib.request.urlopen(server.url + "/v2/", timeout=1) as resp:
                if resp.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # auth enabled: answering 401 still means it serves
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RegistryStartError(
        f"registry on {server.host_port} not ready after {timeout:.0f}s (see {server.workdir}/registry.log)"
    )


def _htpasswd_lines(users: dict[str, str]) -> str:
    import bcrypt  # only htpasswd registries need it

    # Cost 5 is the minimum Go accepts comfortably; test logins then cost ~1 ms, not ~250 ms.
    return "".join(
        f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=5)).decode()}\n"
        for user, pw in users.items()
    )


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _start_token_server(workdir: Path, host: str, users: dict[str, str]) -> tuple[TokenServer, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TOKEN_ISSUER)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    cert_path = workdir / "token-signer.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    # x5c lets distribution 2.8 verify the signer against rootcertbundle without libtrust key ids.
    header = {"typ": "JWT", "alg": "RS256",
              "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]}

    token_server = TokenServer(url="", users=dict(users))

    def issue(subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) >= 3:
                # Every authenticated user gets what it asks for: this issuer tests the protocol, not policy.
                access.append({"type": parts[0], "name": ":".join(parts[1:-1]), "actions": parts[-1].split(",")})
        t = int(time.time())
        claims = {"iss": TOKEN_ISSUER, "sub": subject, "aud": TOKEN_SERVICE, "exp": t + 300,
                  "nbf": t - 10, "iat": t, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(sig)}"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            user = _basic_user(self.headers.get("Authorization", ""), token_server.users)
            if user is None:
                self._send(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad or missing credentials"}]},
                           {"WWW-Authenticate": 'Basic realm="stella-devstack-token"'})
                return
            token = issue(user, query.get("scope", []))
            token_server.issued += 1
            self._send(200, {"token": token, "access_token": token, "expires_in": 300})

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep pytest output clean
            return

    httpd = ThreadingHTTPServer((host, 0), Handler)
    token_server.url = f"http://{host}:{httpd.server_address[1]}/token"
    token_server._server = httpd
    threading.Thread(target=httpd.serve_forever, name="devstack-token-server", daemon=True).start()
    return token_server, cert_path


def _basic_user(header: str, users: dict[str, str]) -> str | None:
    if not header.startswith("Basic "):
        return None
    try:
        user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
    except ValueError:
        return None
    return user if user in users and secrets.compare_digest(users[user], pw) else None
