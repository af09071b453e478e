"""Real-world schema shapes on the real engine: recursion and hundreds of properties are
admitted and constrained; a schema the engine's compiler cannot take is answered by re-ask,
its grammar never sent."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest

from tests.integration.conftest import MODEL, ROOT, RealGateway
from tests.metrics_reader import parse, value

pytestmark = pytest.mark.integration

# A site menu: entries are labels or menus in turn. (A family tree, where every node may
# have children, made the bundled model nest "children" until max_tokens, constrained or
# not: recursion a grammar allows is recursion a small model may take.)
MENU: dict[str, Any] = {
    "$defs": {"menu": {"type": "object", "required": ["label", "items"], "properties": {
        "label": {"type": "string", "maxLength": 20},
        "items": {"type": "array", "maxItems": 3, "items": {
            "anyOf": [{"type": "string", "maxLength": 20}, {"$ref": "#/$defs/menu"}]}}}}},
    "$ref": "#/$defs/menu",
}
WIDE: dict[str, Any] = {
    "type": "object", "required": ["category", "priority"],
    "properties": {
        "category": {"type": "string", "enum": ["billing", "technical", "account", "other"]},
        "priority": {"type": "string", "enum": ["low", "medium", "high"]},
        # Without maxLength: with it, xgrammar needs about 1.1 s for 300 of them here, idle.
        **{f"note_{i}": {"type": "string"} for i in range(300)},
    },
    # Without it the bundled model, constrained, adds note after note until max_tokens.
    "maxProperties": 4,
}
TICKET = json.loads((ROOT / "config" / "schemas" / "ticket.json").read_text())
# The ticket schema with no "high" priority, and an optional field whose pattern xgrammar
# cannot compile (a Unicode class) while the validator runs it: constrained decoding is
# unavailable for it, and the router's "high" for an outage is a violation to re-ask.
UNCONSTRAINABLE: dict[str, Any] = {
    **TICKET,
    "properties": {**TICKET["properties"],
                   "priority": {"type": "string", "enum": ["low", "medium"]},
                   "language": {"type": "string", "pattern": "^\\p{Lu}{2}$"}},
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
    for schema, prompt in ((MENU, "Write the menu of a small website."),
                           (WIDE, "My invoice is wrong, please fix it.")):
        document, report = _ask(real_gateway, MODEL, schema, prompt,
                                {"max_attempts": 2, "strategies": ["constrained"]})
        assert report["valid"], report
        assert "constrained" not in report  # the grammar passed the compile check
        jsonschema.validate(document, schema)
        used += report["strategies"]
    # The bundled model answers these prompts in prose: the valid answers were constrained.
    assert "constrained" in used


def test_an_unconstrainable_schema_goes_to_reask_on_ticket_router(
    real_gateway: RealGateway, router: str
) -> None:
    """The router answers "high" for an outage, which this schema forbids; the constrained
    retry is skipped on the compile check's verdict and every retry is a re-ask. (The
    router does not repair by re-ask: trained on one format, it repeats its answer or
    echoes the schema quoted to it, so the request ends in a 422 that says why.)"""
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        _ask(real_gateway, router, UNCONSTRAINABLE,
             "Our whole team cannot log in since this morning! Nobody can work.",
             {"max_attempts": 2, "strategies": ["constrained", "reask"]})
    body = raised.value.body
    assert isinstance(body, dict)
    report = body["structured"]
    assert report["constrained"].startswith("unavailable: the engine's compiler refuses it")
    assert report["strategies"] == ["reask"]
    assert report["deviations"][0]["keyword"] == "enum"
    assert "Constrained decoding is not available for this schema" in body["message"]
    samples = parse(real_gateway.metrics())
    assert value(samples, "gateway_grammar_verdicts_total", kind="structural_tag",
                 constrainable="false") >= 1
