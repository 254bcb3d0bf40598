"""The shell lines of the ssh target, run for real by the local /bin/sh (no SSH in between, the
remote shell runs them the same way): quoting, the release layout, backup, restore, pruning."""

from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path

import pytest

from stella_operators.targets.ssh import remote
from stella_operators.targets.ssh.fanout import RemoteFile, change_command, tar_bytes

NASTY = ["it's", "$(touch PWNED)", "`touch PWNED2`", "a b;c", '"q"', "*", "", "{x}"]


def sh(line: str, stdin: bytes = b"", cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", line], input=stdin.decode(), capture_output=True, text=True, cwd=cwd,
                          timeout=30)


@pytest.fixture
def base(tmp_path) -> str:
    return str(tmp_path / "srv it's" / "shop")  # a space and a quote in every path


def test_env_file_values_come_back_literally(tmp_path):
    values = {"A": "it's $(touch PWNED) `x` \\n \"q\"", "B": "line1\nline2", "C": ""}
    env = tmp_path / "e.env"
    env.write_bytes(remote.env_file(values))
    out = sh(f"set -a; . {remote.q(str(env))}; printf '%s|' \"$A\" \"$B\" \"$C\"", cwd=tmp_path)
    assert out.stdout == "|".join(values.values()) + "|"
    assert not list(tmp_path.glob("PWNED*"))
    with pytest.raises(ValueError, match="not valid"):
        remote.env_file({"A B": "x"})


def test_in_release_runs_argv_in_the_dir_with_the_env_file_and_every_argument_intact(tmp_path, base):
    rel = Path(base) / "releases" / "dep-1"
    (rel / ".stella").mkdir(parents=True)
    (rel / ".stella" / "web.env").write_bytes(remote.env_file({"STELLA_IMAGE": "r/w@sha256:1"}))
    argv = ["sh", "-c", 'printf "%s|" "$PWD" "$STELLA_IMAGE" "$@"', "sh", *NASTY]
    out = sh(remote.in_release(str(rel), "web", argv, 5))
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"{rel}|r/w@sha256:1|" + "".join(a + "|" for a in NASTY)
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))


def test_in_release_kills_a_command_over_its_timeout():
    out = sh(remote.in_release("/", "web", ["sleep", "10"], 0.3))
    assert out.returncode == 124


def test_fill_keeps_each_argument_one_argument():
    values = {"image": "r/w@sha256:1 ; rm -rf /", "release_dir": "/srv/a b"}
    assert remote.fill(["run", "--image={image}", "{release_dir}/x", "{{literal}}"], values) == [
        "run", "--image=r/w@sha256:1 ; rm -rf /", "/srv/a b/x", "{literal}"]


@pytest.mark.parametrize("bad", ["../x", "a b", "a/b", "", "-rf", "x" * 200])
def test_a_deployment_id_that_cannot_name_a_dir_is_refused(bad):
    with pytest.raises(ValueError, match="cannot name a release dir"):
        remote.release_dir("/srv", bad)


def _upload(base: str, dep: str, files: list[tuple[str, bytes, int]], backup: list[str] = ()) -> None:
    out = sh(remote.upload_script(base, dep, list(backup)), stdin=tar_bytes(files))
    assert out.returncode == 0, out.stderr


def test_upload_switch_facts_restore_and_prune_on_a_real_shell(tmp_path, base):
    conf = tmp_path / "etc it's" / "app.conf"
    conf.parent.mkdir()
    conf.write_text("hand-written\n")
    created = tmp_path / "etc it's" / "new.conf"
    sticker = b'{"not": "checked here"}\n'
    files = [("stella.version.json", sticker, 0o644), ("bin/run me", b"#!/bin/sh\n", 0o755),
             (".stella/web.env", remote.env_file({"X": "1"}), 0o600)]
    _upload(base, "dep-1", files, [str(conf), str(created)])
    rel1 = f"{base}/releases/dep-1"
    assert (Path(rel1) / "bin" / "run me").stat().st_mode & 0o777 == 0o755
    assert (Path(rel1) / ".stella" / "previous").read_text() == ""       # nothing ran before
    assert (Path(rel1) / ".stella" / "backup.absent").read_text() == f"{created}\n"
    assert sh(remote.switch_script(base, rel1)).returncode == 0
    assert Path(base, "current").resolve() == Path(rel1).resolve()

    script, token = remote.facts_script(base, {"web": ["sh", "-c", "echo out-$X; exit 3"]}, 5)
    kinds = dict((k, v) for k, v in remote.parse_tokens(sh(script).stdout, token) if k != "status")
    assert kinds["cur"] == rel1 and base64.b64decode(kinds["sticker"]) == sticker
    status = [v for k, v in remote.parse_tokens(sh(script).stdout, token) if k == "status"][0].split(" ")
    assert status[:2] == ["web", "3"] and base64.b64decode(status[2]) == b"out-1"

    # the second deployment notes the first as previous; activate "changes" the backed-up files
    _upload(base, "dep-2", files, [str(conf), str(created)])
    rel2 = f"{base}/releases/dep-2"
    assert (Path(rel2) / ".stella" / "previous").read_text() == rel1
    sh(remote.switch_script(base, rel2))
    conf.write_text("changed by activate\n")
    created.write_text("created by activate\n")
    inspect, token = remote.inspect_script(base, "dep-2")
    found = dict((k, v) for k, v in remote.parse_tokens(sh(inspect).stdout, token))
    assert found["cur"] == rel2 and found["prev"] == rel1 and found["rel"] == "yes"
    assert sh(remote.switch_script(base, found["prev"])).returncode == 0
    assert sh(remote.restore_backup_script(rel2)).returncode == 0
    assert conf.read_text() == "hand-written\n" and created.exists() is False
    assert sh(remote.remove_release_script(base, "dep-2")).returncode == 0
    assert sorted(p.name for p in Path(base, "releases").iterdir()) == ["dep-1"]
    # removing the dir `current` points to is refused silently (idempotent discard)
    sh(remote.remove_release_script(base, "dep-1"))
    assert Path(rel1).exists()


def test_prune_keeps_the_newest_plus_current_and_its_previous(tmp_path, base):
    files = [("stella.version.json", b"{}", 0o644)]
    for i in range(1, 6):
        _upload(base, f"dep-{i}", files)
        os.utime(f"{base}/releases/dep-{i}", (time.time() - 100 + i, time.time() - 100 + i))
    sh(remote.switch_script(base, f"{base}/releases/dep-1"))  # an old release is current (a rollback)
    Path(f"{base}/releases/dep-1/.stella/previous").write_text(f"{base}/releases/dep-2")
    assert sh(remote.prune_script(base, 2)).returncode == 0
    assert sorted(p.name for p in Path(base, "releases").iterdir()) == ["dep-1", "dep-2", "dep-4", "dep-5"]


def test_fanout_change_line_writes_files_then_runs_the_command(tmp_path):
    one = tmp_path / "a dir" / "it's.conf"
    line, data = change_command([RemoteFile(str(one), b"x" * 2048, 0o600)], ["sha256sum", str(one)])
    out = sh(line, stdin=data)
    assert out.returncode == 0 and one.read_bytes() == b"x" * 2048 and one.stat().st_mode & 0o777 == 0o600
    assert str(one) in out.stdout
    two = [RemoteFile(str(tmp_path / "t" / "1"), b"1"), RemoteFile(str(tmp_path / "t" / "2"), b"2", 0o755)]
    line, data = change_command(two, ["true"])
    assert sh(line, stdin=data).returncode == 0
    assert (tmp_path / "t" / "1").read_bytes() == b"1" and (tmp_path / "t" / "2").stat().st_mode & 0o777 == 0o755
