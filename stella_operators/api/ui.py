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


RELEASES_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stella releases</title>
<style>
 body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2933} h1{font-size:1.3rem} h2{font-size:1.05rem;margin-top:2rem}
 table{border-collapse:collapse;width:100%} td,th{border:1px solid #e4e7eb;padding:.45rem;text-align:left;vertical-align:top}
 code{font-size:.78rem;word-break:break-all} .s-deployed{color:#0b7a3e} .s-rejected,.s-failed,.s-rolled_back{color:#b42318}
 .s-awaiting_approval{color:#b54708} .why{white-space:pre-wrap;font-size:.82rem;background:#f5f7fa;padding:.5rem}
 a{color:#175cd3}
</style></head><body>
<h1>Releases</h1>
<p id="pending"></p>
<table id="board"></table>
<h2>Promotion timeline</h2>
<table><thead><tr><th>When</th><th>Promotion</th><th>Release</th><th>Status</th><th>Gates</th><th>Evidence</th></tr></thead>
<tbody id="timeline"></tbody></table>
<div id="why" class="why" hidden></div>
<script>
const api = p => fetch('/stella/api/v1' + p, {credentials:'same-origin', headers:{'X-Requested-With':'stella'}});
const esc = s => String(s ?? '').replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
async function why(id){
  const r = await api('/promotions/'+encodeURIComponent(id)); const d = await r.json();
  const el = document.getElementById('why'); el.hidden = false; el.textContent = d.why ? d.why.text : JSON.stringify(d);
  el.scrollIntoView();
}
async function load(){
  const r = await api('/board');
  if(!r.ok){ document.getElementById('board').innerHTML = '<tr><td>'+esc(r.status+' '+await r.text())+'</td></tr>'; return; }
  const b = await r.json();
  document.getElementById('pending').innerHTML = b.pending_approvals
    ? `<a href="/stella/ui/approvals">${b.pending_approvals} promotion(s) waiting for approval</a>` : 'No promotion is waiting for approval.';
  document.getElementById('board').innerHTML = '<tr><th>app</th>' + b.environments.map(e=>'<th>'+esc(e)+'</th>').join('') + '</tr>' +
    b.apps.map(a => '<tr><td><b>'+esc(a)+'</b></td>' + b.environments.map(e => {
      const c = (b.deployed[a]||{})[e];
      if(c === undefined) return '<td>n/a</td>';
      if(c === null) return '<td>-</td>';
      return '<td><b>'+esc(c.name)+'</b><br>'+c.components.map(x=>'<code>'+esc(x.name)+' '+esc(x.ref)+'</code>').join('<br>')+'</td>';
    }).join('') + '</tr>').join('');
  document.getElementById('timeline').innerHTML = b.timeline.map(p => `<tr>
    <td>${esc(p.requested_at.replace('T',' ').slice(0,19))}</td>
    <td>${esc(p.app)} &rarr; ${esc(p.environment)}<br><code>${esc(p.id)}</code><br>by ${esc(p.requested_by)}: <i>${esc(p.reason)}</i></td>
    <td>${esc(p.release)}</td>
    <td class="s-${esc(p.status)}">${esc(p.status)}<br><a href="#" onclick="why('${esc(p.id)}');return false">why?</a></td>
    <td>${p.gates.map(g=>esc(g.name)+': '+esc(g.verdict)+(g.reasons.length?' ('+esc(g.reasons.join(', '))+')':'')).join('<br>')}</td>
    <td>${p.evidence.map(ev=>'<a href="/stella/api/v1/evidence/'+encodeURIComponent(ev.id)+'">'+esc(ev.type)+'</a>').join('<br>')}</td></tr>`).join('');
}
load();
</script></body></html>
"""
