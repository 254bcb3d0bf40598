"""A fake Windows host behind WS-Management (WinRM): the requests pywinrm sends, on a real port.

NOT Windows and NOT WinRM: written from the WS-Management shell protocol ([MS-WSMV]: Create
shell, Command, Receive, Signal, Delete) with Basic auth over plaintext HTTP, and a simulated
PowerShell that understands only the statements the winrm target's scripts use (anything else
fails as PowerShell does: "The term ... is not recognized"). Single-quoted strings follow
PowerShell's rule ('' is a quote; nothing inside is expanded), so quoting bugs show.

The simulated host has files (path -> bytes), directory junctions, Windows services (name ->
Running/Stopped, each running the folder its `current` junction points at) and a docker image
store (ref -> files). A service whose folder holds a file named CRASH does not start.
"""

from __future__ import annotations

import base64
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from devstack.registry import free_port

NS = {"s": "http://www.w3.org/2003/05/soap-envelope", "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
      "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
      "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"}
ACTIONS = {
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create": "create",
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Command": "command",
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive": "receive",
    "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal": "signal",
    "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete": "delete",
}
DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"


class PsError(Exception):
    """A terminating PowerShell error (what `throw` or -ErrorAction Stop raises)."""


@dataclass
class WindowsHost:
    files: dict[str, bytes] = field(default_factory=dict)       # lower-cased path -> content
    dirs: set[str] = field(default_factory=set)                  # lower-cased paths
    junctions: dict[str, str] = field(default_factory=dict)      # lower-cased link -> target (as written)
    services: dict[str, str] = field(default_factory=dict)       # name -> Running | Stopped
    service_folders: dict[str, str] = field(default_factory=dict)  # name -> folder its binary lives in
    images: dict[str, dict[str, bytes]] = field(default_factory=dict)  # ref -> {relative path: content}
    containers: dict[str, str] = field(default_factory=dict)     # name -> ref
    scripts: list[str] = field(default_factory=list)             # every script run, decoded
    statements: list[str] = field(default_factory=list)          # every statement run

    def mkdir(self, path: str) -> None:
        """Make a folder and its parents (set-up of the simulated host)."""
        parts = path.rstrip("\\").split("\\")
        for i in range(1, len(parts) + 1):
            self.dirs.add("\\".join(parts[:i]).lower())

    def add_service(self, name: str, folder: str, status: str = "Stopped") -> None:
        """An installed Windows service whose binary lives in `folder` (usually a `current` junction)."""
        self.services[name] = status
        self.service_folders[name] = folder

    def resolve(self, path: str) -> str:
        """Follow junctions (a path under a link is a path under its target)."""
        p = path.rstrip("\\")
        for link, target in self.junctions.items():
            if p.lower() == link or p.lower().startswith(link + "\\"):
                return self.resolve(target + p[len(link):])
        return p

    def exists(self, path: str) -> bool:
        p = path.rstrip("\\").lower()
        r = self.resolve(path).lower()
        return p in self.junctions or r in self.dirs or r in self.files

    def service_running_folder(self, name: str) -> str:
        return self.resolve(self.service_folders[name])


TOKEN = re.compile(r"'(?:[^']|'')*'|\(|\)|\{|\}|;|\||,|\n|[^\s(){};|,']+")


def _tokens(script: str) -> list[str]:
    return TOKEN.findall(script.replace("\r\n", "\n"))


def _is_str(tok: str) -> bool:
    return tok.startswith("'")


def _unquote(tok: str) -> str:
    if not _is_str(tok):
        raise PsError(f"expected a single-quoted string, got {tok}")
    return tok[1:-1].replace("''", "'")


def _statements(tokens: list[str]) -> list[list[str]]:
    """Split at newlines and ; outside braces."""
    out: list[list[str]] = []
    cur: list[str] = []
    depth = 0
    for tok in tokens:
        if tok == "{":
            depth += 1
        elif tok == "}":
            depth -= 1
        if tok in ("\n", ";") and depth == 0:
            if cur:
                out.append(cur)
            cur = []
        elif tok != "\n" or depth:
            cur.append(tok)
    if cur:
        out.append(cur)
    return out


def _params(tokens: list[str]) -> dict[str, str | bool]:
    """-Name 'value' pairs and -Switch flags (bare words as values too)."""
    out: dict[str, str | bool] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.startswith("-") and not _is_str(tok):
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if nxt is not None and (_is_str(nxt) or not nxt.startswith("-")) and nxt not in ("|",):
                out[tok.lower()] = _unquote(nxt) if _is_str(nxt) else nxt
                i += 2
                continue
            out[tok.lower()] = True
        i += 1
    return out


class PowerShell:
    """Runs one script on the host; returns (stdout, stderr message, exit code)."""

    def __init__(self, host: WindowsHost):
        self.host = host
        self.out: list[str] = []
        self.last_exit = 0

    def run(self, script: str) -> tuple[str, str, int]:
        self.host.scripts.append(script)
        try:
            for st in _statements(_tokens(script)):
                self._stmt(st)
        except PsError as exc:
            return "\r\n".join(self.out), str(exc), 1
        return "\r\n".join(self.out) + ("\r\n" if self.out else ""), "", 0

    def _stmt(self, t: list[str]) -> None:
        self.host.statements.append(" ".join(t))
        h = self.host
        head = t[0]
        if head.startswith("$") and len(t) == 3 and t[1] == "=":
            return  # preference variables
        if head.lower() == "if":
            cond_tokens, body = self._split_if(t)
            if self._cond(cond_tokens):
                for st in _statements(body):
                    self._stmt(st)
            return
        if head == "throw":
            raise PsError(_unquote(t[1]))
        p = _params(t[1:])
        if t[-2:] == ["|", "Out-Null"]:
            p = _params(t[1:-2])
        name = head.lower()
        if name == "write-output":
            self.out.append(_unquote(t[1]))
        elif name == "get-content":
            path = str(p["-literalpath"])
            r = h.resolve(path).lower()
            if r not in h.files:
                raise PsError(f"Cannot find path '{path}' because it does not exist.")
            self.out.append(h.files[r].decode("utf-8"))
        elif name == "set-content":
            path = str(p["-literalpath"])
            parent = h.resolve(path).rsplit("\\", 1)[0].lower()
            if parent not in h.dirs:
                raise PsError(f"Could not find a part of the path '{path}'.")
            h.files[h.resolve(path).lower()] = str(p["-value"]).encode("utf-8")
        elif name == "remove-item":
            self._remove(str(p["-literalpath"]))
        elif name == "new-item" and p.get("-itemtype") == "Junction":
            link, target = str(p["-path"]), str(p["-target"])
            if h.resolve(target).lower() not in h.dirs:
                raise PsError(f"Cannot find path '{target}' because it does not exist.")
            if h.exists(link):
                raise PsError(f"An item with the specified name {link} already exists.")
            h.junctions[link.rstrip("\\").lower()] = target
        elif name == "get-childitem":
            base = h.resolve(str(p["-literalpath"])).lower()
            names = sorted({d[len(base) + 1:].split("\\")[0] for d in h.dirs if d.startswith(base + "\\")}
                           | {j[len(base) + 1:] for j in h.junctions if j.startswith(base + "\\")})
            self.out.extend(names)
        elif head == "[System.IO.Directory]::Delete(" or head.startswith("[System.IO.Directory]::Delete"):
            link = _unquote(next(x for x in t if _is_str(x))).rstrip("\\").lower()
            if link in h.junctions:
                del h.junctions[link]
            else:
                raise PsError(f"The directory is not empty. : '{link}'")
        elif name in ("stop-service", "start-service"):
            self._service(name, str(p["-name"]))
        elif head == "(Get-Service" or head == "(":
            self._get_service(t)
        elif name == "docker":
            self._docker(t[1:])
        else:
            raise PsError(f"The term '{head}' is not recognized as the name of a cmdlet, function, script file, "
                          "or operable program.")

    @staticmethod
    def _split_if(t: list[str]) -> tuple[list[str], list[str]]:
        depth, i = 0, 1
        start = i
        while True:  # the condition: from the first ( to its matching )
            if t[i] == "(":
                depth += 1
            elif t[i] == ")":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        cond = t[start + 1:i]
        open_brace = t.index("{", i)
        return cond, t[open_brace + 1:len(t) - 1 - t[::-1].index("}")]

    def _cond(self, c: list[str]) -> bool:
        if c[:1] == ["Test-Path"]:
            return self.host.exists(str(_params(c[1:])["-literalpath"]))
        if c == ["$LASTEXITCODE", "-ne", "0"]:
            return self.last_exit != 0
        raise PsError(f"unsupported condition: {' '.join(c)}")

    def _remove(self, path: str) -> None:
        h = self.host
        key = path.rstrip("\\").lower()
        if key in h.junctions:  # Remove-Item -Recurse on a junction would delete the target's files too
            target = h.resolve(path).lower()
            del h.junctions[key]
            h.files = {k: v for k, v in h.files.items() if not k.startswith(target + "\\")}
            return
        r = h.resolve(path).lower()
        if r not in h.dirs and r not in h.files:
            raise PsError(f"Cannot find path '{path}' because it does not exist.")
        h.files = {k: v for k, v in h.files.items() if k != r and not k.startswith(r + "\\")}
        h.dirs = {d for d in h.dirs if d != r and not d.startswith(r + "\\")}

    def _service(self, verb: str, name: str) -> None:
        h = self.host
        if name not in h.services:
            raise PsError(f"Cannot find any service with service name '{name}'.")
        if verb == "stop-service":
            h.services[name] = "Stopped"
            return
        folder = h.service_running_folder(name).lower()
        if folder not in h.dirs or f"{folder}\\crash" in h.files:
            h.services[name] = "Stopped"
            raise PsError(f"Service '{name} ({name})' cannot be started due to the following error: Cannot start "
                          f"service {name} on computer '.'.")
        h.services[name] = "Running"

    def _get_service(self, t: list[str]) -> None:
        # (Get-Service -Name 'x' [-ErrorAction SilentlyContinue]).Status
        # (Get-Service -Name 'x').WaitForStatus('Running', [TimeSpan]::FromSeconds(n))
        h = self.host
        close = t.index(")")
        p = _params(t[1:close] if t[0] == "(" else [*t[1:close]])
        name = str(p["-name"])
        rest = t[close + 1:]
        if name not in h.services:
            if p.get("-erroraction") == "SilentlyContinue":
                return
            raise PsError(f"Cannot find any service with service name '{name}'.")
        if rest == [".Status"]:
            self.out.append(h.services[name])
        elif rest and rest[0] == ".WaitForStatus":
            if h.services[name] != _unquote(rest[2]):
                raise PsError('Exception calling "WaitForStatus" with "2" argument(s): "Time out has expired and the '
                              'operation has not been completed."')
        else:
            raise PsError(f"unsupported Get-Service use: {' '.join(t)}")

    def _docker(self, args: list[str]) -> None:
        h = self.host
        words = [_unquote(a) if _is_str(a) else a for a in args]
        self.last_exit = 0
        if words[0] == "pull" and len(words) == 2:
            if words[1] not in h.images:
                self.last_exit = 1
                return
            self.out.append(f"{words[1].split('@')[-1]}: Pulling from {words[1].split('@')[0]}")
        elif words[:2] == ["create", "--name"] and len(words) == 4:
            if words[3] not in h.images or words[2] in h.containers:
                self.last_exit = 1
                return
            h.containers[words[2]] = words[3]
            self.out.append(uuid.uuid4().hex)
        elif words[0] == "cp" and len(words) == 3:
            cname, _, src = words[1].partition(":")
            if cname not in h.containers:
                self.last_exit = 1
                return
            dest = h.resolve(words[2]).lower()
            h.dirs.add(dest)
            for rel, content in h.images[h.containers[cname]].items():
                h.files[f"{dest}\\{rel.lower()}"] = content
        elif words[:2] == ["rm", "-f"] and len(words) == 3:
            h.containers.pop(words[2], None)
            self.out.append(words[2])
        else:
            self.last_exit = 125


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return (f'<s:Envelope xmlns:s="{NS["s"]}" xmlns:a="{NS["a"]}" xmlns:w="{NS["w"]}" xmlns:rsp="{NS["rsp"]}">'
            f"<s:Header><a:Action>{action}</a:Action><a:RelatesTo>{relates_to}</a:RelatesTo></s:Header>"
            f"<s:Body>{body}</s:Body></s:Envelope>").encode()


def _clixml_error(message: str) -> bytes:
    text = escape(message).replace("\n", "_x000A_")
    return ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
            f'<S S="Error">{text}_x000D__x000A_</S></Objs>').encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def _reply(self, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/soap+xml;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        expected = "Basic " + base64.b64encode(f"{self.server.user}:{self.server.password}".encode()).decode()
        if self.path != "/wsman":
            self._reply(404, b"")
            return
        if self.headers.get("Authorization") != expected:
            self._reply(401, b"", {"WWW-Authenticate": 'Basic realm="WSMAN"'})
            return
        root = ET.fromstring(body)
        action = ACTIONS.get(root.findtext("s:Header/a:Action", "", NS))
        msg_id = root.findtext("s:Header/a:MessageID", "", NS)
        shell = root.find("s:Header/w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        shell_id = shell.text if shell is not None else None
        with self.server.lock:
            out = self._act(action, root, shell_id)
        if out is None:
            self._reply(400, b"")
            return
        reply_action, reply_body = out
        self._reply(200, _envelope(reply_action, msg_id, reply_body))

    def _act(self, action: str | None, root: ET.Element, shell_id: str | None) -> tuple[str, str] | None:
        srv = self.server
        rsp = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
        if action == "create":
            sid = str(uuid.uuid4()).upper()
            srv.shells[sid] = {}
            return ("http://schemas.xmlsoap.org/ws/2004/09/transfer/CreateResponse",
                    f'<x:ResourceCreated xmlns:x="http://schemas.xmlsoap.org/ws/2004/09/transfer">'
                    f"<a:Address>http://127.0.0.1:{srv.server_port}/wsman</a:Address><a:ReferenceParameters>"
                    f"<w:ResourceURI>{rsp}/cmd</w:ResourceURI><w:SelectorSet><w:Selector Name=\"ShellId\">{sid}"
                    f"</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>"
                    f"<rsp:Shell><rsp:ShellId>{sid}</rsp:ShellId></rsp:Shell>")
        if shell_id not in srv.shells:
            return None
        if action == "command":
            command = root.findtext("s:Body/rsp:CommandLine/rsp:Command", "", NS)
            cid = str(uuid.uuid4()).upper()
            prog, _, rest = command.partition(" ")
            flag, _, encoded = rest.partition(" ")
            if prog.lower() == "powershell" and flag.lower() == "-encodedcommand":
                script = base64.b64decode(encoded).decode("utf-16-le")
                stdout, error, code = PowerShell(srv.host).run(script)
                stderr = _clixml_error(error) if error else b""
            else:
                stdout, stderr, code = "", f"'{prog}' is not recognized".encode(), 1
            srv.shells[shell_id][cid] = (stdout.encode("utf-8"), stderr, code)
            return (f"{rsp}/CommandResponse",
                    f"<rsp:CommandResponse><rsp:CommandId>{cid}</rsp:CommandId></rsp:CommandResponse>")
        if action == "receive":
            cid = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
            command_id = cid.get("CommandId") if cid is not None else None
            if command_id not in srv.shells[shell_id]:
                return None
            stdout, stderr, code = srv.shells[shell_id][command_id]
            streams = "".join(f'<rsp:Stream Name="{n}" CommandId="{command_id}">{base64.b64encode(d).decode()}'
                              "</rsp:Stream>"
                              for n, d in (("stdout", stdout), ("stderr", stderr)) if d)
            return (f"{rsp}/ReceiveResponse",
                    f"<rsp:ReceiveResponse>{streams}<rsp:CommandState CommandId=\"{command_id}\" State=\"{DONE}\">"
                    f"<rsp:ExitCode>{code}</rsp:ExitCode></rsp:CommandState></rsp:ReceiveResponse>")
        if action == "signal":
            return f"{rsp}/SignalResponse", "<rsp:SignalResponse/>"
        if action == "delete":
            del srv.shells[shell_id]
            return "http://schemas.xmlsoap.org/ws/2004/09/transfer/DeleteResponse", ""
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, host: WindowsHost, user: str, password: str):
        super().__init__(("127.0.0.1", port), _Handler)
        self.host = host
        self.user = user
        self.password = password
        self.shells: dict[str, dict[str, tuple[bytes, bytes, int]]] = {}
        self.lock = threading.Lock()


class FakeWinRM:
    """`FakeWinRM(user, password)`; `.host` is the simulated Windows host; `.stop()`."""

    def __init__(self, user: str = "Administrator", password: str = "P@ssw0rd!"):
        self.host = WindowsHost()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/wsman"
        self._server = _Server(self.port, self.host, user, password)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-winrm", daemon=True)
        self._thread.start()

    @property
    def open_shells(self) -> int:
        return len(self._server.shells)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
