"""The Approvals and Releases pages shown inside the Airflow UI (external views); their data comes
from our REST API (/stella/api/v1/ui/...), rendered in the browser. Times are shown in the
viewer's time zone, with the zone's name."""

import json

from stella_operators.api.sentences import REFUSALS

_STYLE = """
 body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1f2933;font-size:15px}
 h1{font-size:1.3rem} h2{font-size:1.05rem;margin:1.6rem 0 .4rem}
 table{border-collapse:collapse} td,th{border-bottom:1px solid #e4e7eb;padding:.35rem .5rem;text-align:left;vertical-align:top}
 code{font-size:.78rem;word-break:break-all;color:#3e4c59} .muted{color:#616e7c;font-size:.85rem}
 .manual{color:#b54708;font-weight:600} .ok,.g-pass,.s-deployed{color:#0b7a3e} .err,.g-fail,.s-rejected,.s-failed,.s-rolled_back,.s-cancelled{color:#b42318}
 .g-pending,.s-awaiting_approval{color:#b54708} a{color:#175cd3}
 .card{border:1px solid #d9e2ec;border-radius:8px;padding:.8rem 1rem;margin:.8rem 0;max-width:70rem}
 .card h3{margin:.1rem 0 .5rem;font-size:1.05rem} .badge{display:inline-block;border-radius:4px;padding:0 .4rem;
 background:#f0f4f8;font-size:.8rem;margin-left:.4rem} .settled{background:#f7faf7}
 .why-not{background:#fff8e6;border-left:3px solid #b54708;padding:.4rem .6rem;margin:.5rem 0}
 .msg{margin:.4rem 0;font-weight:600} button{margin-right:.4rem;padding:.3rem .8rem} input{padding:.3rem;width:22rem}
 .plan-unknown{background:#fff8e6;border-left:3px solid #b54708}
 .degraded{color:#b42318;font-weight:600} .why{background:#f5f7fa;padding:.5rem .8rem}
 .canary{color:#175cd3;font-weight:600} .canary-steps{font-size:.85rem;background:#f5f9ff;padding:.3rem .8rem}
"""

_COMMON_JS = """
const api = (p, o={}) => fetch('/stella/api/v1' + p, Object.assign({credentials:'same-origin',
  headers:{'Content-Type':'application/json','X-Requested-With':'stella'}}, o));
const esc = s => String(s ?? '').replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));
const when = iso => iso ? new Date(iso).toLocaleString(undefined, {year:'numeric', month:'short',
  day:'numeric', hour:'2-digit', minute:'2-digit', second:'2-digit', timeZoneName:'short'}) : '';
const short = d => d ? esc(d.slice(0, 19)) + '&hellip;' : '';
"""

APPROVALS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stella approvals</title>
<style>""" + _STYLE + """</style></head><body>
<h1>Promotions waiting for approval</h1>
<p class="muted">You are <b id="me">...</b> (your Airflow login). An approval binds to the exact digests and the plan shown.</p>
<div id="cards">loading...</div>
<script>""" + _COMMON_JS + """
const REFUSALS = """ + json.dumps(REFUSALS) + """;
const done = new Set(['deployed','rejected','cancelled','failed','rolled_back']);
function components(p){
  return '<table><tr><th>component</th><th>now in '+esc(p.environment)+'</th><th>new</th></tr>' +
    p.components.map(c => '<tr><td>'+esc(c.name)+'</td><td>' +
      (c.current ? '<b>'+esc(c.current.tag||'(no tag)')+'</b> <code title="'+esc(c.current.digest)+'">'+short(c.current.digest)+'</code>'
                 : '<span class="muted">nothing yet</span>') + '</td><td>' +
      '<b>'+esc(c.tag||'(no tag)')+'</b> <code title="'+esc(c.digest)+'">'+esc(c.digest)+'</code>' +
      (c.changed ? '' : ' <span class="muted">(unchanged)</span>') + '</td></tr>').join('') + '</table>';
}
const ACTIONS = {start:'started', replace:'replaced', restart:'restarted (unhealthy now)', keep:'left alone'};
function plan(p){
  if (!p.plan) return '';
  let h = '<div><b>What will change</b> <span class="muted">(read from the hosts now; plan <code>'+esc(p.plan.hash.slice(0, 19))+'&hellip;</code>)</span></div>' +
    '<table class="plan"><tr><th>host</th><th>component</th><th>now</th><th>new</th><th>container</th></tr>';
  p.plan.targets.forEach(t => {
    if (t.unknown){ h += '<tr class="plan-row unknown" data-target="'+esc(t.target)+'"><td>'+esc(t.target)+'</td><td colspan="4" class="err">'+esc(t.sentences[0])+'</td></tr>'; return; }
    t.changes.forEach(c => h += '<tr class="plan-row" data-target="'+esc(t.target)+'" data-action="'+esc(c.action)+'"><td>'+esc(t.target)+'</td><td>'+esc(c.component)+'</td><td>' +
      (c.current ? '<code title="'+esc(c.current)+'">'+short(c.current)+'</code>' : '<span class="muted">nothing</span>') +
      '</td><td><code title="'+esc(c.new)+'">'+short(c.new)+'</code></td><td>'+esc(ACTIONS[c.action]||c.action)+'</td></tr>');
    (t.unmanaged||[]).forEach(u => h += '<tr class="plan-row" data-target="'+esc(t.target)+'"><td>'+esc(t.target)+'</td><td>'+esc(u)+'</td><td colspan="3" class="muted">not in the release, left alone</td></tr>');
  });
  if (p.plan.unknown.length) h += '<tr><td colspan="5" class="plan-unknown">What would change on '+esc(p.plan.unknown.join(', '))+' is unknown. You may still approve: the deployment reads those hosts again before it changes anything.</td></tr>';
  return h + '</table>';
}
function card(p){
  const waiting = p.status === 'awaiting_approval';
  const a = p.approvals || {};
  let h = '<h3>'+esc(p.app)+' &rarr; '+esc(p.environment)+': '+esc(p.release.name) +
    '<span class="badge s-'+esc(p.status)+'">'+esc(p.status.replace('_',' '))+'</span></h3>';
  h += '<div>Requested by <b>'+esc(p.requested_by)+'</b> '+esc(when(p.requested_at))+': &ldquo;'+esc(p.reason)+'&rdquo;' +
       (p.run_link ? ' &middot; <a target="_top" href="'+esc(p.run_link)+'">Airflow run</a>' : '') + '</div>';
  h += '<div class="muted">'+esc(p.environment)+(p.current_release ? ' runs '+esc(p.current_release)+' now' : ' runs nothing yet')+'. Release created by '+esc(p.release.created_by) +
       '; content hash <code>'+esc(p.release.content_hash)+'</code></div>';
  h += components(p);
  h += plan(p);
  h += '<div><b>Gates</b>: ' + (p.gates.length ? p.gates.map(g => '<div class="g-'+esc(g.verdict)+'">'+esc(g.sentence)+'</div>').join('')
                                              : '<span class="muted">none recorded</span>') + '</div>';
  const approvers = (p.decisions||[]).filter(d => d.decision==='approve').map(d => d.approver);
  h += '<div><b>Approvals</b>: ' + (waiting ? esc(approvers.join(', ') || 'none yet') + '; ' + esc(a.needed) + ' more needed of ' + esc(p.required)
        : esc(approvers.join(', ') || 'none')) + ' <span class="muted">(may approve: '+esc(p.eligible.join(', ')) +
        (p.separation_of_duties ? '; not the requester or the release creator' : '') + ')</span></div>';
  (p.decisions||[]).filter(d => d.decision==='reject').forEach(d =>
     h += '<div class="err">Rejected by '+esc(d.approver)+(d.comment ? ': &ldquo;'+esc(d.comment)+'&rdquo;' : '')+'</div>');
  h += '<div class="msg" id="msg-'+esc(p.id)+'"></div>';
  if (p.outcome) h += '<div class="why">'+p.outcome.map(esc).join('<br>')+'</div>';
  if (waiting && p.you.can_decide) {
    h += '<div><input id="c-'+esc(p.id)+'" placeholder="comment (optional)"> ' +
         '<button data-act="approve">Approve</button><button data-act="reject">Reject</button></div>';
  } else if (waiting) {
    h += '<div class="why-not">'+esc(p.you.why_not)+'</div>';
  }
  if (waiting) h += '<div style="margin-top:.4rem"><input id="a-'+esc(p.id)+'" placeholder="why abort (required)"> ' +
                    '<button data-act="abort">Abort</button></div>';
  return h;
}
function put(p, msg, cls){
  let el = document.getElementById('p-'+p.id);
  if (!el){ el = document.createElement('section'); el.id = 'p-'+p.id; document.getElementById('cards').appendChild(el); }
  el.className = 'card' + (p.status === 'awaiting_approval' ? '' : ' settled');
  el.dataset.status = p.status;
  el.innerHTML = card(p);
  el.querySelectorAll('button[data-act]').forEach(b => b.onclick = () => act(p, b.dataset.act));
  if (msg){ const m = document.getElementById('msg-'+p.id); m.textContent = msg; m.className = 'msg ' + (cls||''); }
}
async function reload(id, msg, cls){
  const r = await api('/ui/approvals?promotion='+encodeURIComponent(id));
  if (r.ok){ const d = await r.json(); if (d.promotions.length) put(d.promotions[0], msg, cls); return d.promotions[0]; }
}
async function follow(id, msg, cls){
  // The approval wait notices the decision within seconds; keep the row until it has moved on.
  for (let i = 0; i < 60; i++){
    const p = await reload(id, msg, cls);
    if (!p || p.status !== 'awaiting_approval') return;
    await new Promise(res => setTimeout(res, 2000));
  }
}
async function act(p, what){
  document.querySelectorAll('#p-'+CSS.escape(p.id)+' button').forEach(b => b.disabled = true);
  let r, body;
  if (what === 'abort'){
    const reason = (document.getElementById('a-'+p.id).value || '').trim();
    r = await api('/promotions/'+encodeURIComponent(p.id)+'/abort', {method:'POST', body: JSON.stringify({reason})});
  } else {
    const comment = (document.getElementById('c-'+p.id)?.value || '').trim();
    r = await api('/promotions/'+encodeURIComponent(p.id)+'/approvals', {method:'POST',
       body: JSON.stringify({decision: what, comment, content_hash: p.release.content_hash,
                             plan_hash: p.plan ? p.plan.hash : null})});
  }
  body = await r.json().catch(() => ({}));
  let msg, cls = r.ok ? 'ok' : 'err';
  const detail = typeof body.detail === 'string' ? body.detail
               : Array.isArray(body.detail) ? body.detail.map(d => d.msg).join('; ') : '';
  if (what === 'abort') {
    msg = r.ok ? 'You aborted this promotion.' : (r.status === 422 ? 'Give a reason to abort: ' + detail : detail || ('HTTP ' + r.status));
  } else if (r.ok) {
    const a = body.approvals || {};
    msg = (what === 'approve' ? 'You approved it' : 'You rejected it') +
          (a.status === 'approved' ? ': enough approvals, the run continues.' :
           a.status === 'rejected' ? ': the promotion ends without deploying.' : ': ' + a.needed + ' more approval(s) needed.');
    if (!body.counted) msg = REFUSALS[body.refusal] || ('Not counted: ' + body.refusal);
  } else {
    msg = REFUSALS[body.refusal] || detail || ('Refused (HTTP ' + r.status + ').');
  }
  await follow(p.id, msg, cls);
}
async function load(){
  const r = await api('/ui/approvals'); const cards = document.getElementById('cards');
  if(!r.ok){ cards.innerHTML = '<p class="err">'+esc(r.status+' '+await r.text())+'</p>'; return; }
  const d = await r.json();
  document.getElementById('me').textContent = d.user;
  cards.innerHTML = d.promotions.length ? '' : '<p>Nothing is waiting for approval.</p>';
  d.promotions.forEach(p => put(p));
}
load();
</script></body></html>
"""


RELEASES_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Stella releases</title>
<style>""" + _STYLE + """
 #board td,#board th{border:1px solid #e4e7eb} .t{font-size:.85rem}
</style></head><body>
<h1>Releases</h1>
<p id="pending"></p>
<table id="board"></table>
<h2>Promotion timeline</h2>
<table><thead><tr><th>When</th><th>Promotion</th><th>Release</th><th>Status</th><th>Approved by</th><th>Gates</th><th>Evidence</th></tr></thead>
<tbody id="timeline"></tbody></table>
<script>""" + _COMMON_JS + """
async function why(id){
  const row = document.getElementById('why-'+id);
  if (!row.hidden){ row.hidden = true; return; }
  const r = await api('/ui/why/'+encodeURIComponent(id)); const d = await r.json().catch(() => ({}));
  row.querySelector('td.why').innerHTML = r.ok ? d.sentences.map(esc).join('<br>') : esc(d.detail || r.status);
  row.hidden = false;
}
function target(t){
  if (t.result === null) return '<div class="t muted">'+esc(t.target)+': nothing deployed yet</div>';
  const what = t.runs_nothing ? 'runs nothing' : esc(t.release || 'other digests');
  return '<div class="t'+(t.healthy ? '' : ' err')+'">'+esc(t.target)+': '+what+' &middot; last result '+
         esc(t.result.replace('_',' '))+(t.restored ? ', restored' : '')+' <span class="muted">'+esc(when(t.at))+'</span></div>';
}
function cell(c){
  if (c === undefined) return '<td class="muted">n/a</td>';
  if (c === null) return '<td>-</td>';
  let h = '<td>' + (c.name ? '<b>'+esc(c.name)+'</b>' : '<span class="muted">no verified release</span>');
  if (c.canary) h += '<div class="canary" data-canary="'+esc(c.canary.promotion_id)+'">'+esc(c.canary.label)+
    (c.canary.waiting_since ? ' since '+esc(when(c.canary.waiting_since)) : '')+'</div>';
  if (c.degraded) h += ' <span class="degraded">degraded</span><div class="err t">'+c.problems.map(esc).join('<br>')+'</div>';
  if (c.drift) h += '<div class="t'+(c.drift.status === 'drift' && !c.drift.superseded ? ' err' : ' muted')+'">drift check '+
    esc(when(c.drift.checked_at))+': '+(c.drift.status === 'ok' ? 'no drift' : 'DRIFT'+(c.drift.superseded ? ' (since redeployed)' : ''))+'</div>';
  h += c.components.map(x => '<div><code>'+esc(x.name)+' '+esc(x.tag||'')+' '+esc(x.digest)+'</code></div>').join('');
  return h + c.targets.map(target).join('') + '</td>';
}
const ENDED = new Set(['failed','rolled_back','rejected','cancelled','awaiting_approval']);
async function load(){
  const r = await api('/ui/board');
  if(!r.ok){ document.getElementById('board').innerHTML = '<tr><td>'+esc(r.status+' '+await r.text())+'</td></tr>'; return; }
  const b = await r.json();
  document.getElementById('pending').innerHTML = b.pending_approvals
    ? `<a href="/stella/ui/approvals">${b.pending_approvals} promotion(s) waiting for approval</a>` : 'No promotion is waiting for approval.';
  document.getElementById('board').innerHTML = '<tr><th>app</th>' + b.environments.map(e=>'<th>'+esc(e)+'</th>').join('') + '</tr>' +
    b.apps.map(a => '<tr><td><b>'+esc(a)+'</b></td>' + b.environments.map(e => cell((b.deployed[a]||{})[e])).join('') + '</tr>').join('');
  document.getElementById('timeline').innerHTML = b.timeline.map(p => `<tr>
    <td>${esc(when(p.requested_at))}</td>
    <td>${esc(p.app)} &rarr; ${esc(p.environment)}<br>by ${esc(p.requested_by)}: <i>${esc(p.reason)}</i>
        ${p.run_link ? '<br><a target="_top" href="'+esc(p.run_link)+'">Airflow run</a>' : ''}<br><code>${esc(p.id)}</code></td>
    <td>${esc(p.release)}</td>
    <td class="s-${esc(p.status)}">${esc(p.status.replace('_',' '))}
        ${(p.manual_changes||[]).map(m=>'<br><span class="manual" title="'+esc(m)+'">&#9888; changed by hand</span>').join('')}
        ${ENDED.has(p.status) || p.canary ? '<br><a href="#" data-why="'+esc(p.id)+'">why?</a>' : ''}</td>
    <td>${esc(p.approved_by.join(', ') || '-')}</td>
    <td>${p.gates.map(g=>'<span class="g-'+esc(g.verdict)+'">'+esc(g.name)+': '+esc(g.verdict)+'</span>'+(g.reasons.length?' ('+esc(g.reasons.join(', '))+')':'')).join('<br>')}</td>
    <td>${p.evidence.map(ev=>'<a href="/stella/ui/evidence/'+encodeURIComponent(ev.id)+'">'+esc(ev.type.replace('_',' '))+'</a> ' +
        '<a class="muted" href="/stella/api/v1/evidence/'+encodeURIComponent(ev.id)+'">json</a>').join('<br>')}
        ${p.evidence.length ? '<br><a class="bundle" href="/stella/api/v1/promotions/'+encodeURIComponent(p.id)+'/bundle">bundle (tar)</a>' : ''}</td></tr>
    ${p.canary ? '<tr class="canary-row" id="canary-'+esc(p.id)+'"><td class="canary">'+esc(p.canary.label)+
      (p.canary.waiting_since ? '<br>since '+esc(when(p.canary.waiting_since)) : '')+'</td><td colspan="6" class="canary-steps">'+
      p.canary.lines.map(esc).join('<br>')+'</td></tr>' : ''}
    <tr id="why-${esc(p.id)}" hidden><td></td><td colspan="6" class="why"></td></tr>`).join('');
  document.querySelectorAll('a[data-why]').forEach(a => a.onclick = (ev) => { ev.preventDefault(); why(a.dataset.why); });
}
load();
</script></body></html>
"""
