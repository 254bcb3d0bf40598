"""A readable view of one evidence record: what was decided, about which digests, and whether the
signature verifies against the ledger's keys. The raw signed JSON stays one link away."""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import quote


def _value(v: Any) -> str:
    if isinstance(v, dict):
        if not v:
            return '<span class="muted">(none)</span>'
        return "<table>" + "".join(f"<tr><th>{escape(str(k))}</th><td>{_value(x)}</td></tr>"
                                   for k, x in v.items()) + "</table>"
    if isinstance(v, list):
        if not v:
            return '<span class="muted">(none)</span>'
        return "<ol>" + "".join(f"<li>{_value(x)}</li>" for x in v) + "</ol>"
    if v is None:
        return '<span class="muted">-</span>'
    text = escape(str(v))
    return f"<code>{text}</code>" if isinstance(v, str) and v.startswith("sha256:") else text


def render_evidence_page(view: dict[str, Any]) -> str:
    raw = "/stella/api/v1/evidence/" + quote(view["id"], safe="")
    if view["verified"]:
        status = f'<p class="ok">&#10004; The signature verifies with key <code>{escape(view["key_id"])}</code>.</p>'
    else:
        status = (f'<p class="err">&#10008; This record does not verify: {escape(view["verify_reason"])}. '
                  "Do not rely on it.</p>")
    subjects = "".join(f"<li>{escape(s.get('name', ''))} <code>{escape(s.get('digest', ''))}</code></li>"
                       for s in view["subjects"])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evidence {escape(view['type'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2933}} h1{{font-size:1.25rem}}
table{{border-collapse:collapse}} th,td{{border:1px solid #e4e7eb;padding:.3rem .5rem;text-align:left;vertical-align:top}}
code{{font-size:.8rem;word-break:break-all}} .ok{{color:#0b7a3e}} .err{{color:#b42318;font-weight:600}}
.muted{{color:#616e7c}} a{{color:#175cd3}}</style></head><body>
<p><a href="/stella/ui/releases">&larr; Releases</a></p>
<h1>Evidence: {escape(view['type'].replace('_', ' '))}</h1>
{status}
<p class="muted">Recorded <span class="when" data-iso="{escape(view['created_at'])}">{escape(view['created_at'])}</span>
 &middot; id <code>{escape(view['id'])}</code> &middot; <a href="{raw}">raw signed JSON</a></p>
<h2>About these images</h2><ul>{subjects}</ul>
<h2>What was recorded</h2>
{_value(view['content'])}
<script>document.querySelectorAll('.when').forEach(e => e.textContent = new Date(e.dataset.iso).toLocaleString(
  undefined, {{year:'numeric', month:'short', day:'numeric',
  hour:'2-digit', minute:'2-digit', second:'2-digit', timeZoneName:'short'}}));</script>
</body></html>
"""
