"""The selector reader the other monitoring tests rely on."""

from __future__ import annotations

from tests.monitoring.promql import Selector, metric_names, selectors


def test_reads_names_inside_functions_and_aggregations() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (adapter, le) '
        '(rate(gateway_time_to_first_token_seconds_bucket{adapter=~"$adapter"}[$__rate_interval])))'
    )
    assert metric_names(expr) == {"gateway_time_to_first_token_seconds_bucket"}


def test_skips_keywords_grouping_labels_durations_and_offsets() -> None:
    expr = """
      sum by (adapter, schema, kind) (rate(gateway_structured_deviations_total[5m]))
      / ignoring (kind) group_left
      sum by (adapter, schema) (rate(gateway_structured_checks_total[5m]))
      and on (adapter) x:y:z >= 100
      or gateway_adapter_load_failures_total unless gateway_adapter_load_failures_total offset 15m
    """
    assert metric_names(expr) == {
        "gateway_structured_deviations_total",
        "gateway_structured_checks_total",
        "x:y:z",
        "gateway_adapter_load_failures_total",
    }


def test_keeps_matchers_with_braces_and_quotes_in_values() -> None:
    expr = 'up{job="gateway", instance=~"a}b|\\"c"} == 0'
    assert selectors(expr) == [
        Selector("up", {"job": ("=", "gateway"), "instance": ("=~", 'a}b|\\"c')}),
    ]


def test_reads_recording_rule_names_with_colons() -> None:
    expr = 'adapter_schema:gateway_structured_deviation_ratio:rate5m{schema=~"$schema"} > 0.01'
    assert selectors(expr) == [
        Selector(
            "adapter_schema:gateway_structured_deviation_ratio:rate5m",
            {"schema": ("=~", "$schema")},
        ),
    ]


def test_ignores_grafana_variables_and_strings() -> None:
    expr = 'label_replace(vllm:num_requests_running, "dst", "$1", "src", "(.*)") * ${factor}'
    assert metric_names(expr) == {"vllm:num_requests_running"}
