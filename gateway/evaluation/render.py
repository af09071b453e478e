"""The report as Markdown, JSON, a self-contained HTML page and PNG charts."""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gateway.evaluation.report import KINDS, Report, Summary

CHARTS = ("deviation-by-kind", "accuracy-split", "latency", "tokens")


def write_report(report: Report, out: Path) -> dict[str, Path]:
    """Writes report.md, report.json, report.html and one PNG per chart; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    charts = {name: _chart(name, report.variants) for name in CHARTS}
    paths = {"markdown": out / "report.md", "json": out / "report.json",
             "html": out / "report.html"}
    for name, png in charts.items():
        paths[name] = out / f"{name}.png"
        paths[name].write_bytes(png)
    paths["markdown"].write_text(markdown(report), encoding="utf-8")
    paths["json"].write_text(json.dumps(as_json(report), indent=2), encoding="utf-8")
    paths["html"].write_text(page(report, charts), encoding="utf-8")
    return paths


def as_json(report: Report) -> dict[str, Any]:
    data = asdict(report)
    for summary, raw in zip(report.variants, data["variants"], strict=True):
        for key in ("first_deviation", "final_deviation", "exact"):
            proportion = getattr(summary, key)
            raw[key] = {"hits": proportion.hits, "n": proportion.n, "rate": proportion.rate,
                        "interval95": list(proportion.interval)}
        raw["fields"] = {name: {"hits": p.hits, "n": p.n, "rate": p.rate}
                         for name, p in summary.fields.items()}
    return data


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _rows(report: Report) -> list[list[str]]:
    rows = []
    for s in report.variants:
        low, high = s.first_deviation.interval
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(s.by_kind.items())) or "none"
        rows.append([
            s.name, s.mode, f"{_pct(s.first_deviation.rate)} ({_pct(low)}–{_pct(high)})", kinds,
            _pct(s.final_deviation.rate), f"{s.attempts_per_request:.2f}",
            _pct(s.exact.rate) if s.exact.n else "n/a",
            f"{s.correct} / {s.content_failures} / {s.format_failures}",
            f"{s.latency_p50_s:.2f} / {s.latency_p95_s:.2f}",
            f"{s.prompt_tokens:.0f} + {s.completion_tokens:.0f}",
            f"${s.usd_per_1k_requests:.3f}", str(s.errors),
        ])
    return rows


HEADERS = ["variant", "mode", "first-attempt deviation (95 % CI)", "by kind",
           "final deviation", "attempts/request", "exact match",
           "correct / content / format failures", "latency p50 / p95 s",
           "tokens/request (prompt + completion)", "cost / 1k requests", "errors"]


def markdown(report: Report) -> str:
    lines = [f"# Should I fine-tune? {report.dataset}", "",
             f"{report.items} items; {len(report.variants)} variants.", "",
             f"## Recommendation: {report.decision.recommendation}", ""]
    lines += [f"- {reason}" for reason in report.decision.reasons]
    lines += ["", "## Variants", "", "| " + " | ".join(HEADERS) + " |",
              "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(row) + " |" for row in _rows(report)]
    lines += ["", "## Accuracy per field", ""]
    for s in report.variants:
        fields = ", ".join(f"{n} {_pct(p.rate)}" for n, p in s.fields.items()) or "no expected"
        lines.append(f"- {s.name}: {fields}")
    lines += ["", "## Economics", ""] + [f"- {line}" for line in _economics(report)]
    lines += ["", "Charts: " + ", ".join(f"[{c}]({c}.png)" for c in CHARTS), ""]
    return "\n".join(lines)


def _economics(report: Report) -> list[str]:
    e = report.economics
    lines = [f"a fine-tune costs about ${e.fine_tune_usd_per_year:,.0f} a year (compute and "
             "annotation, times the retraining cycles)"]
    if e.alternative is not None and e.alternative_usd_per_1k is not None:
        lines.append(f"running cost without it ({e.alternative}): "
                     f"${e.alternative_usd_per_1k:.3f} per 1,000 requests")
    if e.adapter is not None and e.adapter_usd_per_1k is not None:
        lines.append(f"with the adapter ({e.adapter}): ${e.adapter_usd_per_1k:.3f} per 1,000 "
                     "requests")
    if e.break_even_requests_per_year is not None:
        lines.append(f"break-even: {e.break_even_requests_per_year:,.0f} requests a year")
    return lines + e.notes


def page(report: Report, charts: dict[str, bytes]) -> str:
    """One HTML file with everything inline; a script marks the charts it saw drawn."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in _rows(report))
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report.decision.reasons)
    economics = "".join(f"<li>{html.escape(r)}</li>" for r in _economics(report))
    images = "".join(
        f'<figure><img class="chart" alt="{name}" src="data:image/png;base64,'
        f'{base64.b64encode(png).decode()}"><figcaption>{name}</figcaption></figure>'
        for name, png in charts.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Should I fine-tune? {html.escape(report.dataset)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
td, th {{ border: 1px solid #ccc; padding: 0.3rem 0.5rem; text-align: left; }}
.verdict {{ font-size: 1.4rem; padding: 0.6rem 1rem; background: #eef5ff; display: inline-block; }}
.charts {{ display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); }}
img.chart {{ max-width: 100%; }}
</style></head>
<body data-charts-drawn="0">
<h1>Should I fine-tune?</h1>
<p>{html.escape(report.dataset)}: {report.items} items, {len(report.variants)} variants.</p>
<p class="verdict">Recommendation:
<strong>{html.escape(report.decision.recommendation)}</strong></p>
<ul>{reasons}</ul>
<h2>Variants</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Economics</h2><ul>{economics}</ul>
<h2>Charts</h2><div class="charts">{images}</div>
<script>
window.addEventListener("load", () => {{
  const drawn = [...document.querySelectorAll("img.chart")]
    .filter(img => img.complete && img.naturalWidth > 0).length;
  document.body.dataset.chartsDrawn = String(drawn);
}});
</script>
</body></html>
"""


def _chart(name: str, variants: list[Summary]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    labels = [s.name for s in variants]
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    if name == "deviation-by-kind":
        bottom = [0.0] * len(variants)
        for kind in KINDS:
            shares = [s.by_kind.get(kind, 0) / s.requests * 100 if s.requests else 0.0
                      for s in variants]
            if any(shares):
                axes.bar(labels, shares, bottom=bottom, label=kind)
                bottom = [b + v for b, v in zip(bottom, shares, strict=True)]
        if not any(bottom):
            axes.bar(labels, bottom)  # the variants on the axis, at 0
            axes.text(0.5, 0.5, "no format deviation", transform=axes.transAxes,
                      ha="center", va="center")
        axes.set_ylabel("% of requests, first attempt")
        axes.set_title("Format deviation by kind")
    elif name == "accuracy-split":
        parts = {"correct": [s.correct for s in variants],
                 "content failure": [s.content_failures for s in variants],
                 "format failure": [s.format_failures for s in variants]}
        bottom = [0.0] * len(variants)
        for part, counts in parts.items():
            axes.bar(labels, counts, bottom=bottom, label=part)
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        axes.set_ylabel("requests with an expected answer")
        axes.set_title("Accuracy: correct, content and format failures")
    elif name == "latency":
        x = range(len(variants))
        axes.bar([i - 0.2 for i in x], [s.latency_p50_s for s in variants], 0.4, label="p50")
        axes.bar([i + 0.2 for i in x], [s.latency_p95_s for s in variants], 0.4, label="p95")
        axes.set_xticks(list(x), labels)
        axes.set_ylabel("seconds")
        axes.set_title("Latency per request (all attempts)")
    else:
        prompt = [s.prompt_tokens for s in variants]
        axes.bar(labels, prompt, label="prompt")
        axes.bar(labels, [s.completion_tokens for s in variants], bottom=prompt,
                 label="completion")
        axes.set_ylabel("tokens per request")
        axes.set_title("Tokens per request (all attempts)")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(fontsize="small")
    axes.tick_params(axis="x", labelrotation=15)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
