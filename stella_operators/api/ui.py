"""The Approvals page shown inside the Airflow UI (an external view); data comes from our REST API."""

APPROVALS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stella approvals</title>
<style>
 body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2933}
 h1{font-size:1.3rem} table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #e4e7eb;padding:.5rem;text-align:left;vertical-align:top}
 code{font-size:.8rem;word-break:break-all} .why{white-space:pre-wrap;font-size:.85rem;color:#52606d}
 button{margin-right:.4rem;padding:.3rem .8rem} .ok{color:#0b7a3e} .err{color:#b42318}
</style></head><body>
<h1>Promotions waiting for approval</h1>
<p>Your identity is your Airflow login. Approving binds to the exact digests shown.</p>
<div id="msg"></div>
<table><thead><tr><th>Promotion</th><th>Release (digests)</th><th>Requested</th><th>Approvals</th><th>Decide</th></tr></thead>
<tbody id="rows"><tr><td colspan="5">loading...</td></tr></tbody></table>
<script>
const api = (p, o={}) => fetch('/stella/api/v1' + p, Object.assign({credentials:'same-origin',
  headers:{'Content-Type':'application/json','X-Requested-With':'stella'}}, o));
const esc = s => String(s ?? '').replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
async function load(){
  const r = await api('/promotions?status=awaiting_approval'); const rows = document.getElementById('rows');
  if(!r.ok){ rows.innerHTML = '<tr><td colspan=5 class=err>'+esc(r.status+' '+await r.text())+'</td></tr>'; return; }
  const data = await r.json();
  if(!data.promotions.length){ rows.innerHTML = '<tr><td colspan=5>Nothing is waiting.</td></tr>'; return; }
  rows.innerHTML = data.promotions.map(p => `<tr>
   <td><b>${esc(p.app)} &rarr; ${esc(p.environment)}</b><br><code>${esc(p.id)}</code></td>
   <td>${esc(p.release.name)}<br>${p.release.components.map(c=>'<code>'+esc(c.name)+' '+esc(c.ref)+'</code>').join('<br>')}</td>
   <td>${esc(p.requested_by)}<br><i>${esc(p.reason)}</i></td>
   <td>${esc((p.approvals||{}).approvers?.join(', ')||'none yet')}; ${esc((p.approvals||{}).needed)} more needed</td>
   <td><input id="c-${esc(p.id)}" placeholder="comment"><br>
     <button onclick="decide('${esc(p.id)}','approve','${esc(p.release.content_hash)}')">Approve</button>
     <button onclick="decide('${esc(p.id)}','reject','${esc(p.release.content_hash)}')">Reject</button></td></tr>`).join('');
}
async function decide(id, decision, hash){
  const comment = document.getElementById('c-'+id).value;
  const r = await api('/promotions/'+encodeURIComponent(id)+'/approvals', {method:'POST',
     body: JSON.stringify({decision, comment, content_hash: hash})});
  const body = await r.json().catch(() => ({}));
  const m = document.getElementById('msg');
  m.className = r.ok ? 'ok' : 'err';
  m.textContent = r.ok ? (body.counted ? decision+' recorded' : 'already counted') : ('refused: '+(body.refusal||body.detail||r.status));
  load();
}
load();
</script></body></html>
"""
