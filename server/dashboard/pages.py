"""The dashboard's pages: self-contained HTML with inline CSS and JavaScript.

The list page polls ``/api/campaigns``; a campaign page follows the campaign's event log
(``/api/campaigns/{id}/events``, server-sent events) for live progress and reloads the
report's plots and tables while trials arrive. No asset is fetched from the internet.
"""

from __future__ import annotations

import html
import json
from typing import Any

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d2330;
background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:12px 24px;display:flex;gap:16px;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:20px 24px;max-width:1320px}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{padding:6px 10px;border-bottom:1px solid #e3e6eb;text-align:left;white-space:nowrap}
th{background:#eef0f4;font-weight:600}
.bar{background:#e3e6eb;border-radius:4px;height:10px;width:180px;display:inline-block}
.bar>span{display:block;height:100%;border-radius:4px;background:#3b7ddd}
.state{font-weight:600}.SUCCEEDED{color:#1a7f37}.FAILED{color:#c62828}
.CANCELLED{color:#8a6d00}.RUNNING{color:#3b7ddd}.QUEUED{color:#6b7280}
.plots{display:flex;flex-wrap:wrap;gap:16px;margin:16px 0}
.plots figure{margin:0;background:#fff;padding:8px;border:1px solid #e3e6eb}
.plots img{max-width:640px;height:auto;display:block}
button{padding:6px 14px;border:1px solid #c62828;background:#fff;color:#c62828;
border-radius:4px;cursor:pointer}
iframe{width:100%;height:900px;border:1px solid #e3e6eb;background:#fff}
.muted{color:#6b7280}
"""

LIST_JS = """
function bar(p){return '<span class="bar"><span style="width:'+(100*p).toFixed(1)+'%"></span>'
 +'</span>';}
function esc(s){return String(s).replace(/[&<>"]/g,c=>({'&':'&amp;','<':'&lt;','>':'&gt;',
 '"':'&quot;'}[c]));}
async function refresh(){
  const r=await fetch('/api/campaigns',{credentials:'same-origin'});
  if(!r.ok){return;}
  const rows=(await r.json()).map(c=>'<tr data-id="'+esc(c.id)+'"><td><a href="/campaigns/'
   +esc(c.id)+'">'+esc(c.id)+'</a></td><td>'+esc(c.name)+'</td><td>'+esc(c.kind)
   +'</td><td class="state '+esc(c.state)+'">'+esc(c.state)+'</td><td>'+bar(c.progress)+' '
   +c.trials_done+'/'+c.trials_total+'</td><td>'+new Date(c.created_at*1000).toLocaleString()
   +'</td></tr>');
  document.getElementById('rows').innerHTML=rows.join('')||
   '<tr><td colspan="6" class="muted">no campaigns yet</td></tr>';
}
refresh();setInterval(refresh,2000);
"""

CAMPAIGN_JS = """
const ID=__ID__;let shown={};let lastDone='';let loading=false;
function setProgress(done,total,cached,failed){
  const p=total?done/total:0;
  document.getElementById('fill').style.width=(100*p).toFixed(1)+'%';
  document.getElementById('progress-text').textContent=done+'/'+total+' trials ('
   +(100*p).toFixed(1)+'%)'+(cached?', '+cached+' cached':'')+(failed?', '+failed+' failed':'');
}
const TERMINAL=['SUCCEEDED','FAILED','CANCELLED'];
function setState(s){const e=document.getElementById('state');
  // A reply fetched before the campaign ended may arrive after its terminal event: a
  // terminal state is final, so the page never goes back from one.
  if(TERMINAL.includes(e.textContent)&&!TERMINAL.includes(s)){return;}
  e.textContent=s;e.className='state '+s;
  const t=TERMINAL.includes(s);
  document.getElementById('cancel').style.display=t?'none':'inline-block';}
async function loadReport(){
  if(loading){return;}loading=true;
  try{
    const r=await fetch('/api/campaigns/'+ID,{credentials:'same-origin'});
    if(!r.ok){return;}
    const c=await r.json();setState(c.state);
    setProgress(c.trials_done,c.trials_total,c.trials_cached,c.trials_failed);
    const mark=c.trials_done+c.state;if(mark===lastDone){return;}lastDone=mark;
    const box=document.getElementById('plots');
    for(const name of c.plots){
      let img=shown[name];
      if(!img){const f=document.createElement('figure');img=document.createElement('img');
        img.alt=name;img.className='plot';const cap=document.createElement('figcaption');
        cap.textContent=name;f.appendChild(img);f.appendChild(cap);box.appendChild(f);
        shown[name]=img;}
      img.src='/api/campaigns/'+ID+'/plots/'+encodeURIComponent(name)+'.png?n='+mark;
    }
    if(c.plots.length){document.getElementById('report').src='/campaigns/'+ID+'/report?n='
     +mark;}
  }finally{loading=false;}
}
const es=new EventSource('/api/campaigns/'+ID+'/events');
es.onmessage=(m)=>{const e=JSON.parse(m.data);
  if(e.type==='progress'){setProgress(e.done,e.total,e.cached,e.failed);}
  if(e.type==='state'){setState(e.state);loadReport();}};
es.addEventListener('end',()=>{es.close();loadReport();});
document.getElementById('cancel').onclick=async()=>{
  await fetch('/api/campaigns/'+ID+'/cancel',{method:'POST',credentials:'same-origin'});
  loadReport();};
loadReport();setInterval(()=>{if(document.getElementById('state').textContent
 .match(/RUNNING|QUEUED/)){loadReport();}},3000);
"""


def _page(title: str, body: str, script: str = "") -> str:
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            f"<header><a href='/'>faultlab</a><span class='muted'>{html.escape(title)}</span>"
            f"</header><main>{body}</main>"
            + (f"<script>{script}</script>" if script else "") + "</body></html>")


def list_page() -> str:
    body = ("<h1>Campaigns</h1><table><thead><tr><th>id</th><th>name</th><th>kind</th>"
            "<th>state</th><th>progress</th><th>created</th></tr></thead>"
            "<tbody id='rows'></tbody></table>")
    return _page("campaigns", body, LIST_JS)


def campaign_page(c: dict[str, Any]) -> str:
    esc = html.escape
    body = (
        f"<h1>{esc(c['name'])} <span class='muted'>{esc(c['kind'])}</span></h1>"
        f"<p>campaign <code>{esc(c['id'])}</code> of {esc(c['owner'])} · "
        f"<span id='state' class='state {esc(c['state'])}'>{esc(c['state'])}</span> "
        f"<button id='cancel'>cancel</button></p>"
        f"<p><span class='bar'><span id='fill' style='width:{100 * c['progress']:.1f}%'>"
        f"</span></span> <span id='progress-text'>{c['trials_done']}/{c['trials_total']} "
        f"trials</span></p>"
        + (f"<p class='FAILED'>{esc(c['error'])}</p>" if c["error"] else "")
        + "<h2>Plots</h2><div id='plots' class='plots'></div>"
        "<h2>Report</h2><iframe id='report' title='report'></iframe>"
    )
    return _page(f"campaign {c['id']}", body, CAMPAIGN_JS.replace("__ID__", json.dumps(c["id"])))


def login_page(message: str = "") -> str:
    body = ("<h1>Sign in</h1>"
            + (f"<p class='FAILED'>{html.escape(message)}</p>" if message else "")
            + "<form action='/login' method='get'><label>token "
            "<input name='token' type='password' autocomplete='off'></label> "
            "<button type='submit'>sign in</button></form>")
    return _page("sign in", body)
