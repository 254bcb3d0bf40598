"""Build tiny busybox images with umoci (no Docker Hub) and push them with skopeo."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx

BUSYBOX = Path("/bin/busybox")
# The applets other devstack code and tests rely on; anything else busybox offers is linked too.
REQUIRED_APPLETS = ("sh", "httpd", "wget", "sleep", "cat", "test", "echo", "ls")
# Fixed timestamps make an image's digest a function of its content only.
EPOCH = 1704067200  # 2024-01-01T00:00:00Z
EPOCH_ISO = "2024-01-01T00:00:00Z"
BASE_TAG = "base"
BASE_DIR = ".busybox-base-v1"
FORMATS = ("v2s2", "oci")
MANIFEST_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
))
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class ImageBuildError(RuntimeError):
    """umoci/skopeo failed or the registry reported an unexpected digest."""


def build_and_push(
    registry_host_port: str,
    repository: str,
    tag: str,
    *,
    workdir: Path,
    files: dict[str, str] | None = None,
    cmd: list[str] | None = None,
    env: dict[str, str] | None = None,
    fmt: str = "v2s2",
    expose: list[int] | None = None,
    creds: tuple[str, str] | None = None,
    tls_verify: bool = False,
) -> str:
    """Build busybox + `files` with `cmd`/`env`, push as `fmt` ("v2s2" or "oci"), return the manifest digest.

    The returned digest is the one skopeo pushed, checked against the registry's
    Docker-Content-Digest header and the sha256 of the manifest bytes it serves.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    if not _REPO_RE.match(repository) or not _TAG_RE.match(tag):
        raise ValueError(f"invalid repository/tag {repository!r}:{tag!r}")
    workdir = Path(workdir)
    base_layout, base_bundle = _ensure_base(workdir)

    build = workdir / "builds" / f"{repository.replace('/', '_')}-{tag}-{uuid.uuid4().hex[:8]}"
    layout, bundle = build / "layout", build / "bundle"
    # Blobs are content-addressed and never rewritten, so hard links are safe and save the copy.
    shutil.copytree(base_layout, layout,
                    copy_function=lambda s, d: os.link(s, d) if "/blobs/" in s else shutil.copy2(s, d))
    shutil.copytree(base_bundle, bundle, symlinks=True)
    try:
        rootfs = bundle / "rootfs"
        for path, content in (files or {}).items():
            _write_file(rootfs, path, content)
        image = f"{layout}:{tag}"
        _run(["umoci", "repack", "--history.created", EPOCH_ISO, "--image", f"{layout}:{tag}", str(bundle)])
        config = ["umoci", "config", "--image", image, "--created", EPOCH_ISO, "--history.created", EPOCH_ISO]
        for arg in cmd or ["sh"]:
            config += ["--config.cmd", arg]
        for key, value in (env or {}).items():
            config += ["--config.env", f"{key}={value}"]
        for port in expose or []:
            config += ["--config.exposedports", f"{port}/tcp"]
        _run(config)

        digest_file = build / "digest"
        push = ["skopeo", "--insecure-policy", "copy", "--quiet", "--format", fmt,
                f"--dest-tls-verify={'true' if tls_verify else 'false'}", "--digestfile", str(digest_file)]
        if creds:
            # An auth file keeps the password out of the process list.
            authfile = build / "auth.json"
            token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            authfile.write_text(json.dumps({"auths": {registry_host_port: {"auth": token}}}))
            push += ["--dest-authfile", str(authfile)]
        _run(push + [f"oci:{layout}:{tag}", f"docker://{registry_host_port}/{repository}:{tag}"])
        digest = digest_file.read_text().strip()
        _verify_pushed(registry_host_port, repository, tag, digest, creds, "https" if tls_verify else "http")
        return digest
    finally:
        shutil.rmtree(build, ignore_errors=True)


# A well-behaved app stops on SIGTERM; busybox httpd as PID 1 ignores it (docker stop would wait
# its full timeout), so a shell forwards the signal.
WEB_CMD = "httpd -f -p 8080 -h /www & pid=$!; trap 'kill $pid; exit 0' TERM INT; wait $pid"


def build_web_image(
    registry_host_port: str,
    repository: str,
    tag: str,
    *,
    workdir: Path,
    version: str,
    healthy: bool = True,
    fmt: str = "v2s2",
    creds: tuple[str, str] | None = None,
) -> str:
    """Push a busybox httpd on :8080 serving /www (index.html names `version`; /health "ok" unless unhealthy)."""
    files = {
        "/www/index.html": f"<html><body><h1>stella demo</h1><p id=\"version\">{version}</p></body></html>\n",
        "/www/version": f"{version}\n",
    }
    if healthy:
        files["/www/health"] = "ok"
    return build_and_push(
        registry_host_port, repository, tag, workdir=workdir, files=files,
        cmd=["sh", "-c", WEB_CMD], env={"APP_VERSION": version},
        fmt=fmt, expose=[8080], creds=creds,
    )


demo_web_image = build_web_image


def _ensure_base(workdir: Path) -> tuple[Path, Path]:
    """Return (layout, bundle) of the cached busybox base, building it once per workdir."""
    base = workdir / BASE_DIR
    layout, bundle, done = base / "layout", base / "bundle", base / "done"
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / f"{BASE_DIR}.lock", "w") as lock:
        # Parallel test processes may share a workdir; only one builds the base.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return layout, bundle
        if not BUSYBOX.is_file():
            raise ImageBuildError(f"{BUSYBOX} missing (apt-get install busybox-static)")
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir()
        _run(["umoci", "init", "--layout", str(layout)])
        _run(["umoci", "new", "--image", f"{layout}:{BASE_TAG}"])
        _run(["umoci", "unpack", "--image", f"{layout}:{BASE_TAG}", str(bundle)])
        rootfs = bundle / "rootfs"
        for d in ("bin", "etc", "root", "tmp", "www"):
            (rootfs / d).mkdir(exist_ok=True)
        (rootfs / "tmp").chmod(0o1777)
        shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
        # `busybox --install` needs to run inside the rootfs; linking the host's applet list is equivalent.
        listed = subprocess.run([str(BUSYBOX), "--list"], check=True, capture_output=True, text=True).stdout.split()
        missing = sorted(set(REQUIRED_APPLETS) - set(listed))
        if missing:
            raise ImageBuildError(f"{BUSYBOX} lacks applets {missing}")
        for applet in listed:
            if applet != "busybox" and "/" not in applet:
                os.symlink("busybox", rootfs / "bin" / applet)
        (rootfs / "etc" / "passwd").write_text(
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        )
        (rootfs / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
        _set_times(rootfs)
        _run(["umoci", "repack", "--history.created", EPOCH_ISO, "--image", f"{layout}:{BASE_TAG}", str(bundle)])
        _run(["umoci", "config", "--image", f"{layout}:{BASE_TAG}", "--created", EPOCH_ISO,
              "--history.created", EPOCH_ISO, "--config.env", "PATH=/bin:/usr/bin:/sbin:/usr/sbin",
              "--config.workingdir", "/"])
        # Builds repack against the bundle, so its recorded base must be the final base manifest.
        shutil.rmtree(bundle)
        _run(["umoci", "unpack", "--image", f"{layout}:{BASE_TAG}", str(bundle)])
        _run(["umoci", "gc", "--layout", str(layout)])
        done.touch()
        return layout, bundle


def _write_file(rootfs: Path, path: str, content: str) -> None:
    rel = Path(path.lstrip("/"))
    if not rel.parts or ".." in rel.parts:
        raise ValueError(f"bad image file path {path!r}")
    target = rootfs / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()  # e.g. replacing an applet symlink must not write through to busybox
    target.write_text(content)
    os.utime(target, (EPOCH, EPOCH))
    for parent in rel.parents:
        if parent != Path("."):
            os.utime(rootfs / parent, (EPOCH, EPOCH))


def _set_times(root: Path) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (EPOCH, EPOCH), follow_symlinks=False)
    os.utime(root, (EPOCH, EPOCH))


def _run(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ImageBuildError(f"{argv[0]} {argv[1]} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def _verify_pushed(host_port: str, repository: str, tag: str, digest: str,
                   creds: tuple[str, str] | None, scheme: str) -> None:
    """Independent of the product client on purpose: tests compare the client against this."""
    url = f"{scheme}://{host_port}/v2/{repository}/manifests/{tag}"
    headers = {"Accept": MANIFEST_ACCEPT}
    with httpx.Client(timeout=10, verify=False) as http:
        resp = http.get(url, headers=headers)
        challenge = resp.headers.get("WWW-Authenticate", "")
        if resp.status_code == 401 and creds and challenge.lower().startswith("basic"):
            resp = http.get(url, headers=headers, auth=creds)
        elif resp.status_code == 401 and creds and challenge.lower().startswith("bearer"):
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            tok = http.get(params.pop("realm"), params=params, auth=creds).raise_for_status().json()
            headers["Authorization"] = f"Bearer {tok.get('token') or tok['access_token']}"
            resp = http.get(url, headers=headers)
    if resp.status_code != 200:
        raise ImageBuildError(f"pushed {repository}:{tag} but GET manifest answered {resp.status_code}")
    served = "sha256:" + hashlib.sha256(resp.content).hexdigest()
    reported = resp.headers.get("Docker-Content-Digest")
    if not (digest == served == reported):
        raise ImageBuildError(f"digest mismatch for {repository}:{tag}: skopeo {digest}, "
                              f"registry header {reported}, served bytes {served}")
