// Draws the report's charts and tables from the JSON in #cryobench-data (see html_report.py).
(function(){
const D=JSON.parse(document.getElementById('cryobench-data').textContent);
const NS='http://www.w3.org/2000/svg';
const COLS=['#4e79a7','#f28e2b','#59a14f','#e15759','#76b7b2','#edc948','#b07aa1','#ff9da7','#9c755f'];
const TAGC={CPU:'#4e79a7',GPU:'#59a14f',PCIe:'#f28e2b',Alloc:'#b07aa1',IO:'#e15759','':'#bab0ac'};
const CLS={'below minimum':'slower','below recommended':'nc',slower:'slower',faster:'faster','not comparable':'nc','could not run':'cnr','checks failed':'checks',inconclusive:'nc'};
function el(n,a,t){const e=document.createElementNS(NS,n);for(const k in a)e.setAttribute(k,a[k]);if(t!==undefined)e.textContent=t;return e;}
function h(n,a,t){const e=document.createElement(n);for(const k in a)e.setAttribute(k,a[k]);if(t!==undefined)e.textContent=t;return e;}
function fmt(s){if(s===null||s===undefined)return '-';if(s>=100)return s.toFixed(1);if(s>=1)return s.toFixed(3);if(s>=1e-3)return s.toFixed(4);return s.toExponential(2);}
function ivl(c){if(!c.interval)return '';const f=v=>v===null?'-':v.toFixed(2);return ' ['+f(c.interval[0])+', '+f(c.interval[1])+']';}
let charts=0;
function barChart(g){
  const n=D.columns.length,bh=14,gap=10,left=300,width=520,right=190;
  const rows=g.tests.length,height=rows*(n*bh+gap)+30;
  const svg=el('svg',{width:left+width+right,height:height,class:'chart bars','data-group':g.group});
  g.tests.forEach((t,ti)=>{
    const y0=20+ti*(n*bh+gap);
    const vals=t.cells.map(c=>c.seconds||0);const mx=Math.max(...vals)||1;
    svg.appendChild(el('text',{x:left-8,y:y0+n*bh/2+4,'text-anchor':'end'},t.test));
    t.cells.forEach((c,ci)=>{
      const y=y0+ci*bh;
      if(c.seconds===null){svg.appendChild(el('text',{x:left+4,y:y+bh-3,fill:'#888'},(c.text?c.text+'  ':'')+(c.label||(c.text?'':'-'))));return;}
      const w=Math.max(1,width*c.seconds/mx);
      const r=el('rect',{x:left,y:y,width:w.toFixed(1),height:bh-2,fill:COLS[ci%COLS.length],class:'bar'});
      r.appendChild(el('title',{},D.columns[ci].name+': '+fmt(c.seconds)+' s'+(c.detail?' ('+c.detail+')':'')));
      svg.appendChild(r);
      let txt=fmt(c.seconds)+' s'+(c.spread!=null?' ±'+fmt(c.spread):'');
      if(c.mark==='ref')txt+='  ref';else if(c.speedup!==null)txt+='  '+c.speedup.toFixed(2)+'x'+ivl(c)+' '+(c.label||'');
      else if(c.label)txt+='  '+c.label;
      svg.appendChild(el('text',{x:left+w+4,y:y+bh-3,fill:c.mark==='slower'?'#c00':'#333'},txt));
    });
  });
  const lg=el('g',{});D.columns.forEach((c,ci)=>{lg.appendChild(el('rect',{x:left+ci*170,y:2,width:10,height:10,fill:COLS[ci%COLS.length]}));
    lg.appendChild(el('text',{x:left+ci*170+14,y:11},c.name.slice(0,24)));});
  svg.appendChild(lg);charts++;return svg;
}
function breakdown(g){
  const withSubs=g.tests.filter(t=>t.subs.length);if(!withSubs.length)return null;
  const n=D.columns.length,bh=14,gap=10,left=300,width=620,height=withSubs.length*(n*bh+gap)+10;
  const svg=el('svg',{width:left+width+200,height:height,class:'chart breakdown','data-group':g.group});
  withSubs.forEach((t,ti)=>{
    const y0=6+ti*(n*bh+gap);
    svg.appendChild(el('text',{x:left-8,y:y0+n*bh/2+4,'text-anchor':'end'},t.test));
    const totals=D.columns.map((col,ci)=>t.subs.reduce((a,s)=>a+(s.seconds[ci]||0),0));
    const mx=Math.max(...totals);
    D.columns.forEach((col,ci)=>{
      const y=y0+ci*bh;const total=totals[ci];
      if(!total){svg.appendChild(el('text',{x:left+4,y:y+bh-3,fill:'#888'},col.name.slice(-24)+': -'));return;}
      let x=left;
      t.subs.forEach(s=>{const v=s.seconds[ci]||0;if(!v)return;const w=width*v/mx;
        const r=el('rect',{x:x.toFixed(1),y:y,width:Math.max(0.5,w).toFixed(1),height:bh-2,fill:TAGC[(s.tags[0]||'')]||'#bab0ac',stroke:'#fff','stroke-width':0.5,class:'segment'});
        r.appendChild(el('title',{},col.name+' / '+s.name+' ['+s.tags.join(', ')+']: '+fmt(v)+' s ('+(100*v/total).toFixed(1)+'%)'));
        svg.appendChild(r);x+=w;});
      svg.appendChild(el('text',{x:x+4,y:y+bh-3},fmt(total)+' s  '+col.name.slice(-18)));
    });
  });
  charts++;return svg;
}
function table(g,req){
  const t=h('table',{class:'verdicts'});const hr=h('tr');hr.appendChild(h('th',{class:'l'},'test'));
  D.columns.forEach(c=>{const th=h('th',{colspan:3},c.name+(c.reference?' (reference)':''));hr.appendChild(th);});t.appendChild(hr);
  const h2=h('tr');h2.appendChild(h('th'));D.columns.forEach(()=>{(req?['Measured','','Verdict']:['Time (s)','Pct','Speedup']).forEach(x=>h2.appendChild(h('th',{},x)));});t.appendChild(h2);
  g.tests.forEach(r=>{const tr=h('tr');tr.appendChild(h('td',{class:'l'},r.test));
    r.cells.forEach(c=>{tr.appendChild(h('td',{},c.text||fmt(c.seconds)));tr.appendChild(h('td',{},c.pct===null?'-':c.pct.toFixed(1)+'%'));
      const sp=c.text?(c.label||c.mark):c.mark==='ref'?'ref':(c.speedup!==null?c.speedup.toFixed(2)+'x'+ivl(c)+' ':'')+(c.label||'');
      const td=h('td',{class:CLS[c.mark]||'',title:c.detail||''},sp||'-');tr.appendChild(td);});
    t.appendChild(tr);});
  return t;
}
// The workflow group's chain as a timeline: per column, the steps one after another (the chain
// case itself left out), each segment as long as the step took, so the slow step stands out.
function timeline(g){
  const steps=g.tests.filter(t=>!t.test.startsWith('chain'));if(!steps.length)return null;
  const n=D.columns.length,bh=22,left=300,width=620,height=30+n*(bh+8)+20;
  const totals=D.columns.map((c,ci)=>steps.reduce((a,t)=>a+(t.cells[ci].seconds||0),0));const mx=Math.max(...totals)||1;
  const svg=el('svg',{width:left+width+120,height:height,class:'chart timeline','data-group':g.group});
  D.columns.forEach((c,ci)=>{const y=24+ci*(bh+8);let x=left;
    svg.appendChild(el('text',{x:left-8,y:y+bh/2+4,'text-anchor':'end'},c.name.slice(0,40)));
    steps.forEach((t,si)=>{const s=t.cells[ci].seconds||0;const w=width*s/mx;if(w<=0)return;
      const r=el('rect',{x:x.toFixed(1),y:y,width:Math.max(1,w).toFixed(1),height:bh,fill:COLS[si%COLS.length],class:'step'});
      r.appendChild(el('title',{},t.test+': '+fmt(s)+' s'));svg.appendChild(r);
      if(w>40)svg.appendChild(el('text',{x:(x+3).toFixed(1),y:y+bh-7,fill:'#fff'},t.test.replace(/\[.*\]$/,'')));x+=w;});
    svg.appendChild(el('text',{x:x+6,y:y+bh-7},fmt(totals[ci])+' s'));});
  const lg=el('g',{});steps.forEach((t,si)=>{lg.appendChild(el('rect',{x:left+si*88,y:4,width:10,height:10,fill:COLS[si%COLS.length]}));
    lg.appendChild(el('text',{x:left+si*88+13,y:13},t.test.replace(/\[.*\]$/,'').slice(0,11)));});
  svg.appendChild(lg);charts++;return svg;
}
const root=document.getElementById('groups');
D.groups.forEach(g=>{
  const sec=h('section',{id:'group-'+g.group});sec.appendChild(h('h2',{},g.group+' ('+g.tests.length+' tests)'));
  const req=g.group==='requirements';
  if(g.group==='workflow'){const tl=timeline(g);if(tl){sec.appendChild(h('h3',{},'The chain as a timeline: which step took the time'));sec.appendChild(tl);}}
  if(!req){sec.appendChild(h('h3',{},'Time per test, scaled to the slowest column of each test'));sec.appendChild(barChart(g));}
  const b=breakdown(g);if(b){sec.appendChild(h('h3',{},'Where the time goes: sub-timings by component tag, scaled to the slowest column of each test'));
    const lg=h('div',{class:'legend'});Object.keys(D.tags).forEach(k=>{const s=h('span');const sw=h('span',{class:'sw',style:'background:'+TAGC[k]});s.appendChild(sw);s.appendChild(document.createTextNode(k+': '+D.tags[k]));lg.appendChild(s);});
    sec.appendChild(lg);sec.appendChild(b);}
  sec.appendChild(h('h3',{},req?'Measured values and verdicts (minimum and recommended tiers)':'Figures and verdicts'));sec.appendChild(table(g,req));root.appendChild(sec);
});
document.documentElement.setAttribute('data-charts-rendered',String(charts));
})();
