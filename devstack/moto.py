"""moto's AWS emulator (moto emulator, not AWS) as a real HTTP server on 127.0.0.1 (`moto_server`), for
the ecs target's tests and the evidence locker's S3 tests (`create_bucket`: moto's in-memory S3,
which keeps objects only while the server runs and checks no real IAM policy).

Not AWS: moto models clusters, task definition revisions and a service's PRIMARY deployment, whose
`rolloutState` is COMPLETED when the server's MOTO_ECS_SERVICE_RUNNING >= the service's desired
count at creation, else IN_PROGRESS forever (see TEST-ESTATE.md for what it does not model).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import httpx

from devstack.registry import free_port
from devstack.waiting import wait_until


class MotoServer:
    def __init__(self, workdir: Path, *, running_tasks: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "moto.log"
        binary = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        env = {**os.environ, "MOTO_ECS_SERVICE_RUNNING": str(running_tasks)}
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([binary, "-H", "127.0.0.1", "-p", str(self.port)], env=env,
                                         stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_until(self._up, timeout_s=30, what=f"moto_server on {self.url}", every=0.2)
        except BaseException:
            self.stop()
            raise

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"moto_server exited: {self.log_path.read_text()[-500:]}")
        try:
            return httpx.get(self.url + "/moto-api/", timeout=1).status_code < 500
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def create_bucket(self, name: str, *, region: str = "us-east-1") -> None:
        """An S3 bucket in this moto server (any access key works: moto checks no credentials)."""
        boto3.client("s3", endpoint_url=self.url, region_name=region, aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(Bucket=name)
