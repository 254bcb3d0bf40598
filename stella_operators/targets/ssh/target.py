"""`ssh` target: an agentless Linux host; releases are dirs, `current` is a symlink (see remote.py).

prepare  - facts -> diff; nothing to change: done. Else upload artifacts, env files and the sticker
           into releases/<deployment_id> (one exec, tar on stdin), note what `current` was, back up
           `backup_paths`, run each changed component's `check` there.
commit   - switch `current` to the new dir, run each changed component's `activate` (with a timeout).
discard  - remove the new dir (`current` never pointed to it).
restore  - from the host alone: if `current` points to this deployment, point it back to the dir
           noted at prepare, put the backup back and re-run `activate` of the changed components
           from that dir (`deactivate` where nothing ran before); then remove the new dir.
finalize - keep `keep_releases` newest dirs (and current + previous), remove the others.
facts    - `current/stella.version.json` (digests, sticker) and each `status` command's exit and output.

All steps of all ssh targets run on the fan-out module's shared event loop (one connection per
target, reused across steps, reopened once if it broke). Env values may be secrets: they travel in
the env files only, and are masked in any output we put into an error.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncssh

from stella_operators.targets.contract import (
    DeployError,
    PreparedChange,
    RunningComponent,
    TargetFacts,
    TargetPlan,
    VersionSticker,
)
from stella_operators.targets.diff import diff
from stella_operators.targets.ssh import remote
from stella_operators.targets.ssh.fanout import LOOP, Endpoint, ExecResult, describe_error, run_command, tar_bytes
from stella_operators.targets.ssh.settings import SshSettings

T = TypeVar("T")
_SLACK_S = 10  # the local wait outlasts the remote `timeout` (which kills the command on the host)


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


class SshTarget:
    """One Linux host reached over SSH. `artifact_root`: folder that relative artifact sources are in."""

    kind = "ssh"

    def __init__(self, name: str, endpoint: Endpoint, settings: SshSettings, *, artifact_root: Path):
        self.name = name
        self.endpoint = endpoint
        self.settings = settings
        self.artifact_root = Path(artifact_root)
        self._conn: asyncssh.SSHClientConnection | None = None
        self._conn_lock: asyncio.Lock | None = None
        self._cancelled = threading.Event()
        self._secrets: list[str] = []

    def __repr__(self) -> str:
        return f"SshTarget({self.name!r}, {self.endpoint.address!r})"

    @property
    def address(self) -> str:
        return self.endpoint.address

    def cancel(self) -> None:
        """Make a prepare in flight stop before its next remote step (see contract.Cancellable)."""
        self._cancelled.set()

    # transport ----------------------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return LOOP.run(coro, timeout=timeout + self.settings.connect_timeout_s + _SLACK_S)

    async def _connection(self) -> asyncssh.SSHClientConnection:
        if self._conn_lock is None:
            self._conn_lock = asyncio.Lock()
        async with self._conn_lock:
            if self._conn is None or self._conn.is_closed():
                try:
                    self._conn = await self.endpoint.connect()
                except (asyncssh.Error, OSError, TimeoutError, ValueError) as exc:
                    text = str(exc) if isinstance(exc, ValueError) else describe_error(self.address, exc)
                    raise DeployError(self.name, text) from None
            return self._conn

    async def _exec(self, command: str, *, stdin: bytes | None = None, timeout_s: float | None = None,
                    what: str) -> ExecResult:
        timeout = (timeout_s or self.settings.command_timeout_s) + _SLACK_S
        conn = await self._connection()  # reopened when the cached one was closed (never a retried command)
        try:
            return await run_command(conn, command, stdin=stdin, timeout_s=timeout)
        except (asyncssh.Error, OSError) as exc:
            self._conn = None
            raise DeployError(self.name, f"{what}: {describe_error(self.address, exc)}") from None
        except TimeoutError:
            raise DeployError(self.name, f"{what}: no answer from {self.address} within {timeout:.0f} s") from None

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            LOOP.loop().call_soon_threadsafe(conn.close)

    def _mask(self, text: str) -> str:
        for value in sorted(self._secrets, key=len, reverse=True):
            if value:
                text = text.replace(value, "***")
        return text

    def _fail(self, what: str, res: ExecResult, prepared: PreparedChange | None = None) -> DeployError:
        tail = self._mask((res.stderr.strip() or res.stdout.strip())[-800:])
        code = "timed out (killed)" if res.exit_status == 124 else f"exit {res.exit_status}"
        return DeployError(self.name, f"{what} on {self.address} failed ({code}): {tail or 'no output'}",
                           prepared=prepared)

    def _check_cancelled(self, prepared: PreparedChange | None = None) -> None:
        if self._cancelled.is_set():
            raise DeployError(self.name, "cancelled: the deployment was interrupted", prepared=prepared)

    # facts --------------------------------------------------------------------------------
    def facts(self, app: str) -> TargetFacts:
        return self._run(self._facts(app), self.settings.command_timeout_s * max(1, len(self.settings.components)))

    async def _facts(self, app: str) -> TargetFacts:
        base = self.settings.base_for(app)
        status = {c: cmd.status for c, cmd in self.settings.components.items() if cmd.status}
        status = {c: remote.fill(argv, {"component": c, "base_dir": base, "app": app, "release_dir": base + "/current"})
                  for c, argv in status.items()}
        script, token = remote.facts_script(base, status, self.settings.command_timeout_s)
        res = await self._exec(script, timeout_s=self.settings.command_timeout_s * max(1, len(status)),
                               what="reading facts")
        if res.exit_status != 0:
            raise self._fail("reading facts", res)
        cur, sticker, health = "", None, {}
        for kind, rest in remote.parse_tokens(res.stdout, token):
            if kind == "cur":
                cur = rest
            elif kind == "sticker" and rest:
                try:
                    sticker = VersionSticker.model_validate_json(base64.b64decode(rest))
                except ValueError as exc:
                    raise DeployError(self.name, f"{base}/current/{remote.STICKER} on {self.address} is not a "
                                                 f"stella version sticker: {str(exc)[:200]}") from None
            elif kind == "status":
                comp, code, out = (rest.split(" ", 2) + ["", ""])[:3]
                health[comp] = (int(code), self._mask(base64.b64decode(out).decode("utf-8", "replace")))
        components: dict[str, RunningComponent] = {}
        if sticker is not None and cur:
            for c in sticker.components:
                code_out = health.get(c.name)
                labels = {"stella.release.dir": cur, "stella.deployment.id": sticker.deployment_id}
                if code_out is not None:
                    labels["status.exit"] = str(code_out[0])
                    labels["status.output"] = code_out[1][-1000:]
                components[c.name] = RunningComponent(
                    component=c.name, digest=c.digest, workload_id=cur, workload_name=sticker.deployment_id,
                    healthy=None if code_out is None else code_out[0] == 0, labels=labels)
        return TargetFacts(target=self.name, app=app, components=components, sticker=sticker)

    # prepare ------------------------------------------------------------------------------
    def _artifact_files(self) -> list[tuple[str, bytes, int]]:
        files = []
        for art in self.settings.artifacts:
            src = Path(art.source)
            src = src if src.is_absolute() else self.artifact_root / src
            try:
                data = src.read_bytes()
            except OSError as exc:
                raise DeployError(self.name, f"artifact {art.source!r} cannot be read from {src}: "
                                             f"{exc.strerror or exc} (sources are relative to the estate "
                                             "file's folder)") from None
            files.append((art.dest, data, int(art.mode, 8)))
        return files

    def _release_tar(self, plan: TargetPlan, rel: str) -> bytes:
        base = self.settings.base_for(plan.app)
        files = self._artifact_files()
        files.append((remote.STICKER, (plan.sticker.model_dump_json(indent=2) + "\n").encode(), 0o644))
        self._secrets = [v for spec in plan.components for v in spec.env.values()]
        for spec in plan.components:
            c = spec.component
            env = {"STELLA_APP": plan.app, "STELLA_COMPONENT": c.name, "STELLA_IMAGE": c.ref,
                   "STELLA_DIGEST": c.digest, "STELLA_TAG": c.tag or "", "STELLA_RELEASE_DIR": rel,
                   "STELLA_BASE_DIR": base, "STELLA_DEPLOYMENT_ID": plan.deployment_id,
                   "STELLA_ENVIRONMENT": plan.environment, **spec.env}
            files.append((f".stella/{c.name}.env", remote.env_file(env), 0o600))
        return tar_bytes(files)

    def _values(self, plan: TargetPlan, rel: str, component: str) -> dict[str, str]:
        spec = next(s for s in plan.components if s.component.name == component)
        return remote.placeholder_values(app=plan.app, base=self.settings.base_for(plan.app), rel_dir=rel,
                                         deployment_id=plan.deployment_id, component=spec.component)

    def prepare(self, plan: TargetPlan) -> PreparedChange:
        self._cancelled.clear()
        timeout = self.settings.command_timeout_s * (3 + 2 * len(plan.components))
        return self._run(self._prepare(plan), timeout)

    async def _prepare(self, plan: TargetPlan) -> PreparedChange:
        unknown = [s.component.name for s in plan.components if s.component.name not in self.settings.components]
        if unknown:
            raise DeployError(self.name, f"no commands for component(s) {', '.join(unknown)} in this target's "
                                         f"settings.components (known: {', '.join(self.settings.components)})")
        prepared = PreparedChange(target=self.name)
        t0 = time.monotonic()
        facts = await self._facts(plan.app)
        prepared.timings_ms["facts"] = _ms(t0)
        change = diff(facts, plan)
        prepared.unchanged = [c.component for c in change.changes if c.action == "keep"]
        if not change.changed:
            prepared.log.append("every component already runs its planned digest: nothing to do")
            return prepared
        self._check_cancelled()
        base = self.settings.base_for(plan.app)
        rel = remote.release_dir(base, plan.deployment_id)
        t0 = time.monotonic()
        res = await self._exec(remote.upload_script(base, plan.deployment_id, self.settings.backup_paths),
                               stdin=self._release_tar(plan, rel), what="uploading the release")
        changed = [c.component for c in change.changes if c.action != "keep"]
        if res.exit_status != 0:
            prepared.started = dict.fromkeys(changed, rel)  # a partial dir may be left: discard removes it
            raise self._fail("uploading the release", res, prepared)
        prepared.timings_ms["upload"] = _ms(t0)
        prepared.started = dict.fromkeys(changed, rel)
        current = next((rc.workload_id for rc in facts.components.values()), None)
        prepared.to_retire = {c: [current] for c in changed if current}
        prepared.log.append(f"uploaded {len(self.settings.artifacts)} artifact(s) to {rel}")
        for c in changed:
            self._check_cancelled(prepared)
            check = self.settings.components[c].check
            if check is None:
                continue
            t0 = time.monotonic()
            res = await self._exec(remote.in_release(rel, c, remote.fill(check, self._values(plan, rel, c)),
                                                     self.settings.command_timeout_s), what=f"check of {c}")
            prepared.timings_ms[f"check_{c}"] = _ms(t0)
            if res.exit_status != 0:
                raise self._fail(f"check of {c}", res, prepared)
            prepared.log.append(f"check of {c} passed")
        return prepared

    # commit / discard ------------------------------------------------------------------------
    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        self._run(self._commit(plan, prepared), self.settings.command_timeout_s * (1 + len(prepared.started)))

    async def _commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        if not prepared.started:
            return
        base = self.settings.base_for(plan.app)
        rel = remote.release_dir(base, plan.deployment_id)
        res = await self._exec(remote.switch_script(base, rel), what="switching current")
        if res.exit_status != 0:
            raise self._fail("switching current", res)
        prepared.log.append(f"current -> {rel}")
        for spec in plan.components:
            c = spec.component.name
            if c not in prepared.started:
                continue
            argv = remote.fill(self.settings.components[c].activate, self._values(plan, rel, c))
            t0 = time.monotonic()
            res = await self._exec(remote.in_release(rel, c, argv, self.settings.command_timeout_s),
                                   what=f"activate of {c}")
            prepared.timings_ms[f"activate_{c}"] = _ms(t0)
            if res.exit_status != 0:
                raise self._fail(f"activate of {c}", res)
            prepared.log.append(f"activated {c}")

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        if not prepared.started:
            return
        base = self.settings.base_for(plan.app)
        res = self._run(self._exec(remote.remove_release_script(base, plan.deployment_id), what="discarding"),
                        self.settings.command_timeout_s)
        if res.exit_status != 0:
            raise self._fail("discarding the new release dir", res)

    # restore / finalize -------------------------------------------------------------------
    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        self._run(self._restore(plan, previous), self.settings.command_timeout_s * (3 + len(plan.components)))

    async def _restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        base = self.settings.base_for(plan.app)
        rel = remote.release_dir(base, plan.deployment_id)
        script, token = remote.inspect_script(base, plan.deployment_id)
        res = await self._exec(script, what="restore: reading the host")
        if res.exit_status != 0:
            raise self._fail("restore: reading the host", res)
        found = dict((k, v) for k, v in remote.parse_tokens(res.stdout, token))
        if found.get("cur", "") == rel:
            prev_dir = found.get("prev") or None
            res = await self._exec(remote.switch_script(base, prev_dir), what="restore: switching current back")
            if res.exit_status != 0:
                raise self._fail("restore: switching current back", res)
            if self.settings.backup_paths:
                res = await self._exec(remote.restore_backup_script(rel), what="restore: backup")
                if res.exit_status != 0:
                    raise self._fail("restore: putting backup_paths back", res)
            prev_sticker = (VersionSticker.model_validate_json(base64.b64decode(found["sticker"]))
                            if found.get("sticker") else None)
            await self._reactivate(plan, previous, prev_dir, prev_sticker, rel)
        res = await self._exec(remote.remove_release_script(base, plan.deployment_id), what="restore: cleanup")
        if res.exit_status != 0:
            raise self._fail("restore: removing the new release dir", res)

    async def _reactivate(self, plan: TargetPlan, previous: dict[str, str | None], prev_dir: str | None,
                          prev_sticker: VersionSticker | None, rel: str) -> None:
        before = {c.name: c for c in (prev_sticker.components if prev_sticker else [])}
        for spec in plan.components:
            c = spec.component.name
            if previous.get(c) == spec.component.digest:
                continue  # it was kept: commit never re-activated it
            cmds = self.settings.components[c]
            if prev_dir and c in before:
                values = remote.placeholder_values(app=plan.app, base=self.settings.base_for(plan.app),
                                                   rel_dir=prev_dir, deployment_id=prev_sticker.deployment_id
                                                   if prev_sticker else "", component=before[c])
                line = remote.in_release(prev_dir, c, remote.fill(cmds.activate, values),
                                         self.settings.command_timeout_s)
                what = f"restore: activate of {c} from {prev_dir}"
            elif cmds.deactivate:
                line = remote.in_release(rel, c, remote.fill(cmds.deactivate, self._values(plan, rel, c)),
                                         self.settings.command_timeout_s)
                what = f"restore: deactivate of {c}"
            else:
                continue
            res = await self._exec(line, what=what)
            if res.exit_status != 0:
                raise self._fail(what, res)

    def finalize(self, plan: TargetPlan) -> None:
        res = self._run(self._exec(remote.prune_script(self.settings.base_for(plan.app), self.settings.keep_releases),
                                   what="pruning old releases"), self.settings.command_timeout_s)
        if res.exit_status != 0:
            raise self._fail("pruning old release dirs", res)

