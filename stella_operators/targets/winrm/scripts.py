"""PowerShell scripts of the winrm target, built from quoted arguments only (no I/O).

Every value that reaches a script (paths, service names, image references, the sticker) goes
through `ps_quote`: a PowerShell single-quoted string, where nothing is expanded ($, backtick,
subexpressions) and a quote is written twice. Scripts stop at the first error
($ErrorActionPreference = 'Stop'); native commands (docker) are checked through $LASTEXITCODE.

Layout on the host, per component: `<root>\\<app>\\<component>\\<digest hex[:12]>\\` holds one
version (the image's `image_path` copied out with docker, plus stella.digest and
stella.version.json); the `current` junction beside them is what the Windows service runs;
`previous.txt` names the version the last switch replaced (the backup).
"""

from __future__ import annotations

HEADER = "$ErrorActionPreference = 'Stop'\n$ProgressPreference = 'SilentlyContinue'\n"
DIGEST_FILE = "stella.digest"
STICKER_FILE = "stella.version.json"
MARK = "--- "


def ps_quote(value: str) -> str:
    """A PowerShell single-quoted string literal for `value` (taken literally, whatever it holds)."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError("a PowerShell argument cannot hold a line break or NUL")
    # PowerShell also treats the typographic quotes U+2018/2019/201A/201B as single quotes.
    for q in ("'", "\u2018", "\u2019", "\u201a", "\u201b"):
        value = value.replace(q, q + q)
    return f"'{value}'"


def version_name(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def component_dir(root: str, app: str, component: str) -> str:
    return "\\".join((root.rstrip("\\"), app, component))


def facts_script(root: str, app: str, services: dict[str, str]) -> str:
    """Per component: a marker line, the service status (nothing if no such service), the running
    digest and the sticker (nothing if no version was switched in yet)."""
    lines = [HEADER]
    for component, service in sorted(services.items()):
        current = component_dir(root, app, component) + "\\current"
        lines.append(f"Write-Output {ps_quote(MARK + component)}")
        lines.append(f"(Get-Service -Name {ps_quote(service)} -ErrorAction SilentlyContinue).Status")
        for name in (DIGEST_FILE, STICKER_FILE):
            path = ps_quote(f"{current}\\{name}")
            lines.append(f"if (Test-Path -LiteralPath {path}) {{ Get-Content -LiteralPath {path} -Raw }}")
    return "\n".join(lines) + "\n"


def fetch_script(folder: str, ref: str, digest: str, image_path: str, sticker_json: str, scratch: str) -> str:
    """Copy `image_path` out of the image `ref` (pulled by digest, so docker verifies it) into a
    fresh `folder`, and write the digest and sticker beside it. The service is not touched."""
    f, r, s = ps_quote(folder), ps_quote(ref), ps_quote(scratch)
    return HEADER + "\n".join([
        f"if (Test-Path -LiteralPath {f}) {{ Remove-Item -LiteralPath {f} -Recurse -Force }}",
        f"docker pull {r}",
        f"if ($LASTEXITCODE -ne 0) {{ throw {ps_quote('docker pull failed: ' + ref)} }}",
        f"docker rm -f {s}",
        f"docker create --name {s} {r}",
        f"if ($LASTEXITCODE -ne 0) {{ throw {ps_quote('docker create failed: ' + ref)} }}",
        f"docker cp {ps_quote(scratch + ':' + image_path)} {f}",
        f"if ($LASTEXITCODE -ne 0) {{ docker rm -f {s}; throw {ps_quote('docker cp failed: ' + image_path)} }}",
        f"docker rm -f {s}",
        f"Set-Content -LiteralPath {ps_quote(folder + chr(92) + DIGEST_FILE)} -Value {ps_quote(digest)} "
        "-NoNewline -Encoding ASCII",
        f"Set-Content -LiteralPath {ps_quote(folder + chr(92) + STICKER_FILE)} -Value {ps_quote(sticker_json)} "
        "-NoNewline -Encoding UTF8",
    ]) + "\n"


def switch_script(base: str, service: str, new: str | None, previous: str | None, start_timeout_s: float) -> str:
    """Stop the service, remember `previous` (the backup pointer), point `current` at `new` and
    start the service, waiting until it runs. `new` None: leave the service stopped, no version."""
    svc = ps_quote(service)
    current = ps_quote(base + "\\current")
    lines = [f"Stop-Service -Name {svc} -Force"]
    if previous is not None:
        lines.append(f"Set-Content -LiteralPath {ps_quote(base + chr(92) + 'previous.txt')} "
                     f"-Value {ps_quote(previous)} -NoNewline -Encoding ASCII")
    lines.append(f"if (Test-Path -LiteralPath {current}) {{ [System.IO.Directory]::Delete({current}) }}")
    if new is not None:
        wait = f"[TimeSpan]::FromSeconds({int(start_timeout_s)})"
        lines += [f"New-Item -ItemType Junction -Path {current} -Target {ps_quote(base + chr(92) + new)} | Out-Null",
                  f"Start-Service -Name {svc}",
                  f"(Get-Service -Name {svc}).WaitForStatus('Running', {wait})"]
    return HEADER + "\n".join(lines) + "\n"


def remove_script(folders: list[str]) -> str:
    """Remove version folders (never a junction: those are switched, not removed)."""
    return HEADER + "\n".join(
        f"if (Test-Path -LiteralPath {ps_quote(f)}) {{ Remove-Item -LiteralPath {ps_quote(f)} -Recurse -Force }}"
        for f in folders) + "\n"


def list_script(base: str) -> str:
    b = ps_quote(base)
    return HEADER + f"if (Test-Path -LiteralPath {b}) {{ Get-ChildItem -LiteralPath {b} -Directory -Name }}\n"
