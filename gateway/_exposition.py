"""The exposition text of the gateway's metrics, written fast enough to scrape often.

prometheus_client's ``generate_latest`` builds a sample object, a label dictionary and a
sorted, escaped label string for every line; with 20 adapters' series (about 3,700 lines)
that is tens of milliseconds per scrape. This writer reads each series' values directly,
escapes each series' labels once for all of its bucket lines, and leaves out the
``<name>_created`` series (creation timestamps nothing charts or alerts on). The text is
the same Prometheus text format 0.0.4; tests/test_metrics_module.py compares the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.utils import floatToGoString

Metric = Counter | Gauge | Histogram
# floatToGoString writes positive values from 1e6 up with an exponent, as Go does.
_GO_EXPONENT = 1e6


def write_text(metrics: Iterable[Metric]) -> bytes:
    """Prometheus text format for ``metrics``, in the order given."""
    out: list[str] = []
    for metric in metrics:
        _write_family(out, metric)
    return "".join(out).encode()


def _write_family(out: list[str], metric: Metric) -> None:
    kind = metric._type
    name = f"{metric._name}_total" if kind == "counter" else metric._name
    help_text = metric._documentation.replace("\\", r"\\").replace("\n", r"\n")
    out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
    if isinstance(metric, Histogram):
        _write_histograms(out, metric)
        return
    for labels, child in _series(metric):
        out.append(f"{name}{_braced(labels)} {_number(child._value.get())}\n")


def _write_histograms(out: list[str], metric: Histogram) -> None:
    name = metric._name
    bounds = [f'le="{_number(bound)}"' for bound in metric._upper_bounds]
    for labels, child in _series(metric):
        prefix = f"{name}_bucket{{{labels}," if labels else f"{name}_bucket{{"
        cumulative = 0.0
        for le, bucket in zip(bounds, child._buckets, strict=True):
            cumulative += bucket.get()
            out.append(f"{prefix}{le}}} {_number(cumulative)}\n")
        braced = _braced(labels)
        out.append(f"{name}_count{braced} {_number(cumulative)}\n")
        out.append(f"{name}_sum{braced} {_number(child._sum.get())}\n")


def _series(metric: Metric) -> list[tuple[str, Any]]:
    """(label text, child) for every series of ``metric``; the metric itself when unlabelled."""
    names = metric._labelnames
    if not names:
        return [("", metric)]
    with metric._lock:
        children = list(metric._metrics.items())
    return [(_labels(names, values), child) for values, child in children]


def _number(value: float) -> str:
    """A value as Prometheus writes it: Go's float formatting, ``+Inf`` for infinity."""
    if -_GO_EXPONENT < value < _GO_EXPONENT:
        return repr(float(value))  # the common case, as floatToGoString writes it
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    return ",".join(f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True))


def _escape(value: str) -> str:
    if "\\" not in value and "\n" not in value and '"' not in value:
        return value
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _braced(labels: str) -> str:
    return f"{{{labels}}}" if labels else ""
