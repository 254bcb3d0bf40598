"""The shell lines an `ssh` target runs on a host: built here from quoted arguments only. No I/O.

Layout under the target's base dir (one per app):

    <base>/releases/<deployment_id>/     one dir per deployment: artifacts, stella.version.json,
        .stella/<component>.env          STELLA_* + the component's env (mode 0600; sourced, never on a command line)
        .stella/previous                 what `current` pointed to before this deployment ('' = nothing)
        .stella/backup.tgz, backup.absent  backup_paths as they were at prepare
    <base>/current -> releases/<id>      switched atomically (rename of a new symlink)

Every value that reaches a command line passes through `shlex.quote` (paths, arguments, ids);
secrets only travel inside the env files (stdin of the upload), never as arguments.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath

from stella_operators.release.model import ComponentDigest

q = shlex.quote
STICKER = "stella.version.json"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
KILL_AFTER_S = 5  # SIGKILL this long after the SIGTERM of a command that overran its timeout


def check_id(deployment_id: str) -> str:
    if not _SAFE_ID.match(deployment_id):
        raise ValueError(f"deployment id {deployment_id!r} cannot name a release dir "
                         "(letters, digits, '.', '_' and '-' only)")
    return deployment_id


def release_dir(base: str, deployment_id: str) -> str:
    return f"{base}/releases/{check_id(deployment_id)}"


def placeholder_values(*, app: str, base: str, rel_dir: str, deployment_id: str,
                       component: ComponentDigest) -> dict[str, str]:
    return {"image": component.ref, "digest": component.digest, "tag": component.tag or "",
            "repository": component.repository, "component": component.name, "release_dir": rel_dir,
            "base_dir": base, "deployment_id": deployment_id, "app": app}


def fill(argv: Sequence[str], values: Mapping[str, str]) -> list[str]:
    """Placeholders filled per argument (each stays one argument whatever it contains)."""
    return [arg.format_map(dict(values)) for arg in argv]


def env_file(values: Mapping[str, str]) -> bytes:
    """`KEY='value'` lines for `set -a; . FILE`: quoted, so any value (spaces, quotes, $) stays literal."""
    lines = []
    for key, value in values.items():
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            raise ValueError(f"environment variable name {key!r} is not valid")
        lines.append(f"{key}={q(value)}\n")
    return "".join(lines).encode()


def in_release(dir_: str, component: str, argv: Sequence[str], timeout_s: float) -> str:
    """Run argv in `dir_` with the component's env file sourced, killed on the host after timeout_s."""
    env = f"./.stella/{component}.env"
    return (f"cd {q(dir_)} && if [ -f {q(env)} ]; then set -a && . {q(env)} && set +a; fi && "
            f"exec timeout -k {KILL_AFTER_S} {timeout_s:g} {shlex.join(argv)}")


def facts_script(base: str, status: Mapping[str, Sequence[str]], timeout_s: float) -> tuple[str, str]:
    """One exec that prints `current`, the sticker and each status command's exit + output.

    Returns (script, token): every line we parse starts with the random token, so nothing a status
    command prints can be mistaken for ours (its output is base64 anyway).
    """
    token = "@stella-" + secrets.token_hex(8)
    cur = f"{base}/current"
    parts = [
        f"cur=$(readlink {q(cur)} 2>/dev/null) || cur=",
        f'printf \'%s cur %s\\n\' {token} "$cur"',
        f'if [ -n "$cur" ] && [ -f {q(cur + "/" + STICKER)} ]; then '
        f'printf \'%s sticker %s\\n\' {token} "$(base64 -w0 < {q(cur + "/" + STICKER)})"; fi',
    ]
    for component, argv in status.items():
        parts.append(
            f'if [ -n "$cur" ]; then out=$( ( {in_release(cur, component, argv, timeout_s)} ) 2>&1 ); rc=$?; '
            f'printf \'%s status %s %s %s\\n\' {token} {q(component)} "$rc" '
            f'"$(printf \'%s\' "$out" | head -c 4000 | base64 -w0)"; fi')
    return "\n".join(parts) + "\n", token


def upload_script(base: str, deployment_id: str, backup_paths: Sequence[str]) -> str:
    """Unpack the release tar (stdin) into releases/<id>, note the previous release, back up paths."""
    rel = release_dir(base, deployment_id)
    part = rel + ".partial"
    lines = [
        "set -e", "umask 022",
        f"mkdir -p {q(base + '/releases')}",
        f"cur=$(readlink {q(base + '/current')} 2>/dev/null) || cur=",
        f'if [ "$cur" = {q(rel)} ]; then echo "current already points to this deployment" >&2; exit 3; fi',
        f"rm -rf {q(part)} {q(rel)}",
        f"mkdir -p {q(part)}",
        f"tar --no-same-owner -x -C {q(part)} -f -",
        f"mkdir -p {q(part + '/.stella')} && chmod 700 {q(part + '/.stella')}",
        f"printf '%s' \"$cur\" > {q(part + '/.stella/previous')}",
    ]
    if backup_paths:
        rels = " ".join(q(str(PurePosixPath(p).relative_to("/"))) for p in backup_paths)
        lines += [
            f": > {q(part + '/.stella/backup.absent')}",
            *(f"[ -e {q(p)} ] || [ -L {q(p)} ] || printf '%s\\n' {q(p)} >> {q(part + '/.stella/backup.absent')}"
              for p in backup_paths),
            # missing paths are recorded above; tar saves the others (GNU tar: --ignore-failed-read)
            f"tar -c -z -f {q(part + '/.stella/backup.tgz')} -C / --ignore-failed-read {rels} 2>/dev/null || "
            f"[ -s {q(part + '/.stella/backup.tgz')} ]",
        ]
    lines.append(f"mv {q(part)} {q(rel)}")
    return "\n".join(lines) + "\n"


def switch_script(base: str, target_dir: str | None) -> str:
    """Point `current` at target_dir atomically (rename of a fresh symlink); None removes it."""
    cur = f"{base}/current"
    if target_dir is None:
        return f"rm -f {q(cur)}\n"
    tmp = f"{base}/.current.{secrets.token_hex(4)}"
    return f"ln -sfn {q(target_dir)} {q(tmp)} && mv -Tf {q(tmp)} {q(cur)}\n"


def inspect_script(base: str, deployment_id: str) -> tuple[str, str]:
    """For restore: where `current` points, what this deployment's dir says was before, and that
    previous release's sticker (base64)."""
    token = "@stella-" + secrets.token_hex(8)
    rel = release_dir(base, deployment_id)
    prev_file = f"{rel}/.stella/previous"
    return ("\n".join([
        f"cur=$(readlink {q(base + '/current')} 2>/dev/null) || cur=",
        f'printf \'%s cur %s\\n\' {token} "$cur"',
        f"if [ -d {q(rel)} ]; then printf '%s rel yes\\n' {token}; fi",
        f"if [ -f {q(prev_file)} ]; then prev=$(cat {q(prev_file)}); printf '%s prev %s\\n' {token} \"$prev\"; "
        f'if [ -n "$prev" ] && [ -f "$prev/{STICKER}" ]; then '
        f'printf \'%s sticker %s\\n\' {token} "$(base64 -w0 < "$prev/{STICKER}")"; fi; fi',
    ]) + "\n", token)


def restore_backup_script(rel: str) -> str:
    """Put backup_paths back as they were at prepare (remove those that did not exist)."""
    tgz, absent = f"{rel}/.stella/backup.tgz", f"{rel}/.stella/backup.absent"
    return (f"set -e\nif [ -f {q(absent)} ]; then while IFS= read -r p; do rm -rf -- \"$p\"; done < {q(absent)}; fi\n"
            f"if [ -s {q(tgz)} ]; then tar --no-same-owner -x -z -f {q(tgz)} -C /; fi\n")


def remove_release_script(base: str, deployment_id: str) -> str:
    """Remove this deployment's dir unless `current` points to it (idempotent)."""
    rel = release_dir(base, deployment_id)
    return (f"cur=$(readlink {q(base + '/current')} 2>/dev/null) || cur=\n"
            f'if [ "$cur" != {q(rel)} ]; then rm -rf {q(rel)} {q(rel + ".partial")}; fi\n')


def prune_script(base: str, keep: int) -> str:
    """Keep the `keep` newest release dirs plus current and its previous; remove the rest."""
    releases = f"{base}/releases"
    return "\n".join([
        f"cd {q(releases)} 2>/dev/null || exit 0",
        f"cur=$(readlink {q(base + '/current')} 2>/dev/null) || cur=",
        'prev=; if [ -n "$cur" ] && [ -f "$cur/.stella/previous" ]; then prev=$(cat "$cur/.stella/previous"); fi',
        f"ls -1t | tail -n +{keep + 1} | while IFS= read -r d; do",
        f'  p={q(releases)}/"$d"',
        '  if [ "$p" != "$cur" ] && [ "$p" != "$prev" ]; then rm -rf -- "$p"; fi',
        "done",
    ]) + "\n"


def parse_tokens(stdout: str, token: str) -> list[list[str]]:
    """Lines of ours: `TOKEN kind rest...` -> [kind, rest...] (rest split on the first spaces only)."""
    out = []
    for line in stdout.splitlines():
        if line.startswith(token + " "):
            kind, _, rest = line[len(token) + 1:].partition(" ")
            out.append([kind, rest])
    return out
