"""The code's shape: no class grows past what one reader holds in mind."""

from __future__ import annotations

import ast
from pathlib import Path

import gateway

MAX_CLASS_LINES = 300


def test_no_class_is_over_300_lines() -> None:
    root = Path(gateway.__file__).parent
    too_long = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    too_long.append(f"{path.relative_to(root)}:{node.name} ({lines} lines)")
    assert not too_long, too_long
