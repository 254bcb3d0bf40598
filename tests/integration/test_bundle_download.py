"""Downloading a promotion bundle through the real Airflow API app (in-process, real auth): the
Releases page's "bundle (tar)" link; the downloaded tar verifies offline against the trust store."""

from __future__ import annotations

import json

import pytest

from stella_operators.evidence.bundle import verify_bundle
from stella_operators.evidence.keys import TrustedKeys
from stella_operators.promotion.service import deploy_promotion, verify_promotion
from tests.unit.promotion.fakes import World


@pytest.fixture()
def shipped(airflow_api, tmp_path, monkeypatch):
    monkeypatch.setenv("STELLA_HOME", str(tmp_path / "stella"))
    (tmp_path / "stella").mkdir()
    monkeypatch.setenv("STELLA_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    world = World(tmp_path)
    key_file = tmp_path / "signing.pem"
    key_file.write_bytes(world.key.to_pem())
    monkeypatch.setenv("AIRFLOW_CONN_STELLA_SIGNING_KEY",
                       json.dumps({"conn_type": "generic", "extra": {"key_file": str(key_file)}}))
    promo = world.approved(1)
    deploy_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    verify_promotion(world.estate, world.ledger, world.key, promo.id, world.targets)
    yield world, promo, airflow_api
    world.ledger.close()


def test_the_bundle_downloads_as_a_tar_that_verifies_offline(shipped):
    world, promo, api = shipped
    r = api.request("GET", f"/stella/api/v1/promotions/{promo.id}/bundle", user="alice")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-tar"
    assert r.headers["content-disposition"] == f'attachment; filename="stella-bundle-{promo.id}.tar"'
    trusted = TrustedKeys()
    trusted.add(world.key.public_pem())
    report = verify_bundle(r.content, trusted)
    assert report.ok, report.lines()
    assert any(f.endswith("-deployment.json") for f, _ in report.records)
    assert api.request("GET", "/stella/api/v1/promotions/prm-unknown/bundle", user="alice").status_code == 404
