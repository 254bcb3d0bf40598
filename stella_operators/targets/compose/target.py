"""`compose` target: one compose v2 project on a host, driven over SSH with the host's docker CLI.

Compose replaces a service's container in place, so this target switches in `prepare`:
  prepare  - facts -> diff; nothing changes: done (a re-run recreates nothing). Otherwise render the
             new lock file (changed services from the plan; services left alone are copied from
             the current lock file verbatim, so compose does not recreate them), write env files
             (0600), pull the changed images by digest, keep the current lock file as the previous
             one, `up -d --remove-orphans --wait`, then check from facts that every planned
             component runs its planned digest, healthy.
  commit   - nothing left to do (kept for the engine's two phases).
  discard / restore - bring the previous lock file back up (from the host's own files, so a
             process that never saw the deployment start can do it); the rolled-back lock file is
             kept as compose.stella.lock.failed.yml. Without a previous lock file: `down`.
  finalize - remove env folders no lock file refers to any more.
While other hosts of the same deployment still prepare, a changed compose host already runs the
new release; any failure makes the engine discard it, i.e. run the previous lock file again.

Every docker command runs on the host as `env DOCKER_HOST=<settings.docker_host> docker ...`
(quoted arguments). Env values never appear in a command, a lock file, a log or an error.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stella_operators.targets.compose.facts import (
    IMAGE_DIGESTS_FORMAT,
    INSPECT_FORMAT,
    build_facts,
    image_repo_digests,
    inspected_containers,
    ps_containers,
)
from stella_operators.targets.compose.lockfile import (
    ENV_DIR,
    FAILED_LOCK_FILE,
    LOCK_FILE,
    PREVIOUS_LOCK_FILE,
    LockFile,
    LockFileError,
    env_file_text,
    read_lock,
    render_lock,
    render_service,
    stella_block,
)
from stella_operators.targets.compose.remote import RemoteError, RunResult, SshRemote
from stella_operators.targets.contract import DeployError, PreparedChange, TargetFacts, TargetPlan
from stella_operators.targets.diff import diff

if TYPE_CHECKING:
    from stella_operators.targets.compose import ComposeSettings

log = logging.getLogger(__name__)

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")


def _redact(text: str, secrets: Sequence[str]) -> str:
    for value in sorted(secrets, key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def _ms(t0: float) -> int:
    return int((time.monotonic() - t0) * 1000)


class ComposeTarget:
    """A compose project on one host. `remote` runs commands and moves files on that host."""

    kind = "compose"

    def __init__(self, name: str, remote: SshRemote, settings: ComposeSettings):
        self.name = name
        self.remote = remote
        self.settings = settings
        self._cancelled = threading.Event()

    def __repr__(self) -> str:
        return f"ComposeTarget({self.name!r}, {self.remote.where!r})"

    @property
    def where(self) -> str:
        return f"{self.name} ({self.remote.where})"

    def cancel(self) -> None:
        """Stop a prepare in flight at its next step or command (see contract.Cancellable); the
        rollback that follows (discard / restore) is not cancelled."""
        self._cancelled.set()

    def close(self) -> None:
        """Close the SSH connection (a later call connects again)."""
        self.remote.close()

    # paths and commands -----------------------------------------------------------------------
    def project(self, app: str) -> str:
        return self.settings.project or app

    def folder(self, app: str) -> str:
        return self.settings.project_dir or f"/srv/stella/{self.project(app)}"

    def _path(self, app: str, name: str) -> str:
        return f"{self.folder(app)}/{name}"

    def _docker(self, *args: str) -> list[str]:
        prefix = ["env", f"DOCKER_HOST={self.settings.docker_host}"] if self.settings.docker_host else []
        return [*prefix, self.settings.docker_cli, *args]

    def _compose(self, app: str, lock_name: str | None, *args: str) -> list[str]:
        files: list[str] = []
        if lock_name is not None:  # without a file (ps, down): compose finds the project by its labels
            files = ["--project-directory", self.folder(app), "-f", self._path(app, lock_name)]
            for extra in self.settings.extra_files:
                files += ["-f", extra]
        return self._docker("compose", "-p", self.project(app), *files, *args)

    def _run(self, argv: list[str], what: str, *, timeout_s: float | None = None, check: bool = True,
             secrets: Sequence[str] = (), cancellable: bool = False) -> RunResult:
        limit = timeout_s or self.settings.command_timeout_s
        # coreutils `timeout` on the host: a command we stop waiting for does not run on unseen
        # (SIGTERM at the limit, SIGKILL 5 s later); our own wait allows for that.
        bounded = ["timeout", "-k", "5", f"{limit:.0f}", *argv]
        try:
            result = self.remote.run(bounded, timeout_s=limit + 10, cancel=self._cancelled if cancellable else None)
        except RemoteError as exc:
            raise DeployError(self.where, f"{what}: {_redact(str(exc), secrets)}") from None
        if check and result.status == 124:
            raise DeployError(self.where, f"{what} did not finish within {limit:.0f} s (stopped on the host)")
        if check and not result.ok:
            raise DeployError(self.where, f"{what} failed: {_redact(result.error_text(), secrets)}")
        return result

    def _check_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise DeployError(self.where, "cancelled: the deployment was interrupted")

    # facts -------------------------------------------------------------------------------------
    def facts(self, app: str) -> TargetFacts:
        ps = ps_containers(self._run(self._compose(app, None, "ps", "-a", "--format", "json"),
                                     "docker compose ps").stdout)
        if not ps:
            return build_facts(self.name, app, [], [], {})
        inspected = inspected_containers(self._run(
            self._docker("inspect", "--type", "container", "--format", INSPECT_FORMAT, *[p.id for p in ps]),
            "docker inspect").stdout)
        image_ids = sorted({c.image_id for c in inspected if c.running and c.image_id})
        digests = image_repo_digests(self._run(
            self._docker("image", "inspect", "--format", IMAGE_DIGESTS_FORMAT, *image_ids),
            "docker image inspect").stdout) if image_ids else {}
        return build_facts(self.name, app, ps, inspected, digests)

    def read_lock(self, app: str, name: str = LOCK_FILE) -> LockFile | None:
        """A lock file on the host, checksum verified; None when absent (LockFileError if untrusted)."""
        try:
            text = self.remote.read_file(self._path(app, name))
        except RemoteError as exc:
            raise DeployError(self.where, f"cannot read {name}: {exc}") from None
        return None if text is None else read_lock(text, source=f"{self.name}:{self._path(app, name)}")

    # prepare -----------------------------------------------------------------------------------
    def prepare(self, plan: TargetPlan) -> PreparedChange:
        prepared = PreparedChange(target=self.name)
        secrets = [v for spec in plan.components for v in spec.env.values() if len(v) >= 4]
        try:
            self._prepare(plan, prepared, secrets)
        except DeployError as exc:
            raise DeployError(self.where, _redact(str(exc).removeprefix(f"{self.where}: "), secrets),
                              prepared=prepared) from None
        except Exception as exc:  # noqa: BLE001 - every failure must carry `prepared` for discard
            raise DeployError(self.where, _redact(f"prepare failed: {type(exc).__name__}: {exc}", secrets),
                              prepared=prepared) from None
        return prepared

    def _note(self, prepared: PreparedChange, message: str) -> None:
        prepared.log.append(message)
        log.info("%s: %s", self.name, message)

    def _env_folder(self, plan: TargetPlan) -> str:
        dep = plan.deployment_id if _SAFE_ID.match(plan.deployment_id) else \
            hashlib.sha256(plan.deployment_id.encode()).hexdigest()[:32]
        return f"{ENV_DIR}/{dep}"

    def _prepare(self, plan: TargetPlan, prepared: PreparedChange, secrets: list[str]) -> None:
        t0 = time.monotonic()
        facts = self.facts(plan.app)
        change = diff(facts, plan)
        prepared.timings_ms["facts"] = _ms(t0)
        changed = [c.component for c in change.changes if c.action != "keep"]
        kept = [c.component for c in change.changes if c.action == "keep"]
        prepared.unchanged.extend(kept)
        if not changed:
            self._note(prepared, f"project {self.project(plan.app)}: every component already runs its digest, "
                                 "healthy; nothing to do")
            return
        self._check_cancelled()
        current = self._current_lock(plan, prepared)

        # 1. the new lock file: changed services rendered from the plan, the others copied as they are
        services: dict[str, dict[str, Any]] = {}
        env_files: dict[str, str] = {}
        specs = {s.component.name: s for s in plan.components}
        for spec in plan.components:
            name = spec.component.name
            if name in kept and current is not None and name in current.services:
                services[name] = current.services[name]
                continue
            env_file = None
            if spec.env:
                env_file = f"{self._env_folder(plan)}/{name}.env"
                env_files[env_file] = env_file_text(spec.env, f"{self.name}: component {name}")
            services[name] = render_service(spec, plan.sticker, env_file=env_file)
        for name in change.unmanaged:  # not in the release: left alone (diff's rule), so kept in the file
            if current is not None and name in current.services:
                services[name] = current.services[name]
        tags = {name: specs[name].component.tag if name in specs else None for name in services}
        text = render_lock(self.project(plan.app), services, stella_block(plan.sticker), tags)

        # 2. files: env files (0600 in a 0700 folder), the new lock file beside the current one
        t0 = time.monotonic()
        folder = self.folder(plan.app)
        self.remote.makedirs(folder, 0o755)
        if env_files:
            self.remote.makedirs(f"{folder}/{ENV_DIR}", 0o700)
            self.remote.makedirs(f"{folder}/{self._env_folder(plan)}", 0o700)
            for rel, content in env_files.items():
                self.remote.write_file(f"{folder}/{rel}", content, mode=0o600)
        new_name = f"{LOCK_FILE}.new"
        self.remote.write_file(self._path(plan.app, new_name), text, mode=0o644)
        prepared.host_files[LOCK_FILE] = text  # a copy for the evidence locker (no env values in it)
        prepared.timings_ms["files"] = _ms(t0)

        # 3. pull the changed images by digest (nothing runs differently yet)
        self._check_cancelled()
        t0 = time.monotonic()
        self._run(self._compose(plan.app, new_name, "pull", "--quiet", *changed), "docker compose pull",
                  secrets=secrets, cancellable=True)
        prepared.timings_ms["pull"] = _ms(t0)
        self._note(prepared, f"pulled {', '.join(f'{specs[c].component.ref}' for c in changed)} "
                             f"in {prepared.timings_ms['pull']} ms")

        # 4. switch: keep the current lock file as the previous one (once per deployment), bring up
        self._check_cancelled()
        prepared.started.update({c: "" for c in changed})  # switching: from here a failure needs discard
        if current is not None and current.deployment_id != plan.deployment_id:
            self.remote.rename(self._path(plan.app, LOCK_FILE), self._path(plan.app, PREVIOUS_LOCK_FILE))
        elif current is None:
            self.remote.remove(self._path(plan.app, PREVIOUS_LOCK_FILE))  # never roll back to a stale one
        self.remote.rename(self._path(plan.app, new_name), self._path(plan.app, LOCK_FILE))
        t0 = time.monotonic()
        self._up(plan, LOCK_FILE, secrets)  # not abandoned half-way: a rollback must not race it
        prepared.timings_ms["up"] = _ms(t0)
        self._check_cancelled()

        # 5. prove it from facts: planned digests, healthy
        after = self.facts(plan.app)
        problems = []
        for spec in plan.components:
            running = after.components.get(spec.component.name)
            if running is None or running.digest != spec.component.digest:
                problems.append(f"{spec.component.name} runs {running.digest if running else 'nothing'}, "
                                f"planned {spec.component.digest}")
            elif running.healthy is False:
                problems.append(f"{spec.component.name} is not healthy")
            elif spec.component.name in changed:
                prepared.started[spec.component.name] = running.workload_id
        if problems:
            raise DeployError(self.where, "after docker compose up: " + "; ".join(problems))
        self._note(prepared, f"project {self.project(plan.app)}: up with {LOCK_FILE} ({', '.join(changed)} "
                             f"changed{', ' + ', '.join(kept) + ' left alone' if kept else ''}) "
                             f"in {prepared.timings_ms['up']} ms")

    def _current_lock(self, plan: TargetPlan, prepared: PreparedChange) -> LockFile | None:
        try:
            return self.read_lock(plan.app)
        except LockFileError as exc:
            # Deploying over it would lose the way back (it would become the previous lock file
            # that a rollback cannot trust): stop before anything changes.
            raise DeployError(self.where, f"the current lock file cannot be trusted ({exc}); put back the file "
                                          f"stella wrote, or remove it to deploy without a way back") from None

    def _up(self, plan: TargetPlan, lock_name: str, secrets: Sequence[str] = ()) -> None:
        wait_s = max(1, int(plan.health_timeout_s))
        self._run(self._compose(plan.app, lock_name, "up", "-d", "--remove-orphans", "--wait",
                                "--wait-timeout", str(wait_s)),
                  "docker compose up", timeout_s=self.settings.command_timeout_s + wait_s, secrets=secrets)

    # commit / discard / restore / finalize -----------------------------------------------------
    def commit(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        """Nothing to do: compose switched in prepare; the previous lock file stays for a rollback."""

    def discard(self, plan: TargetPlan, prepared: PreparedChange) -> None:
        if not prepared.started:
            # Failed before the switch: nothing runs differently; only an unused `.new` file may be left.
            try:
                self.remote.remove(self._path(plan.app, f"{LOCK_FILE}.new"))
            except RemoteError as exc:
                log.warning("%s: could not remove %s.new: %s", self.name, LOCK_FILE, exc)
            return
        self._back_to_previous(plan)

    def restore(self, plan: TargetPlan, previous: dict[str, str | None]) -> None:
        self._back_to_previous(plan)

    def _back_to_previous(self, plan: TargetPlan) -> None:
        """Undo deployment `plan.deployment_id` from the files on the host (idempotent)."""
        app = plan.app
        try:
            current = self.read_lock(app)
        except LockFileError as exc:
            raise DeployError(self.where, f"rollback refused: {exc}") from None
        if current is None or current.deployment_id != plan.deployment_id:
            # This deployment never switched (or was rolled back already): make sure the current
            # lock file runs (a no-op when it does), e.g. after a rollback that stopped half-way.
            if current is not None:
                self._up(plan, LOCK_FILE)
            self.remote.remove(self._path(app, f"{LOCK_FILE}.new"))
            return
        try:
            previous = self.read_lock(app, PREVIOUS_LOCK_FILE)
        except LockFileError as exc:
            raise DeployError(self.where, f"rollback refused, the previous lock file cannot be trusted: {exc}") \
                from None
        if previous is None:
            # First deployment of the project: before it nothing ran, so nothing runs after.
            self._run(self._compose(app, LOCK_FILE, "down", "--remove-orphans"), "docker compose down")
            self.remote.rename(self._path(app, LOCK_FILE), self._path(app, FAILED_LOCK_FILE))
            log.info("%s: deployment %s undone: project %s is down (it had no previous lock file)",
                     self.name, plan.deployment_id, self.project(app))
            return
        self.remote.rename(self._path(app, LOCK_FILE), self._path(app, FAILED_LOCK_FILE))
        self.remote.rename(self._path(app, PREVIOUS_LOCK_FILE), self._path(app, LOCK_FILE))
        self._up(plan, LOCK_FILE)
        log.info("%s: deployment %s undone: previous lock file (deployment %s) is up again", self.name,
                 plan.deployment_id, previous.deployment_id)

    def finalize(self, plan: TargetPlan) -> None:
        """Remove env folders that neither the current nor the previous lock file refers to."""
        referenced: set[str] = set()
        for name in (LOCK_FILE, PREVIOUS_LOCK_FILE):
            try:
                lock = self.read_lock(plan.app, name)
            except LockFileError:
                return  # cannot tell what is still needed: keep everything
            if lock is not None:
                referenced |= {p.split("/")[1] for p in lock.env_files() if p.startswith(f"{ENV_DIR}/")}
        env_root = f"{self.folder(plan.app)}/{ENV_DIR}"
        for entry in self.remote.listdir(env_root):
            if entry not in referenced:
                self.remote.remove_tree(f"{env_root}/{entry}")
