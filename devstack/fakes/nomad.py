"""A fake Nomad agent: the HTTP API endpoints the nomad target uses, on a real port.

Written from Nomad's HTTP API documentation (api-docs/jobs, api-docs/deployments) and the
deployment status texts of Nomad's structs: it is NOT Nomad. What it models:

- jobs by (namespace, ID) with every version kept; registering a changed spec makes version N+1
  (an unchanged one makes none); `EnforceIndex` + `JobModifyIndex` check-and-set; revert with
  `EnforcePriorVersion`; `X-Nomad-Token` (403 "Permission denied") when a token is set.
- a deployment per new version of a service job, following each group's `Update` block (or the
  job's): `Canary` canaries placed beside the old allocations and waiting for promotion unless
  `AutoPromote`; without canaries (or once promoted) allocations are replaced `MaxParallel` at a
  time; `AutoRevert` reverts to the latest stable version when the deployment fails.
- allocations become healthy `healthy_after_s` after placement, or fail when a task's docker
  `image` is in `bad_images`; one unhealthy allocation fails the deployment.
Time advances on each request (no background thread), so what a client sees is what it polled.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from devstack.registry import free_port

RUNNING = "Deployment is running"
NEEDS_PROMOTION = "Deployment is running but requires manual promotion"
SUCCESSFUL = "Deployment completed successfully"
NEWER_JOB = "Cancelled due to newer version of job"
FAILED_ALLOCS = "Failed due to unhealthy allocations"
FAILED_BY_USER = "Deployment marked as failed"
SERVER_FIELDS = ("Version", "Stable", "JobModifyIndex", "ModifyIndex", "CreateIndex", "Status", "SubmitTime")


class NomadError(Exception):
    def __init__(self, status: int, text: str):
        super().__init__(text)
        self.status = status
        self.text = text


def _spec(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k not in SERVER_FIELDS}


def _update_of(job: dict[str, Any], group: dict[str, Any]) -> dict[str, Any]:
    return {**(job.get("Update") or {}), **(group.get("Update") or {})}


class NomadState:
    """The cluster the fake simulates; every public method is one API call (caller holds the lock)."""

    def __init__(self, healthy_after_s: float = 0.2):
        self.healthy_after_s = healthy_after_s
        self.bad_images: set[str] = set()
        self.versions: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.allocs: list[dict[str, Any]] = []
        self.deployments: list[dict[str, Any]] = []
        self.index = 10
        self.calls: list[str] = []  # "METHOD /path" of every request, for tests

    def _next(self) -> int:
        self.index += 1
        return self.index

    # jobs ------------------------------------------------------------------------------------
    def job(self, ns: str, job_id: str) -> dict[str, Any]:
        versions = self.versions.get((ns, job_id))
        if not versions:
            raise NomadError(404, "job not found")
        return versions[-1]

    def register(self, ns: str, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        job = body.get("Job")
        if not isinstance(job, dict) or job.get("ID") != job_id:
            raise NomadError(400, "Job ID does not match name")
        job.setdefault("Namespace", ns)
        versions = self.versions.get((ns, job_id), [])
        current = versions[-1] if versions else None
        if body.get("EnforceIndex"):
            have = current["JobModifyIndex"] if current else 0
            if body.get("JobModifyIndex") != have:
                raise NomadError(400, f"Enforcing job modify index {body.get('JobModifyIndex')}: job exists with "
                                      f"conflicting job modify index: {have}")
        if current is not None and _spec(current) == _spec(job):
            return {"EvalID": str(uuid.uuid4()), "JobModifyIndex": current["JobModifyIndex"], "Index": self.index,
                    "Warnings": ""}
        return self._new_version(ns, job_id, job)

    def _new_version(self, ns: str, job_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        versions = self.versions.setdefault((ns, job_id), [])
        idx = self._next()
        job = {**copy.deepcopy(_spec(spec)), "Version": len(versions), "Stable": False, "JobModifyIndex": idx,
               "ModifyIndex": idx, "CreateIndex": versions[0]["CreateIndex"] if versions else idx,
               "Status": "running", "SubmitTime": time.time_ns()}
        versions.append(job)
        for dep in self.deployments:
            if dep["JobID"] == job_id and dep["Namespace"] == ns and dep["Status"] in ("running", "paused"):
                self._end(dep, "cancelled", NEWER_JOB)
        self._start_deployment(job)
        return {"EvalID": str(uuid.uuid4()), "JobModifyIndex": idx, "Index": idx, "Warnings": ""}

    def revert(self, ns: str, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        current = self.job(ns, job_id)
        prior = body.get("EnforcePriorVersion")
        if prior is not None and prior != current["Version"]:
            raise NomadError(400, f"Current job has version {current['Version']}; enforcing version {prior}")
        target = body.get("JobVersion")
        if target == current["Version"]:
            raise NomadError(400, f"can't revert to current version {target}")
        old = next((v for v in self.versions[(ns, job_id)] if v["Version"] == target), None)
        if old is None:
            raise NomadError(400, f"job version {target} not found")
        return self._new_version(ns, job_id, old)

    def allocations(self, ns: str, job_id: str) -> list[dict[str, Any]]:
        self.job(ns, job_id)
        return [copy.deepcopy(a) for a in self.allocs if a["JobID"] == job_id and a["Namespace"] == ns]

    def latest_deployment(self, ns: str, job_id: str) -> dict[str, Any] | None:
        self.job(ns, job_id)
        mine = [d for d in self.deployments if d["JobID"] == job_id and d["Namespace"] == ns]
        return copy.deepcopy(mine[-1]) if mine else None

    # deployments -----------------------------------------------------------------------------
    def deployment(self, dep_id: str) -> dict[str, Any]:
        for dep in self.deployments:
            if dep["ID"] == dep_id:
                return dep
        raise NomadError(404, "deployment not found")

    def _start_deployment(self, job: dict[str, Any]) -> None:
        if job.get("Type", "service") != "service":
            return
        groups = {}
        dep_id = str(uuid.uuid4())
        in_place: list[dict[str, Any]] = []
        for g in job.get("TaskGroups") or []:
            upd = _update_of(job, g)
            running = [a for a in self.allocs if a["JobID"] == job["ID"] and a["Namespace"] == job["Namespace"]
                       and a["TaskGroup"] == g["Name"] and a["DesiredStatus"] == "run"]
            same = bool(running) and all(self._group_of(a) == g for a in running)
            # Nomad places canaries only when a running group changes destructively; an unchanged
            # group (a revert to the spec that runs) is updated in place.
            canaries = int(upd.get("Canary") or 0) if running and not same else 0
            if same:
                in_place += running
            groups[g["Name"]] = {
                "AutoRevert": bool(upd.get("AutoRevert")), "AutoPromote": bool(upd.get("AutoPromote")),
                "ProgressDeadline": upd.get("ProgressDeadline", 600_000_000_000), "Promoted": False,
                "PlacedCanaries": [], "DesiredCanaries": canaries,
                "DesiredTotal": int(g.get("Count", 1)), "PlacedAllocs": len(running) if same else 0,
                "HealthyAllocs": 0, "UnhealthyAllocs": 0,
                "MaxParallel": max(1, int(upd.get("MaxParallel") or 1)),
            }
        for a in in_place:
            a["JobVersion"], a["DeploymentID"], a["ModifyIndex"] = job["Version"], dep_id, self._next()
            a["DeploymentStatus"] = {"Healthy": a["DeploymentStatus"].get("Healthy"), "Canary": False}
        idx = self._next()
        self.deployments.append({
            "ID": dep_id, "Namespace": job["Namespace"], "JobID": job["ID"], "JobVersion": job["Version"],
            "JobModifyIndex": job["JobModifyIndex"], "JobSpecModifyIndex": job["JobModifyIndex"],
            "JobCreateIndex": job["CreateIndex"], "IsMultiregion": False, "TaskGroups": groups,
            "Status": "running", "StatusDescription": RUNNING, "CreateIndex": idx, "ModifyIndex": idx})

    def _group_of(self, alloc: dict[str, Any]) -> dict[str, Any] | None:
        """The task group spec an allocation runs (from its job version)."""
        for v in self.versions.get((alloc["Namespace"], alloc["JobID"]), []):
            if v["Version"] == alloc["JobVersion"]:
                return next((g for g in v.get("TaskGroups") or [] if g["Name"] == alloc["TaskGroup"]), None)
        return None

    def _end(self, dep: dict[str, Any], status: str, description: str) -> None:
        dep["Status"], dep["StatusDescription"], dep["ModifyIndex"] = status, description, self._next()

    def promote(self, dep_id: str) -> dict[str, Any]:
        dep = self.deployment(dep_id)
        if dep["Status"] != "running":
            raise NomadError(500, f"can't promote terminal deployment (status {dep['Status']})")
        groups = {n: s for n, s in dep["TaskGroups"].items() if s["DesiredCanaries"] > 0}
        if not groups:
            raise NomadError(500, "no canaries to promote")
        for name, st in groups.items():
            healthy = self._count(dep, name, canary=True, healthy=True)
            if healthy < st["DesiredCanaries"]:
                raise NomadError(500, f'Task group "{name}" has {healthy}/{st["DesiredCanaries"]} healthy allocations')
        for st in groups.values():
            st["Promoted"] = True
        dep["StatusDescription"] = RUNNING
        return {"EvalID": str(uuid.uuid4()), "DeploymentModifyIndex": self._next(), "Index": self.index}

    def fail(self, dep_id: str) -> dict[str, Any]:
        dep = self.deployment(dep_id)
        if dep["Status"] != "running":
            raise NomadError(500, f"can't fail terminal deployment (status {dep['Status']})")
        reverted = self._fail(dep, FAILED_BY_USER)
        out = {"EvalID": str(uuid.uuid4()), "DeploymentModifyIndex": dep["ModifyIndex"], "Index": self.index}
        if reverted is not None:
            out["RevertedJobVersion"] = reverted
        return out

    def _fail(self, dep: dict[str, Any], description: str) -> int | None:
        ns, job_id = dep["Namespace"], dep["JobID"]
        for a in self.allocs:  # canaries and unpromoted new allocations stop; old ones keep running
            if a["DeploymentID"] == dep["ID"] and a["DeploymentStatus"].get("Canary"):
                a["DesiredStatus"], a["ClientStatus"] = "stop", "complete"
        stable = [v for v in self.versions[(ns, job_id)] if v["Stable"] and v["Version"] != dep["JobVersion"]]
        if any(s["AutoRevert"] for s in dep["TaskGroups"].values()) and stable:
            version = stable[-1]["Version"]
            self._end(dep, "failed", f"{description} - rolling back to job version {version}")
            self._new_version(ns, job_id, stable[-1])
            return version
        self._end(dep, "failed", description)
        return None

    # the simulated cluster ---------------------------------------------------------------------
    def _count(self, dep: dict[str, Any], group: str, *, canary: bool | None = None,
               healthy: bool | None = None) -> int:
        n = 0
        for a in self.allocs:
            if a["DeploymentID"] != dep["ID"] or a["TaskGroup"] != group or a["DesiredStatus"] != "run":
                continue
            ds = a["DeploymentStatus"]
            if canary is not None and bool(ds.get("Canary")) != canary:
                continue
            if healthy is not None and ds.get("Healthy") is not healthy:
                continue
            n += 1
        return n

    def _place(self, dep: dict[str, Any], job: dict[str, Any], group: dict[str, Any], canary: bool) -> None:
        idx = self._next()
        alloc = {"ID": str(uuid.uuid4()), "EvalID": str(uuid.uuid4()), "Namespace": job["Namespace"],
                 "Name": f"{job['ID']}.{group['Name']}[{len(self.allocs)}]", "NodeID": "node-1", "JobID": job["ID"],
                 "JobVersion": job["Version"], "TaskGroup": group["Name"], "DesiredStatus": "run",
                 "ClientStatus": "pending", "DeploymentID": dep["ID"], "DeploymentStatus": {"Canary": canary},
                 "CreateIndex": idx, "ModifyIndex": idx, "CreateTime": time.time_ns(),
                 "_images": [t.get("Config", {}).get("image") for t in group.get("Tasks") or []]}
        self.allocs.append(alloc)
        dep["TaskGroups"][group["Name"]]["PlacedAllocs"] += 1
        if canary:
            dep["TaskGroups"][group["Name"]]["PlacedCanaries"].append(alloc["ID"])

    def advance(self) -> None:
        now = time.time_ns()
        for a in self.allocs:
            if a["ClientStatus"] == "pending" and now - a["CreateTime"] >= self.healthy_after_s * 1e9:
                bad = any(img in self.bad_images for img in a["_images"])
                a["ClientStatus"] = "failed" if bad else "running"
                a["DeploymentStatus"]["Healthy"] = not bad
                a["ModifyIndex"] = self._next()
        for dep in [d for d in self.deployments if d["Status"] == "running"]:
            self._advance_deployment(dep)

    def _advance_deployment(self, dep: dict[str, Any]) -> None:
        ns, job_id = dep["Namespace"], dep["JobID"]
        job = next(v for v in self.versions[(ns, job_id)] if v["Version"] == dep["JobVersion"])
        done = True
        for group in job.get("TaskGroups") or []:
            st = dep["TaskGroups"][group["Name"]]
            st["HealthyAllocs"] = self._count(dep, group["Name"], healthy=True)
            st["UnhealthyAllocs"] = self._count(dep, group["Name"], healthy=False)
            if st["UnhealthyAllocs"]:
                self._fail(dep, FAILED_ALLOCS)
                return
            if st["DesiredCanaries"] and not st["Promoted"]:
                while len(st["PlacedCanaries"]) < st["DesiredCanaries"]:
                    self._place(dep, job, group, canary=True)
                if self._count(dep, group["Name"], canary=True, healthy=True) >= st["DesiredCanaries"] \
                        and st["AutoPromote"]:
                    st["Promoted"] = True
                else:
                    dep["StatusDescription"] = NEEDS_PROMOTION if st["DesiredCanaries"] else RUNNING
                    done = False
                    continue
            done = self._roll(dep, job, group, st) and done
        if done:
            self._end(dep, "successful", SUCCESSFUL)
            job["Stable"] = True
            for a in self.allocs:  # the old version's allocations are gone once the new one is complete
                if a["JobID"] == job_id and a["Namespace"] == ns and a["JobVersion"] != job["Version"] \
                        and a["DesiredStatus"] == "run":
                    a["DesiredStatus"], a["ClientStatus"] = "stop", "complete"

    def _roll(self, dep: dict[str, Any], job: dict[str, Any], group: dict[str, Any], st: dict[str, Any]) -> bool:
        """Replace old allocations MaxParallel at a time (promoted canaries count as placed)."""
        mine = [a for a in self.allocs if a["DeploymentID"] == dep["ID"] and a["TaskGroup"] == group["Name"]
                and a["DesiredStatus"] == "run"]
        pending = [a for a in mine if a["ClientStatus"] == "pending"]
        missing = st["DesiredTotal"] - len(mine)
        for _ in range(min(missing, max(0, st["MaxParallel"] - len(pending)))):
            self._place(dep, job, group, canary=False)
            old = [a for a in self.allocs if a["JobID"] == job["ID"] and a["TaskGroup"] == group["Name"]
                   and a["JobVersion"] != job["Version"] and a["DesiredStatus"] == "run"]
            if old:
                old[0]["DesiredStatus"], old[0]["ClientStatus"] = "stop", "complete"
        healthy = self._count(dep, group["Name"], healthy=True)
        return healthy >= st["DesiredTotal"]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    def _send(self, status: int, body: Any) -> None:
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Nomad-Index", str(self.server.state.index))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        ns = query.get("namespace", "default")
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}") if length else {}
        state = self.server.state
        if self.server.token is not None and self.headers.get("X-Nomad-Token") != self.server.token:
            self._send(403, "Permission denied")
            return
        parts = [p for p in url.path.split("/") if p][1:]  # drop "v1"
        with self.server.lock:
            state.calls.append(f"{method} {url.path}")
            state.advance()
            try:
                result = self._route(method, parts, ns, body)
            except NomadError as exc:
                self._send(exc.status, exc.text)
                return
        self._send(HTTPStatus.OK, result)

    def _route(self, method: str, parts: list[str], ns: str, body: dict[str, Any]) -> Any:
        st = self.server.state
        match (method, parts):
            case ("GET", ["job", job_id]):
                return st.job(ns, job_id)
            case ("POST", ["job", job_id]) | ("POST", ["jobs", job_id]):
                return st.register(ns, job_id, body)
            case ("POST", ["jobs"]):
                return st.register(ns, (body.get("Job") or {}).get("ID", ""), body)
            case ("GET", ["job", job_id, "versions"]):
                st.job(ns, job_id)
                return {"Versions": list(reversed(st.versions[(ns, job_id)])), "Diffs": None}
            case ("GET", ["job", job_id, "allocations"]):
                return [{k: v for k, v in a.items() if not k.startswith("_")} for a in st.allocations(ns, job_id)]
            case ("GET", ["job", job_id, "deployment"]):
                return st.latest_deployment(ns, job_id)
            case ("GET", ["job", job_id, "deployments"]):
                st.job(ns, job_id)
                return [copy.deepcopy(d) for d in reversed(st.deployments) if d["JobID"] == job_id
                        and d["Namespace"] == ns]
            case ("POST", ["job", job_id, "revert"]):
                return st.revert(ns, job_id, body)
            case ("GET", ["deployment", dep_id]):
                return st.deployment(dep_id)
            case ("POST", ["deployment", "promote", dep_id]):
                return st.promote(dep_id)
            case ("POST", ["deployment", "fail", dep_id]):
                return st.fail(dep_id)
        raise NomadError(404, f"Invalid URL: {'/'.join(parts)}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, state: NomadState, token: str | None):
        super().__init__(("127.0.0.1", port), _Handler)
        self.state = state
        self.token = token
        self.lock = threading.Lock()


class FakeNomad:
    """Start with `FakeNomad()`, stop with `.stop()`; `.state` is the simulated cluster."""

    def __init__(self, *, token: str | None = None, healthy_after_s: float = 0.2):
        self.state = NomadState(healthy_after_s)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = _Server(self.port, self.state, token)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-nomad", daemon=True)
        self._thread.start()

    def seed(self, job: dict[str, Any], namespace: str = "default") -> None:
        """Register a job and run its first deployment to completion (a job that already runs)."""
        with self._server.lock:
            self.state.register(namespace, job["ID"], {"Job": job})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self._server.lock:
                self.state.advance()
                if self.state.job(namespace, job["ID"])["Stable"]:
                    return
            time.sleep(0.05)
        raise TimeoutError(f"fake nomad: job {job['ID']} did not become stable")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
