"""The README's walkthrough, done by people in a real browser (Debian's chromium) against a real
Airflow: trigger forms with only the required fields, the Approvals page as requester, approver
and outsider, the Releases page's "why?" and the readable evidence view.

The estate (tests/integration/browser/stack.py): `dev` needs one approval from release-managers
(admin, bob) with separation of duties; its one Docker target listens nowhere, so an approved
promotion fails at deploy time and says which host it could not reach.
"""

from __future__ import annotations

import pytest

from devstack.airflow_stack import AirflowStack
from devstack.waiting import wait_until

pytestmark = pytest.mark.browser

RELEASE_DAG = "stella_release__shop"
DEV_DAG = "stella_promote__shop__dev"


def api(stack: AirflowStack, path: str, user: str = "admin"):
    r = stack.http.get(path, headers={"Authorization": f"Bearer {stack.tokens[user]}"})
    assert r.status_code == 200, r.text
    return r.json()




def latest_run(stack, dag_id: str) -> dict | None:
    runs = api(stack, f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=1")["dag_runs"]
    return runs[0] if runs else None


def trigger_through_form(person, dag_id: str, fields: dict[str, str], shot: str) -> None:
    """Open the DAG in Airflow's UI, press Trigger, fill only `fields`, submit."""
    page = person.page
    page.goto(f"{person.stack.url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    for name, value in fields.items():
        dialog.locator(f"#element_{name}").fill(value)
    submit = dialog.get_by_test_id("trigger-dag-submit")
    person.shot(f"{shot}-form")
    assert submit.is_enabled(), "the Trigger button stays disabled with only the required fields filled"
    submit.click()
    page.wait_for_url(f"**/dags/{dag_id}/runs/**")


def open_stella_view(person, name: str):
    """Browse > <name> in Airflow's navigation; the page is an iframe inside Airflow's UI."""
    page = person.page
    page.goto(person.stack.url + "/")
    page.get_by_role("button", name="Browse").first.click()
    page.get_by_text(name, exact=True).first.click()
    return page.frame_locator("iframe").first


def card(frame, promotion_id: str):
    return frame.locator(f"section#p-{promotion_id}")


@pytest.fixture(scope="module")
def promotion(ui_stack, people):
    """admin cuts a release and asks to promote it, both through the trigger forms."""
    admin = people("admin")
    trigger_through_form(admin, RELEASE_DAG, {"name": "shop-1.0.0", "web": "1.0.0"}, "release")
    run = wait_until(lambda: (r := latest_run(ui_stack, RELEASE_DAG)) and r["state"] in ("success", "failed") and r,
                     120, "the release run")
    assert run["state"] == "success", run
    trigger_through_form(admin, DEV_DAG, {"release": "shop-1.0.0", "reason": "first deploy to dev"}, "promote")
    promos = wait_until(lambda: api(ui_stack, "/stella/api/v1/ui/approvals")["promotions"], 120,
                        "the promotion to wait for approval")
    assert [p["release"]["name"] for p in promos] == ["shop-1.0.0"]
    return promos[0]


def test_a_reason_of_spaces_is_refused_by_the_trigger_form(people, promotion, ui_stack):
    admin = people("admin")
    page = admin.page
    page.goto(f"{ui_stack.url}/dags/{DEV_DAG}")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.locator("#element_release").fill("shop-1.0.0")
    dialog.locator("#element_reason").fill("   ")
    dialog.get_by_test_id("trigger-dag-submit").click()
    dialog.get_by_text("Invalid input for param reason").wait_for()
    admin.shot("blank-reason-refused")
    assert "/runs/" not in page.url
    assert len(api(ui_stack, "/stella/api/v1/ui/approvals")["promotions"]) == 1   # only the real one


def test_requester_sees_why_they_cannot_approve(people, promotion):
    admin = people("admin")
    frame = open_stella_view(admin, "Stella approvals")
    row = card(frame, promotion["id"])
    row.wait_for()
    assert "You requested this promotion, so you cannot approve it" in row.locator(".why-not").inner_text()
    assert row.get_by_role("button", name="Approve").count() == 0
    admin.shot("approvals-as-requester")


def test_someone_outside_the_approver_groups_is_told_so(people, promotion):
    carol = people("carol")
    row = card(open_stella_view(carol, "Stella approvals"), promotion["id"])
    row.wait_for()
    assert "not in an approver group of this environment (release-managers)" in row.locator(".why-not").inner_text()
    carol.shot("approvals-not-an-approver")


def test_approver_sees_what_they_approve_and_the_row_settles(people, promotion, ui_stack):
    bob = people("bob")
    frame = open_stella_view(bob, "Stella approvals")
    row = card(frame, promotion["id"])
    row.wait_for()
    text = row.inner_text()
    # what is approved, against what, asked by whom and why, with the way to the Airflow run
    assert "shop-1.0.0" in text and "1.0.0" in text and promotion["components"][0]["digest"] in text
    assert "now in dev" in text and "nothing yet" in text
    assert "Requested by admin" in text and "first deploy to dev" in text
    assert "Gate upstream" in text and "passed" in text
    assert row.get_by_role("link", name="Airflow run").get_attribute("href").startswith(f"/dags/{DEV_DAG}/runs/")
    # what will change, per host, read from the hosts now: dev-1 listens nowhere, and the page says so
    assert "What will change" in text
    unknown = row.locator("tr.plan-row.unknown[data-target='dev-1']").inner_text()
    assert unknown.startswith("dev-1") and "could not read host dev-1: " in unknown
    assert "What would change on dev-1 is unknown. You may still approve" in text
    bob.shot("approvals-before")
    row.get_by_role("button", name="Approve").click()
    row.locator(".msg.ok").wait_for()
    assert "You approved it" in row.locator(".msg").inner_text()
    # settled: the promotion moved on (its deploy then fails: the target listens nowhere)
    frame.locator(f"section#p-{promotion['id']}.settled").wait_for(timeout=90_000)
    assert row.locator("button").count() == 0
    bob.shot("approvals-settled")
    final = wait_until(lambda: (p := api(ui_stack, f"/stella/api/v1/ui/approvals?promotion={promotion['id']}")
                                ["promotions"][0])["status"] in ("failed", "rolled_back") and p, 120, "the deploy")
    assert final["status"] == "failed"


def test_why_for_a_rejected_promotion_reads_as_sentences(people, ui_stack):
    admin, bob = people("admin"), people("bob")
    trigger_through_form(admin, DEV_DAG, {"release": "shop-1.0.0", "reason": "second try"}, "promote-again")
    pid = wait_until(lambda: [p["id"] for p in api(ui_stack, "/stella/api/v1/ui/approvals")["promotions"]], 120,
                     "the second promotion to wait")[0]
    row = card(open_stella_view(bob, "Stella approvals"), pid)
    row.locator("input[placeholder^='comment']").fill("not before the load test")
    row.get_by_role("button", name="Reject").click()
    row.locator(".msg.ok").wait_for()
    assert "You rejected it" in row.locator(".msg").inner_text()
    row.locator("xpath=self::section[contains(@class, 'settled')]").wait_for(timeout=90_000)
    assert row.locator("button").count() == 0 and "rejected" in row.locator(".badge").inner_text()
    bob.shot("approvals-rejected-settled")

    frame = open_stella_view(admin, "Stella releases")
    frame.locator(f"a[data-why='{pid}']").click()
    why = frame.locator(f"#why-{pid} td.why")
    why.wait_for()
    assert "bob rejected it, so it ended without deploying." in why.inner_text()
    assert "not before the load test" in why.inner_text()
    assert "{" not in why.inner_text()          # sentences, not a Python dict
    admin.shot("releases-why-rejected")
    # the failed deploy says which host it could not reach
    failed = next(p for p in api(ui_stack, "/stella/api/v1/ui/board")["timeline"] if p["status"] == "failed")
    frame.locator(f"a[data-why='{failed['id']}']").click()
    why = frame.locator(f"#why-{failed['id']} td.why")
    why.wait_for()
    assert "The deployment failed" in why.inner_text() and "dev-1" in why.inner_text()
    # who approved, and times with their zone
    timeline = frame.locator("#timeline").inner_text()
    assert "bob" in timeline and ("CET" in timeline or "GMT+1" in timeline)
    admin.shot("releases-why-failed")


def test_evidence_opens_as_a_readable_verified_page(people):
    admin = people("admin")
    frame = open_stella_view(admin, "Stella releases")
    frame.get_by_role("link", name="approval").first.click()
    frame.get_by_text("The signature verifies").wait_for()
    body = frame.locator("body").inner_text()
    assert "Evidence: approval" in body and "bob" in body and "raw signed JSON" in body
    admin.shot("evidence-readable")


def _has_abort_route() -> bool:
    from stella_operators.api.app import app

    return any(getattr(r, "path", "") == "/api/v1/promotions/{promotion_id}/abort" for r in app.routes)


@pytest.mark.skipif(not _has_abort_route(), reason="POST /stella/api/v1/promotions/{id}/abort is not in this "
                                                   "build yet (another change adds it); the page's button is")
def test_abort_from_the_approvals_page(people, ui_stack):
    admin = people("admin")
    trigger_through_form(admin, DEV_DAG, {"release": "shop-1.0.0", "reason": "third try"}, "promote-to-abort")
    pid = wait_until(lambda: [p["id"] for p in api(ui_stack, "/stella/api/v1/ui/approvals")["promotions"]], 120,
                     "the promotion to wait")[0]
    frame = open_stella_view(admin, "Stella approvals")
    row = card(frame, pid)
    row.get_by_role("button", name="Abort").click()           # no reason given
    row.locator(".msg.err").wait_for()
    assert row.locator(".msg").inner_text().startswith("Give a reason to abort")
    row = card(open_stella_view(admin, "Stella approvals"), pid)
    row.locator("input[placeholder^='why abort']").fill("wrong release")
    row.get_by_role("button", name="Abort").click()
    row.locator(".msg.ok").wait_for()
    assert row.locator(".msg").inner_text() == "You aborted this promotion."
    frame.locator(f"section#p-{pid}.settled").wait_for(timeout=90_000)
    assert row.locator("button").count() == 0
    admin.shot("approvals-aborted")
