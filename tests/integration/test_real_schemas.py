"""Real-world schema shapes on the real engine: recursion and hundreds of properties are
admitted and constrained; a schema the engine's compiler cannot take is answered by re-ask,
its grammar never sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.integration.conftest import MODEL, ROOT, RealGateway
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.integration

TREE: dict[str, Any] = {
    "$defs": {"node": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "maxLength": 12},
        "children": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/node"}}}}},
    "$ref": "#/$defs/node",
}
WIDE: dict[str, Any] = {
    "type": "object", "required": ["category", "priority"],
    "properties": {
        "category": {"type": "string", "enum": ["billing", "technical", "account", "other"]},
        "priority": {"type": "string", "enum": ["low", "medium", "high"]},
        **{f"note_{i}": {"type": "string", "maxLength": 8} for i in range(300)},
    },
}
TICKET = json.loads((ROOT / "config" / "schemas" / "ticket.json").read_text())
# The ticket schema and one more required field, whose pattern xgrammar cannot compile
# (Unicode classes) while the validator runs it: constrained decoding is unavailable for it.
UNCONSTRAINABLE: dict[str, Any] = {
    **TICKET,
    "properties": {**TICKET["properties"],
                   "language": {"type": "string", "pattern": "^\\p{Lu}{2}$"}},
    "required": [*TICKET["required"], "language"],
}


def _ask(gateway: RealGateway, model: str, schema: dict[str, Any], prompt: str,
         retry: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    answer = gateway.sdk().chat.completions.create(
        model=model, messages=[{"role": "user", "content": prompt}], max_tokens=160,
        temperature=0, response_format={"type": "json_schema",
                                        "json_schema": {"name": "shape", "schema": schema}},
        extra_body={"retry": retry})
    report: dict[str, Any] = (answer.model_extra or {})["structured"]
    return json.loads(answer.choices[0].message.content or "null"), report


def test_recursive_and_wide_schemas_get_valid_answers_through_constrained_decoding(
    real_gateway: RealGateway,
) -> None:
    used = []
    for schema, prompt in ((TREE, "Describe a family: a parent with two children."),
                           (WIDE, "My invoice is wrong, please fix it.")):
        document, report = _ask(real_gateway, MODEL, schema, prompt,
                                {"max_attempts": 2, "strategies": ["constrained"]})
        assert report["valid"], report
        assert "constrained" not in report  # the grammar passed the compile check
        jsonschema.validate(document, schema)
        used += report["strategies"]
    # The bundled model answers these prompts in prose: the valid answers were constrained.
    assert "constrained" in used


def test_an_unconstrainable_schema_is_answered_by_reask_on_ticket_router(
    real_gateway: RealGateway, router: str, tmp_path: Path
) -> None:
    document, report = _ask(
        real_gateway, router, UNCONSTRAINABLE,
        "Our whole team cannot log in since this morning! Language: EN.",
        {"max_attempts": 4, "strategies": ["constrained", "reask"]})
    assert report["constrained"].startswith("unavailable: the engine's compiler refuses it")
    assert "constrained" not in report["strategies"]
    assert report["strategies"][0] == "reask"
    assert report["deviations"][0]["keyword"] == "required"
    if report["valid"]:
        jsonschema.validate(document, UNCONSTRAINABLE)
    samples = parse(real_gateway.metrics())
    assert value(samples, "gateway_grammar_verdicts_total", kind="structural_tag",
                 constrainable="false") >= 1
