"""End to end, no mocks: real registry, real dockerd hosts in network namespaces, real Airflow
(DagBag parses the shipped DAG file; runs go through `dag.test()`), real ledger and signatures.

Story: two image versions are pushed; a release is cut from tags; it is promoted dev -> stage;
a promotion that skips dev is refused and touches nothing; a second release rolls forward; a
deliberately unhealthy release is rolled back with the previous release still running.
"""

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
from datetime import UTC
from pathlib import Path

import pytest

import docker
from devstack.keys import evidence_key_env

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def estate(estate_lab, tmp_path_factory, airflow_db):
    d1 = estate_lab.push_web("1.0.0")
    d2 = estate_lab.push_web("1.1.0", fmt="oci")
    d_bad = estate_lab.push_web("9.9.9-broken", healthy=False)
    path = tmp_path_factory.mktemp("estate") / "estate.yaml"
    path.write_text(estate_lab.estate_yaml(health_timeout_s=15))
    mp = pytest.MonkeyPatch()
    mp.setenv("STELLA_ESTATE", str(path))
    # Evidence is signed with a key of the stack's own; its public key is the only trust root.
    keys = evidence_key_env(tmp_path_factory.mktemp("evidence"))
    mp.setenv("STELLA_LOCKER_URL", tmp_path_factory.mktemp("locker").as_uri())  # this run's evidence locker
    for k, v in {**estate_lab.connection_env(), **keys}.items():
        mp.setenv(k, v)
    yield {"path": path, "lab": estate_lab, "digests": {"1.0.0": d1, "1.1.0": d2, "broken": d_bad}}
    mp.undo()


@pytest.fixture(scope="module")
def dagbag(estate):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


@pytest.fixture(scope="module")
def ledger(estate):
    from stella_operators.hooks.ledger import LedgerHook

    return LedgerHook().get_conn()


def run(dagbag, dag_id, **conf):
    dag = dagbag.get_dag(dag_id)
    dr = dag.test(run_conf=conf)
    return dr


def engine(lab, target) -> docker.APIClient:
    return docker.APIClient(base_url=lab.hosts[target].engine_url, version="auto", timeout=30)


def app_containers(client):
    return client.containers(all=True, filters={"label": "stella.app=shop"})


def running_digest(client, container) -> str:
    image = client.inspect_image(container["ImageID"])
    return image["RepoDigests"][0].split("@", 1)[1]


def sticker_file(client, container_id) -> dict:
    stream, _ = client.get_archive(container_id, "/stella.version.json")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        return json.loads(tar.extractfile("stella.version.json").read())


def assert_env_runs(lab, env, hosts, digest, release):
    for target in hosts:
        client = engine(lab, target)
        containers = app_containers(client)
        assert len(containers) == 1, f"{target} runs {[c['Names'] for c in containers]}"
        c = containers[0]
        assert c["State"] == "running"
        assert running_digest(client, c) == digest
        labels = c["Labels"]
        assert labels["stella.release.id"] == release.id and labels["stella.environment"] == env
        sticker = sticker_file(client, c["Id"])
        assert sticker == json.loads(labels["stella.version.json"])
        assert sticker["target"] == target and sticker["components"][0]["digest"] == digest


def asset_events(uri):
    """The Asset events Airflow recorded for a stella environment (what downstream DAGs schedule on)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        asset_id = session.scalar(select(AssetModel.id).where(AssetModel.uri == uri))
        events = session.scalars(select(AssetEvent).where(AssetEvent.asset_id == asset_id)
                                 .order_by(AssetEvent.id)).all()
        return [{k: e.extra[k] for k in ("release_id", "release_name")} for e in events]


def stella_cli(*args):
    return subprocess.run([sys.executable, "-m", "stella_operators.cli.main", *args], capture_output=True, text=True)


def verify_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "evidence", "verify", *args],
                          capture_output=True, text=True, env=env)


def test_release_promote_roll_forward_and_roll_back(estate, dagbag, ledger, tmp_path):
    lab, digests = estate["lab"], estate["digests"]
    dev, stage = ["dev-1", "dev-2"], ["stage-1", "stage-2"]

    # 1. A release from a tag: resolved once, sealed, signed.
    dr = run(dagbag, "stella_release__shop", name="shop-1.0.0", web="1.0.0")
    assert dr.state == "success"
    r1 = ledger.find_release("shop", "shop-1.0.0")
    assert r1.digests() == {"web": digests["1.0.0"]}

    # 2. Skipping dev is refused; nothing is deployed anywhere.
    dr = run(dagbag, "stella_promote__shop__stage", release="shop-1.0.0", reason="skip dev")
    assert dr.state == "failed"
    refused = ledger.latest_promotion("shop", "stage")
    assert refused.status == "rejected"
    for target in dev + stage:
        assert app_containers(engine(lab, target)) == []

    # 3. dev, then stage: every host runs exactly the release digest, with its sticker.
    assert run(dagbag, "stella_promote__shop__dev", release="shop-1.0.0", reason="first deploy").state == "success"
    assert_env_runs(lab, "dev", dev, digests["1.0.0"], r1)
    assert asset_events("x-stella://shop/dev") == [{"release_id": r1.id, "release_name": "shop-1.0.0"}]
    assert run(dagbag, "stella_promote__shop__stage", release="shop-1.0.0", reason="dev ok").state == "success"
    assert_env_runs(lab, "stage", stage, digests["1.0.0"], r1)
    assert ledger.deployed_release("shop", "stage").id == r1.id

    # The evidence locker holds a copy (issue 9 item 5): every record of the promotion and the
    # release seal, each host's sticker and deploy log; then the scheduled checkpoint DAG signs the
    # audit chain into it and `stella audit verify` checks the chain against that checkpoint.
    from stella_operators.hooks.locker import EvidenceLockerHook

    promo = ledger.latest_promotion("shop", "stage")
    index = EvidenceLockerHook().get_conn().index("promotion", promo.id)
    locker = EvidenceLockerHook().get_conn()
    assert {e.meta["id"] for e in index.entries if e.kind == "evidence"} == {
        r.id for r in [*ledger.evidence_for(promotion_id=promo.id),
                       *ledger.evidence_for(release_id=r1.id, release_only=True)]}
    stickers = {e.meta["target"]: json.loads(locker.get(e.address)) for e in index.entries if e.kind == "sticker"}
    assert sorted(stickers) == stage and {s["release_id"] for s in stickers.values()} == {r1.id}
    assert sorted(e.meta["target"] for e in index.entries if e.kind == "deploy_log") == stage
    out = stella_cli("evidence", "locker", "verify")
    assert out.returncode == 0 and out.stdout.startswith("ok: "), out.stdout + out.stderr
    assert run(dagbag, "stella_audit_checkpoint").state == "success"
    out = stella_cli("audit", "verify")
    assert out.returncode == 0 and out.stdout.endswith("; 1 checkpoint(s) hold\n"), out.stdout + out.stderr

    # Evidence for every step verifies; a changed byte does not.
    records = ledger.evidence_for(release_id=r1.id)
    assert {r.type for r in records} >= {"release", "gate_decision", "deployment"}
    exported = tmp_path / "ev.json"
    exported.write_text(records[0].to_file_json())
    out = verify_cli(*[rec.id for rec in records], str(exported))
    assert out.returncode == 0 and out.stdout.count("ok: ") == len(records) + 1, out.stdout + out.stderr
    # Tamper with what the record says (the deployed digest), keep everything else well-formed.
    doc = json.loads(exported.read_text())
    payload = base64.b64decode(doc["envelope"]["payload"])
    digest_hex = digests["1.0.0"].split(":", 1)[1]
    forged = payload.replace(digest_hex.encode(), digest_hex[::-1].encode())
    assert forged != payload
    doc["envelope"]["payload"] = base64.b64encode(forged).decode()
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(doc))
    out = verify_cli(str(tampered))
    assert out.returncode == 1 and "INVALID" in out.stdout, out.stdout + out.stderr
    # Without a trust store nothing verifies, and the error says how to configure one.
    out = subprocess.run([sys.executable, "-m", "stella_operators.cli.main", "evidence", "verify", records[0].id],
                         capture_output=True, text=True, env={k: v for k, v in os.environ.items()
                                                              if k != "STELLA_TRUST_DIR"})
    assert out.returncode == 2 and out.stdout == "", out.stdout
    assert "no trust store configured" in out.stderr and "STELLA_TRUST_DIR" in out.stderr, out.stderr

    # 4. Re-running the same promotion changes nothing (same container ids).
    before = {t: [c["Id"] for c in app_containers(engine(lab, t))] for t in dev}
    assert run(dagbag, "stella_promote__shop__dev", release="shop-1.0.0", reason="again").state == "success"
    assert {t: [c["Id"] for c in app_containers(engine(lab, t))] for t in dev} == before

    # 5. Roll forward to 1.1.0 (an OCI-format image): old containers are gone.
    assert run(dagbag, "stella_release__shop", name="shop-1.1.0", web="1.1.0").state == "success"
    r2 = ledger.find_release("shop", "shop-1.1.0")
    assert run(dagbag, "stella_promote__shop__dev", release="shop-1.1.0", reason="roll forward").state == "success"
    assert_env_runs(lab, "dev", dev, digests["1.1.0"], r2)
    ids_r2 = {t: [c["Id"] for c in app_containers(engine(lab, t))] for t in dev}

    # 6. An unhealthy release is rolled back: 1.1.0 still runs, same containers, reason recorded.
    assert run(dagbag, "stella_release__shop", name="shop-broken", web="9.9.9-broken").state == "success"
    dr = run(dagbag, "stella_promote__shop__dev", release="shop-broken", reason="should fail")
    assert dr.state == "failed"
    assert_env_runs(lab, "dev", dev, digests["1.1.0"], r2)
    assert {t: [c["Id"] for c in app_containers(engine(lab, t))] for t in dev} == ids_r2
    failed = ledger.latest_promotion("shop", "dev")
    assert failed.status == "rolled_back"
    rollback = [r for r in ledger.evidence_for(promotion_id=failed.id) if r.type == "rollback"]
    assert len(rollback) == 1 and verify_cli(rollback[0].id).returncode == 0
    assert ledger.deployed_release("shop", "dev").id == r2.id
    # stage never saw any of it
    assert_env_runs(lab, "stage", stage, digests["1.0.0"], r1)


def test_unknown_tag_fails_the_release_run_clearly(estate, dagbag, ledger):
    dr = run(dagbag, "stella_release__shop", name="shop-nope", web="0.0.0-missing")
    assert dr.state == "failed"
    assert ledger.find_release("shop", "shop-nope") is None


def test_a_self_registered_key_cannot_forge_an_approval(estate, dagbag, ledger, tmp_path):
    """Issue 6 item 8: a process holding a key of its own (e.g. its own AIRFLOW_CONN_STELLA_SIGNING_KEY)
    seals a release with it, which registers the key in the ledger, and stores a forged approval
    signed with it; verification must still refuse both records."""
    from datetime import datetime

    from stella_operators.estate.loader import load_estate
    from stella_operators.evidence import SigningKey
    from stella_operators.evidence.recorder import record_evidence
    from stella_operators.hooks.registry import registry_resolver
    from stella_operators.release.service import cut_release, record_release

    mallory = SigningKey.generate()
    own = {**os.environ, "AIRFLOW_CONN_STELLA_SIGNING_KEY": json.dumps(
        {"conn_type": "generic", "password": mallory.to_pem().decode()})}
    shop = load_estate(estate["path"])
    record_release(ledger, mallory, cut_release(shop, app="shop", name="shop-mallory", refs={"web": "1.0.0"},
                                                resolve=registry_resolver(shop), created_by="mallory"))
    assert mallory.key_id in ledger.registered_keys()  # the ledger registered it: that must not mean trust
    release = ledger.find_release("shop", "shop-mallory")
    [sealed_by_mallory] = ledger.evidence_for(release_id=release.id)
    forged = record_evidence(ledger, mallory, "approval", release,
                             {"approver": "bob", "decision": "approve", "environment": "stage"},
                             now=datetime.now(UTC))
    out = verify_cli(forged.id, sealed_by_mallory.id, env=own)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.count(f"untrusted key {mallory.key_id}: not in the trust store") == 2, out.stdout
    # ...while evidence signed with the configured key still verifies against the trust store.
    assert run(dagbag, "stella_release__shop", name="shop-genuine", web="1.0.0").state == "success"
    [genuine] = ledger.evidence_for(release_id=ledger.find_release("shop", "shop-genuine").id)
    out = verify_cli(genuine.id)
    assert out.returncode == 0 and f"ok: {genuine.id} (key " in out.stdout, out.stdout + out.stderr


def test_cli_release_create_writes_nothing_itself(estate, ledger, monkeypatch):
    """`stella release create` cuts releases only through the Airflow API server, as the logged-in
    user (tests/integration/test_release_cli.py); it never records a release with a creator of
    its own choosing. Without a reachable API server: a one-line error, nothing recorded."""
    monkeypatch.setenv("STELLA_API_PASSWORD", "irrelevant")
    out = stella_cli("release", "create", "--estate", str(estate["path"]), "--app", "shop", "--api-url",
                     "http://127.0.0.1:9", "--name", "shop-cli-1.0.0", "web=1.0.0", "--user", "carol")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "ConnectError" in out.stderr
    assert ledger.find_release("shop", "shop-cli-1.0.0") is None
