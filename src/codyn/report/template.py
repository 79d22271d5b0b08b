"""The report's single-file HTML page (jinja2; images arrive as data URIs)."""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{ title }}</title>
<style>
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1250px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border-bottom: 1px solid #e4e4e4; padding: 0.25em 0.6em; text-align: right; }
th { background: #f5f5f5; } td:first-child, th:first-child { text-align: left; }
td.text { text-align: left; max-width: 42em; } tr.baseline td { color: #555; background: #fafafa; }
img { max-width: 100%; } .note { color: #666; font-size: 0.85em; }
.warning { color: #8a5a00; background: #fff6e0; padding: 0.3em 0.6em; }
dl.note dt { font-weight: 600; float: left; clear: left; width: 11em; }
dl.note dd { margin-left: 12em; }
code { font-size: 0.95em; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p>Train {{ n_train }} / test {{ n_test }} prompts, {{ models|length }} models.
SBS (best train mean): <code>{{ sbs.model }}</code>, test q {{ fmt(sbs.test_q) }}.
{% if strong and weak %}Strong/weak pair: <code>{{ strong }}</code> vs
<code>{{ weak }}</code>.{% endif %}</p>
<p class="note">{{ cost_note }}</p>
{% for note in notes %}<p class="note">note: {{ note }}</p>{% endfor %}

<h2>Metrics (test split)</h2>
<table id="metrics">
<tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for row in rows %}<tr class="{{ row.css }}">
{% for cell in row.cells %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</table>
<dl class="note">{% for g in glossary %}<dt>{{ g.heading }}</dt><dd>{{ g.description }}</dd>
{% endfor %}</dl>
{% for warning in warnings %}<p class="warning">warning: {{ warning }}</p>{% endfor %}

{% for fig in figures %}
<h2>{{ fig.title }}</h2>
<img src="data:image/png;base64,{{ fig.png }}" alt="{{ fig.title }}">
<p class="note">{{ fig.caption }}
Files: <code>{{ fig.name }}.png</code>, <code>{{ fig.name }}.svg</code>.</p>
{% endfor %}

<h2>Single models</h2>
<table id="models">
<tr><th>model</th><th>train q</th><th>test q</th><th>mean cost/call (test)</th>
<th>norm cost</th><th>AIQ (single point)</th></tr>
{% for m in models %}<tr><td><code>{{ m.name }}</code>{{ m.mark }}</td>
<td>{{ fmt(m.train_q) }}</td><td>{{ fmt(m.test_q) }}</td><td>{{ significant(m.cost) }}</td>
<td>{{ fmt(m.norm_cost) }}</td><td>{{ fmt(m.aiq) }}</td></tr>
{% endfor %}</table>

{% if cascades %}
<h2>Cascades: how far they escalated</h2>
<p class="note">At each cascade's default point: the share of test prompts whose cascade
called 1, 2, ... models, the share with more than one call, calls and seconds of model calls
per prompt (the sandbox's time per attempt is extra: <code>codyn bench sandbox</code>).</p>
<table id="cascades">
<tr><th>row</th><th>default point</th><th>prompts by models called</th><th>escalated</th>
<th>calls/prompt</th><th>model seconds/prompt</th></tr>
{% for c in cascades %}<tr><td>{{ c.name }}</td><td>{{ c.default }}</td>
<td>{% for share in c.depth_share %}{{ loop.index }}: {{ percent(share) }}{% if not loop.last %},
{% endif %}{% endfor %}</td><td>{{ percent(c.escalated) }}</td><td>{{ fmt(c.attempts, 2) }}</td>
<td>{{ fmt(c.latency_s, 2) }}</td></tr>
{% endfor %}</table>
{% endif %}

{% if verifier %}
<h2>How far the visible tests can be trusted</h2>
<p class="note">Per model, over its test samples with visible tests: how often the visible
verdict (all visible tests pass) agrees with the hidden one; precision = P(hidden pass |
visible pass), how safe an accepted answer is; recall = P(visible pass | hidden pass).</p>
<table id="verifier">
<tr><th>model</th><th>samples</th><th>with visible tests</th><th>visible pass</th>
<th>hidden pass</th><th>agreement</th><th>precision</th><th>recall</th></tr>
{% for v in verifier %}<tr><td><code>{{ v.model }}</code></td><td>{{ v.samples }}</td>
<td>{{ percent(v.with_visible_tests) }}</td><td>{{ fmt(v.visible_pass) }}</td>
<td>{{ fmt(v.hidden_pass) }}</td><td>{{ fmt(v.agreement) }}</td><td>{{ fmt(v.precision) }}</td>
<td>{{ fmt(v.recall) }}</td></tr>
{% endfor %}</table>
{% endif %}

{% if confidence %}
<h2>What the learned routers are sure and unsure about</h2>
<p class="note">Confidence = margin between the two best predicted qualities (MBPP routing
paper, appendix A); chosen = the decision at the default knob; scores are the true test
scores.</p>
{% for block in confidence %}
<h3>{{ block.name }}: {{ block.label }}</h3>
<table>
<tr><th>confidence</th><th>prompt</th><th>chosen</th><th>its score</th><th>strong</th>
<th>weak</th><th>best (models at best)</th></tr>
{% for e in block.rows %}<tr><td>{{ fmt(e.confidence) }}</td>
<td class="text">{{ e.text }}</td><td><code>{{ e.chosen }}</code></td>
<td>{{ fmt(e.chosen_score, 2) }}</td><td>{{ fmt(e.strong_score, 2) }}</td>
<td>{{ fmt(e.weak_score, 2) }}</td><td>{{ fmt(e.best, 2) }} ({{ e.n_best }})</td></tr>
{% endfor %}</table>
{% endfor %}
{% endif %}
<p class="note">Generated by codyn {{ version }}.</p>
</body>
</html>
"""
