"""The ``/dashboard`` page and the JSON it polls, computed from the decision log's database.

Aggregates come from the database (so every replica behind a load balancer shows the same
numbers); latency percentiles from the latest `RECENT` rows. The page is one self-contained
HTML document, inline CSS and JS, no CDN: it must work on a closed network.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import case, func, select

from codyn.serve.log import decisions

if TYPE_CHECKING:
    from codyn.serve.proxy import Proxy

RECENT = 1000
"""Rows the latency percentiles are computed over."""
LATEST = 25
"""Decisions listed with their predicted scores."""


def _percentiles(values: list[float | None]) -> dict[str, float | None]:
    known = np.array([v for v in values if v is not None], dtype=np.float64)
    if known.size == 0:
        return {"p50": None, "p95": None, "p99": None}
    p50, p95, p99 = np.percentile(known, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def summary(proxy: Proxy) -> dict[str, Any]:
    """Everything the dashboard shows, as JSON-able data."""
    c = decisions.c
    ok = c.status < 400
    with proxy.log.engine.connect() as connection:
        totals = connection.execute(
            select(
                func.count(),
                func.sum(case((ok, 0), else_=1)),
                func.sum(case((c.fallback, 1), else_=0)),
                func.coalesce(func.sum(c.cost_usd), 0.0),
                func.coalesce(func.sum(c.strongest_cost_usd), 0.0),
            )
        ).one()
        per_model = connection.execute(
            select(c.model, func.count(), func.coalesce(func.sum(c.cost_usd), 0.0))
            .where(ok)
            .group_by(c.model)
            .order_by(func.count().desc())
        ).all()
        checked = connection.execute(
            select(c.verify, func.count()).where(c.verify.is_not(None)).group_by(c.verify)
        ).all()
        recent = connection.execute(
            select(c.decision_ms, c.latency_ms, c.backend_ms, c.stream)
            .order_by(c.created_at.desc())
            .limit(RECENT)
        ).all()
        latest = connection.execute(
            select(
                c.created_at, c.route, c.chosen, c.model, c.predicted, c.decision_ms,
                c.latency_ms, c.tokens_in, c.tokens_out, c.cost_usd, c.status, c.fallback,
                c.error, c.verify,
            )
            .order_by(c.created_at.desc())
            .limit(LATEST)
        ).all()  # fmt: skip
    requests, errors, fallbacks, spend, strongest = totals
    answered = sum(n for _, n, _ in per_model)
    overhead = [
        lat - back
        for _, lat, back, stream in recent
        if lat is not None and back is not None and not stream
    ]
    stats = proxy.log.stats
    return {
        "totals": {
            "requests": requests,
            "errors": int(errors or 0),
            "fallbacks": int(fallbacks or 0),
            "spend_usd": float(spend),
            "strongest_usd": float(strongest),
            "savings_usd": float(strongest - spend),
            "savings_share": float(1 - spend / strongest) if strongest else None,
        },
        "verify": _verify_shares(dict(checked)),
        "models": [
            {"model": model, "requests": n, "share": n / answered, "spend_usd": float(cost)}
            for model, n, cost in per_model
        ],
        "latency_ms": {
            "n": len(recent),
            "decision": _percentiles([r[0] for r in recent]),
            "end_to_end": _percentiles([r[1] for r in recent]),
            "proxy_overhead": _percentiles(list(overhead)),
            "recent": [r[1] for r in reversed(recent[:100])],
        },
        "latest": [_latest(row._mapping) for row in latest],
        "log": {
            "database_up": stats.database_up,
            "buffered_rows": proxy.log.buffered,
            "dropped_rows": stats.dropped,
        },
    }


VERIFY_OUTCOMES = ("verified", "escalated", "unresolved", "unverifiable")


def _verify_shares(counts: dict[str, int]) -> dict[str, Any]:
    """Requests on verifying routes by outcome (`codyn.serve.verify.VerifiedRun.outcome`)
    and their shares."""
    total = sum(counts.values())
    return {
        "requests": total,
        **{k: int(counts.get(k, 0)) for k in VERIFY_OUTCOMES},
        "share": {k: counts.get(k, 0) / total if total else None for k in VERIFY_OUTCOMES},
    }


def _latest(row: Any) -> dict[str, Any]:
    out = dict(row)
    created: datetime = out.pop("created_at")
    out["time"] = created.strftime("%H:%M:%S")
    out["predicted"] = None if out["predicted"] is None else json.loads(out["predicted"])
    return out


DASHBOARD_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>codyn proxy</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2330;--muted:#667085;--line:#e4e7ec;--accent:#2f6fde;
--good:#12915a;--bad:#c93a2f;--warn:#b7791f}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,
sans-serif;background:var(--bg);color:var(--ink)}
header{display:flex;align-items:center;gap:12px;padding:14px 24px;background:#111827;color:#fff}
header h1{font-size:17px;margin:0;font-weight:600}header .sub{color:#9ca3af;font-size:12px}
.pill{padding:2px 9px;border-radius:10px;font-size:12px;background:#374151}
.pill.up{background:var(--good)}.pill.down{background:var(--bad)}
main{padding:18px 24px;display:grid;gap:16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:12px}
.card,.panel{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:12px 14px}
.card .label{color:var(--muted);font-size:12px}.card .value{font-size:22px;font-weight:600;
margin-top:2px}.card .note{color:var(--muted);font-size:12px}
.good{color:var(--good)}.bad{color:var(--bad)}
.row{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.panel h2{font-size:14px;margin:0 0 10px}
.bar{display:grid;grid-template-columns:130px 1fr 190px;align-items:center;gap:8px;margin:6px 0}
.track{background:#eef2f7;border-radius:4px;height:16px;overflow:hidden}
.fill{background:var(--accent);height:100%}
.num{font-variant-numeric:tabular-nums;text-align:right;color:var(--muted);font-size:12px}
table{width:100%;border-collapse:collapse;font-size:12.5px}
th{text-align:left;color:var(--muted);font-weight:500;border-bottom:1px solid var(--line);
padding:5px 6px}td{border-bottom:1px solid var(--line);padding:5px 6px;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.score{display:flex;align-items:center;gap:4px;font-size:11.5px;white-space:nowrap}
.score .track{width:60px;height:8px}.score.pick .fill{background:var(--good)}
.score .fill{background:#9db4e0}.tag{font-size:11px;padding:1px 6px;border-radius:8px}
.tag.fb{background:#fff4e0;color:var(--warn)}.tag.err{background:#fde8e6;color:var(--bad)}
svg{width:100%;height:120px;display:block}.lat td{padding:3px 6px}
#error{color:var(--bad)}
</style></head>
<body>
<header><h1>codyn proxy</h1><span class="sub">routing decisions, spend and latency</span>
<span id="db" class="pill">database ?</span><span id="updated" class="sub"></span>
<span id="error"></span></header>
<main>
<section class="cards">
 <div class="card"><div class="label">Requests</div><div class="value" id="requests">-</div>
  <div class="note" id="errors"></div></div>
 <div class="card"><div class="label">Spend</div><div class="value" id="spend">-</div>
  <div class="note">USD, from tokens x catalog prices</div></div>
 <div class="card"><div class="label">Always-strongest would cost</div>
  <div class="value" id="strongest">-</div><div class="note">same tokens, priciest model</div></div>
 <div class="card"><div class="label">Savings</div><div class="value good" id="savings">-</div>
  <div class="note" id="savings-usd"></div></div>
 <div class="card"><div class="label">Fallbacks</div><div class="value" id="fallbacks">-</div>
  <div class="note">answered by a later model</div></div>
 <div class="card"><div class="label">Verified / escalated / unverifiable</div>
  <div class="value" id="verify">-</div><div class="note" id="verify-note">routes with
  verify: answers run against the request's tests</div></div>
 <div class="card"><div class="label">Decision p50 / p95</div>
  <div class="value" id="decision">-</div>
  <div class="note">ms, router + policy</div></div>
</section>
<section class="row">
 <div class="panel"><h2>Share of requests per model</h2><div id="models"></div></div>
 <div class="panel"><h2>Latency (latest requests)</h2>
  <table class="lat"><tr><th></th><th>p50</th><th>p95</th><th>p99</th></tr>
  <tbody id="latency"></tbody></table><svg id="spark" viewBox="0 0 400 120"
  preserveAspectRatio="none"></svg><div class="num" style="text-align:left">
  end-to-end ms, oldest to newest</div></div>
</section>
<section class="panel"><h2>Latest decisions</h2>
<table><thead><tr><th>time</th><th>route</th><th>model</th><th>predicted quality</th>
<th>decision ms</th><th>latency ms</th><th>tokens</th><th>cost USD</th><th>status</th></tr></thead>
<tbody id="latest"></tbody></table></section>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => { const e = document.createElement(tag);
  if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; };
const fmt = (v, d = 1) => v === null || v === undefined ? "-" : Number(v).toFixed(d);
const usd = (v) => v === null || v === undefined ? "-" : "$" + (v < 0.01 ? Number(v).toPrecision(3)
  : Number(v).toFixed(2));
function bar(frac, cls) { const t = el("div", "track"); const f = el("div", "fill");
  f.style.width = Math.max(0, Math.min(1, frac)) * 100 + "%"; t.appendChild(f); return t; }
function render(d) {
  const t = d.totals;
  $("requests").textContent = t.requests;
  $("errors").textContent = t.errors + (t.errors === 1 ? " error" : " errors");
  $("spend").textContent = usd(t.spend_usd);
  $("strongest").textContent = usd(t.strongest_usd);
  $("savings").textContent = t.savings_share === null ? "-" : fmt(100 * t.savings_share, 1) + "%";
  $("savings-usd").textContent = usd(t.savings_usd) + " saved";
  $("fallbacks").textContent = t.fallbacks;
  const V = d.verify, pc = (k) => V.share[k] === null ? "-" : fmt(100 * V.share[k], 0) + "%";
  $("verify").textContent = V.requests ? pc("verified") + " / " + pc("escalated") + " / "
    + pc("unverifiable") : "-";
  $("verify-note").textContent = V.requests ? V.requests + " verifying requests; "
    + V.unresolved + " with no passing answer" : "no verifying route used yet";
  const L = d.latency_ms;
  $("decision").textContent = fmt(L.decision.p50, 2) + " / " + fmt(L.decision.p95, 2);
  const models = $("models"); models.replaceChildren();
  for (const m of d.models) { const r = el("div", "bar"); r.appendChild(el("div", "", m.model));
    r.appendChild(bar(m.share)); r.appendChild(el("div", "num", fmt(100 * m.share, 1) + "% · "
      + m.requests + " · " + usd(m.spend_usd))); models.appendChild(r); }
  if (!d.models.length) models.appendChild(el("div", "num", "no answered requests yet"));
  const lat = $("latency"); lat.replaceChildren();
  for (const [name, key] of [["end to end", "end_to_end"], ["decision", "decision"],
                             ["proxy overhead", "proxy_overhead"]]) {
    const r = el("tr"); r.appendChild(el("td", "", name));
    for (const p of ["p50", "p95", "p99"]) r.appendChild(el("td", "n", fmt(L[key][p], 2)));
    lat.appendChild(r); }
  const pts = L.recent.filter((v) => v !== null); const svg = $("spark");
  const top = Math.max(1, ...pts); const w = 400 / Math.max(1, pts.length);
  svg.innerHTML = "";
  pts.forEach((v, i) => { const h = 110 * v / top;
    const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    r.setAttribute("x", i * w); r.setAttribute("y", 118 - h); r.setAttribute("width",
      Math.max(1, w - 1)); r.setAttribute("height", h); r.setAttribute("fill", "#2f6fde");
    svg.appendChild(r); });
  const body = $("latest"); body.replaceChildren();
  for (const x of d.latest) { const r = el("tr");
    r.appendChild(el("td", "", x.time)); r.appendChild(el("td", "", x.route || "-"));
    const m = el("td", "", x.model || "-");
    if (x.fallback) { m.appendChild(document.createTextNode(" "));
      m.appendChild(el("span", "tag fb", "fallback from " + x.chosen)); }
    if (x.verify) { m.appendChild(document.createTextNode(" "));
      m.appendChild(el("span", "tag verify", x.verify)); }
    r.appendChild(m);
    const p = el("td");
    for (const [name, v] of Object.entries(x.predicted || {})) {
      const s = el("div", "score" + (name === x.chosen ? " pick" : ""));
      s.appendChild(el("span", "", name)); s.appendChild(bar(v === null ? 0 : v));
      s.appendChild(el("span", "", v === null ? "n/a" : fmt(v, 3))); p.appendChild(s); }
    r.appendChild(p);
    r.appendChild(el("td", "n", fmt(x.decision_ms, 2)));
    r.appendChild(el("td", "n", fmt(x.latency_ms, 0)));
    r.appendChild(el("td", "n", x.tokens_in === null ? "-" : x.tokens_in + "/" + x.tokens_out));
    r.appendChild(el("td", "n", usd(x.cost_usd)));
    const st = el("td", "", String(x.status));
    if (x.status >= 400) { st.className = "bad"; st.title = x.error || ""; }
    r.appendChild(st); body.appendChild(r); }
  const db = $("db"); db.className = "pill " + (d.log.database_up ? "up" : "down");
  db.textContent = "database " + (d.log.database_up ? "up" : "down") + " · "
    + d.log.buffered_rows + " buffered · " + d.log.dropped_rows + " dropped";
}
// Without the user:key a URL may carry (fetch refuses those); the browser sends the HTTP
// Basic credentials it holds for this page by itself.
const DATA = new URL("dashboard/data", location.href); DATA.username = ""; DATA.password = "";
async function poll() {
  try { const r = await fetch(DATA, {cache: "no-store"}); const d = await r.json();
    if (!r.ok) throw new Error((d.error && d.error.message) || d.error || r.status);
    render(d); $("error").textContent = "";
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
    document.body.dataset.loaded = "1";
  } catch (e) { $("error").textContent = "cannot load data: " + e.message; }
}
poll(); setInterval(poll, 2000);
</script></body></html>
"""
