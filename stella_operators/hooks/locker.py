"""EvidenceLockerHook: the evidence locker over Airflow's object storage (`ObjectStoragePath`).

`file:///...` (default `$STELLA_HOME/locker`) or `s3://bucket/prefix`; credentials and endpoint come
from an Airflow Connection (`STELLA_LOCKER_CONN_ID`, e.g. an `aws` Connection whose extra may hold
`endpoint_url`), never from the URL, so they reach no log, XCom or evidence.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow.sdk import BaseHook, ObjectStoragePath

from stella_operators import settings
from stella_operators.evidence.locker import EvidenceLocker, LockerError, LockerPath, parse_retention


def locker_where(url: str) -> str:
    """The URL as it may be shown (it never carries credentials: those are refused)."""
    return url.rstrip("/")


class EvidenceLockerHook(BaseHook):
    """The evidence locker at `url` (default: settings.locker_url()) with the Connection `conn_id`
    (default: settings.locker_conn_id(); none for a local folder)."""

    conn_name_attr = "locker_conn_id"
    hook_name = "Stella evidence locker"

    def __init__(self, url: str | None = None, conn_id: str | None = None, retention: str | None = None):
        super().__init__()
        self.url = url or settings.locker_url()
        self.locker_conn_id = conn_id if conn_id is not None else settings.locker_conn_id()
        self.retention = settings.locker_retention() if retention is None else retention

    def get_conn(self) -> EvidenceLocker:
        parts = urlsplit(self.url)
        if parts.scheme not in ("file", "s3"):
            raise LockerError(f"evidence locker URL {self.url!r}: expected file:///PATH or s3://BUCKET/PREFIX "
                              "(STELLA_LOCKER_URL)")
        if parts.username or parts.password:
            raise LockerError("evidence locker URL carries credentials: remove them and put them in the Airflow "
                              "Connection named by STELLA_LOCKER_CONN_ID")
        if parts.scheme == "s3" and not parts.netloc:
            raise LockerError(f"evidence locker URL {self.url!r} names no bucket: s3://BUCKET/PREFIX")
        base = ObjectStoragePath(self.url, conn_id=self.locker_conn_id or None)
        return EvidenceLocker(base, retention=parse_retention(self.retention), local=parts.scheme == "file",
                              where=locker_where(self.url), forget=_forget)


def _forget(path: LockerPath) -> None:
    """Drop fsspec's cached listing of `path` (an ObjectStoragePath; see EvidenceLocker.forget)."""
    if isinstance(path, ObjectStoragePath):
        path.fs.invalidate_cache(path.path)
