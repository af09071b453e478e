"""A corpus of real-world JSON Schemas whose licences allow redistribution.

`build` gathers schemas from five sources and writes them, with their licences, under
benchmarks/schemas/:

- corpus.jsonl.gz: one JSON object a line, sorted by id: {"id": "<source>/<name>",
  "source", "licence" (an SPDX id), "origin" (package==version and the path inside it),
  "schema"}. The gzip header carries no time stamp and no name, so a rebuild from the same
  packages gives the same bytes.
- LICENSES.md: where each source came from, its licence, copyright lines and notes on what
  was left out; the upstream licence files are copied under licenses/<source>/.

The sources:

- schemastore: the configuration-file schemas vendored in the PyPI package check-jsonschema
  (downloaded with pip), whole. Those under a copyleft licence (renovate: AGPL-3.0,
  snapcraft: GPL-3.0) are left out.
- kubernetes: the top-level API kinds of the strict schemas shipped by the installed
  kubernetes-validate, each made self-contained: every definition it needs from
  _definitions.json is copied into its own `$defs` and its references are pointed there.
- bfcl: function-parameter schemas of the Berkeley Function Calling Leaderboard (PyPI
  package bfcl-eval, downloaded with pip), converted from BFCL's dialect the way BFCL's
  OpenAI handler converts them, deduplicated, a deterministic sample.
- openai-api: `model_json_schema()` of the pydantic models exported by the installed openai
  SDK's openai.types, openai.types.chat and openai.types.responses, a deterministic sample.
- json-schema-meta: the metaschemas and vocabularies shipped by the installed
  jsonschema-specifications, as they are.

Run (needs PyPI for the two downloads, or --wheels with the wheels already there):

    .venv/bin/python -m benchmarks.schema_corpus build [--out benchmarks/schemas]
"""

from __future__ import annotations

import argparse
import ast
import copy
import gzip
import hashlib
import importlib
import importlib.metadata
import inspect
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

DEFAULT_OUT = Path(__file__).resolve().parent / "schemas"
CORPUS_NAME = "corpus.jsonl.gz"
LICENSES_NAME = "LICENSES.md"

CHECK_JSONSCHEMA = ("check-jsonschema", "0.39.0")
BFCL_EVAL = ("bfcl-eval", "2026.3.23")

# check-jsonschema's vendor/README.md: SchemaStore's Apache-2.0 unless a file in
# vendor/licenses names the schema. Schema file stem -> (SPDX id, licence file).
_SCHEMASTORE_DEFAULT = ("Apache-2.0", "LICENSE.schemastore")
_SCHEMASTORE_LICENCES: dict[str, tuple[str, str]] = {
    "azure-pipelines": ("MIT", "LICENSE.azure-pipelines"),
    "bitbucket-pipelines": ("MIT", "LICENSE.bitbucket-pipelines"),
    "buildkite": ("MIT", "LICENSE.buildkite"),
    "changie": ("MIT", "LICENSE.changie"),
    "citation-file-format": ("CC-BY-4.0", "LICENSE.citation-file-format"),
    "compose-spec": ("Apache-2.0", "LICENSE.compose-spec"),
    # GitLab's licence file: the "MIT Expat" portion covers this schema.
    "gitlab-ci": ("MIT", "LICENSE.gitlab"),
    "meltano": ("MIT", "LICENSE.meltano"),
    "readthedocs": ("MIT", "LICENSE.readthedocs"),
    "renovate": ("AGPL-3.0", "LICENSE.renovate"),
    "snapcraft": ("GPL-3.0", "LICENSE.snapcraft"),
    "taskfile": ("MIT", "LICENSE.task"),
}
# Copyleft: redistributable, but not beside an Apache-2.0 project's data without care.
_COPYLEFT = {"AGPL-3.0", "GPL-3.0"}

_K8S_DIR = "kubernetes-json-schema/v1.32.0-local-strict"
_K8S_DEFS_REF = "/api/_definitions.json#/$defs/"
_K8S_LOCAL_REF = "#/$defs/"
# Every k-th top-level kind, sorted by file name; 1 keeps them all.
_K8S_STRIDE = 1

_BFCL_LIMIT = 300
# Not JSON lines of test entries: a map of category -> test ids.
_BFCL_SKIP_FILES = {"BFCL_v4_format_sensitivity.json"}

_OPENAI_MODULES = ("openai.types", "openai.types.chat", "openai.types.responses")
_OPENAI_LIMIT = 150


@dataclass(frozen=True)
class Entry:
    """One schema of the corpus."""

    id: str
    source: str
    licence: str
    origin: str
    schema: dict[str, Any]


@dataclass
class Source:
    """What one source contributed: its schemas and the words for LICENSES.md."""

    name: str
    entries: list[Entry] = field(default_factory=list)
    # Markdown lines: provenance, licence, copyright, notes.
    notes: list[str] = field(default_factory=list)
    # Licence files to copy: name under licenses/<source>/ -> contents.
    licence_files: dict[str, bytes] = field(default_factory=dict)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _sha(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()


def _spread(items: Sequence[Any], limit: int) -> list[Any]:
    """At most `limit` items, evenly spaced over the sequence, first one included."""
    if len(items) <= limit:
        return list(items)
    return [items[i * len(items) // limit] for i in range(limit)]


def _download(package: tuple[str, str], wheels: Path) -> Path:
    """The wheel of package==version in `wheels`, fetched with pip when not there yet."""
    name, version = package
    pattern = f"{name.replace('-', '_')}-{version}-*.whl"
    found = sorted(wheels.glob(pattern))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", f"{name}=={version}",
                        "--no-deps", "--only-binary=:all:", "--quiet", "-d", str(wheels)],
                       check=True)
        found = sorted(wheels.glob(pattern))
    if not found:
        raise SystemExit(f"pip download left no {pattern} in {wheels}")
    return found[0]


def _package_dir(module: str) -> Path:
    return Path(importlib.import_module(module).__file__ or "").parent


def _dist_file(distribution: str, suffix: str) -> bytes:
    """A file of an installed distribution's metadata, e.g. 'licenses/LICENSE'."""
    files = importlib.metadata.files(distribution) or []
    for path in files:
        if path.as_posix().endswith(".dist-info/" + suffix):
            return path.read_binary()
    raise SystemExit(f"{distribution}: no {suffix} in its dist-info")


# --- schemastore ---------------------------------------------------------------------------


def _schemastore(wheel: Path) -> Source:
    name, version = CHECK_JSONSCHEMA
    vendor = "check_jsonschema/builtin_schemas/vendor/"
    source = Source("schemastore")
    used: set[str] = set()
    skipped: list[str] = []
    with zipfile.ZipFile(wheel) as archive:
        names = sorted(archive.namelist())
        shipped = {n.removeprefix(vendor + "licenses/") for n in names
                   if n.startswith(vendor + "licenses/")}
        known = {file for _, file in _SCHEMASTORE_LICENCES.values()} | {_SCHEMASTORE_DEFAULT[1]}
        if shipped != known:
            raise SystemExit(f"{wheel.name}: licence files {sorted(shipped ^ known)} unexpected;"
                             " update _SCHEMASTORE_LICENCES")
        for path in names:
            stem = path.removeprefix(vendor).removesuffix(".json")
            if not path.startswith(vendor) or not path.endswith(".json") or "/" in stem:
                continue
            spdx, licence_file = _SCHEMASTORE_LICENCES.get(stem, _SCHEMASTORE_DEFAULT)
            if spdx in _COPYLEFT:
                skipped.append(f"`{stem}` ({spdx})")
                continue
            used.add(licence_file)
            source.entries.append(Entry(
                id=f"schemastore/{stem}", source="schemastore", licence=spdx,
                origin=f"{name}=={version} {path}", schema=json.loads(archive.read(path))))
        for licence_file in sorted(used):
            source.licence_files[licence_file] = archive.read(vendor + "licenses/" + licence_file)
        readme = archive.read(vendor + "README.md").decode()
    by_file: dict[str, list[str]] = {}
    for entry in source.entries:
        stem = entry.id.removeprefix("schemastore/")
        by_file.setdefault(_SCHEMASTORE_LICENCES.get(stem, _SCHEMASTORE_DEFAULT)[1],
                           []).append(f"`{stem}`")
    source.notes += [
        f"From the PyPI package `{name}=={version}` (https://github.com/python-jsonschema/"
        "check-jsonschema), files `check_jsonschema/builtin_schemas/vendor/*.json`; the "
        "`custom/` schemas (check-jsonschema's own) are not taken. Kept whole, unmodified.",
        "",
        "Licences, as check-jsonschema's `vendor/README.md` states them: most are SchemaStore's "
        "(https://github.com/SchemaStore/schemastore, Apache-2.0); the others are under their "
        "projects' licences. The licence files are copied from `vendor/licenses/`:",
        "",
    ]
    for licence_file, stems in sorted(by_file.items()):
        spdx = next(s for s, f in [*_SCHEMASTORE_LICENCES.values(), _SCHEMASTORE_DEFAULT]
                    if f == licence_file)
        source.notes.append(f"- `licenses/schemastore/{licence_file}` ({spdx}): "
                            + ", ".join(stems))
    source.notes += [
        "",
        "Attribution for the CC-BY-4.0 one: `citation-file-format` is the Citation File Format "
        "1.2.0 schema (https://citation-file-format.github.io/1.2.0/schema.json) by the "
        "Citation File Format authors (https://github.com/citation-file-format/"
        "citation-file-format), licensed CC-BY-4.0, not modified.",
        "",
        "Left out, being copyleft (redistributable, but not mixed into this Apache-2.0 "
        "project's data without care): " + ", ".join(skipped) + ".",
        "",
        "check-jsonschema's `vendor/README.md`, for reference:",
        "",
        *("> " + line if line else ">" for line in readme.strip().splitlines()),
    ]
    return source


# --- kubernetes ----------------------------------------------------------------------------


def _k8s_refs(node: Any, out: set[str]) -> None:
    """Collect the definition names `node` refers to, in either spelling."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                if value.startswith(_K8S_DEFS_REF):
                    out.add(value.removeprefix(_K8S_DEFS_REF))
                elif value.startswith(_K8S_LOCAL_REF):
                    out.add(value.removeprefix(_K8S_LOCAL_REF))
                else:
                    raise SystemExit(f"kubernetes: unexpected $ref {value!r}")
            else:
                _k8s_refs(value, out)
    elif isinstance(node, list):
        for value in node:
            _k8s_refs(value, out)


def _k8s_localise(node: Any) -> Any:
    """A copy of `node` with refs into _definitions.json pointed at the local `$defs`."""
    if isinstance(node, dict):
        return {key: (_K8S_LOCAL_REF + value.removeprefix(_K8S_DEFS_REF)
                      if key == "$ref" and isinstance(value, str)
                      and value.startswith(_K8S_DEFS_REF) else _k8s_localise(value))
                for key, value in node.items()}
    if isinstance(node, list):
        return [_k8s_localise(value) for value in node]
    return node


def _k8s_bundle(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    needed: set[str] = set()
    _k8s_refs(schema, needed)
    closure: set[str] = set()
    pending = sorted(needed)
    while pending:
        name = pending.pop()
        if name in closure:
            continue
        closure.add(name)
        found: set[str] = set()
        _k8s_refs(definitions[name], found)
        pending.extend(sorted(found - closure))
    if "$defs" in schema:
        raise SystemExit("kubernetes: a schema already has $defs")
    bundled: dict[str, Any] = _k8s_localise(schema)
    if closure:
        bundled["$defs"] = {name: _k8s_localise(definitions[name]) for name in sorted(closure)}
    return bundled


def _kubernetes(apache: bytes) -> Source:
    version = importlib.metadata.version("kubernetes-validate")
    folder = _package_dir("kubernetes_validate") / _K8S_DIR
    where = f"kubernetes_validate/{_K8S_DIR}"
    definitions = json.loads((folder / "_definitions.json").read_text())["$defs"]
    source = Source("kubernetes")
    kinds: list[tuple[Path, dict[str, Any]]] = []
    files = sorted(p for p in folder.glob("*.json")
                   if p.name not in {"_definitions.json", "all.json"})
    for path in files:
        schema = json.loads(path.read_text())
        properties = schema.get("properties", {})
        if ("apiVersion" in properties and "kind" in properties
                and "x-kubernetes-group-version-kind" in schema):
            kinds.append((path, schema))
    chosen = kinds[::_K8S_STRIDE]
    for path, schema in chosen:
        source.entries.append(Entry(
            id=f"kubernetes/{path.stem}", source="kubernetes", licence="Apache-2.0",
            origin=f"kubernetes-validate=={version} {where}/{path.name} (+ _definitions.json)",
            schema=_k8s_bundle(schema, definitions)))
    source.licence_files["LICENSE"] = apache
    source.licence_files["LICENSE.kubernetes-validate"] = _dist_file("kubernetes-validate",
                                                                     "licenses/LICENSE")
    sampled = ("all of them" if _K8S_STRIDE == 1
               else f"every {_K8S_STRIDE}th of them in file-name order ({len(chosen)})")
    source.notes += [
        f"From the installed PyPI package `kubernetes-validate=={version}` "
        f"(https://github.com/willthames/kubernetes-validate), folder `{where}/`: JSON Schemas "
        "(2020-12) generated from the Kubernetes v1.32.0 OpenAPI definitions.",
        "",
        f"Taken: the top-level API kinds, i.e. the {len(files)} files other than "
        "`_definitions.json` and `all.json` that have `apiVersion` and `kind` properties and "
        f"an `x-kubernetes-group-version-kind` ({len(kinds)} kinds, Lists included); "
        f"{sampled}.",
        "",
        "Changed: each is made self-contained. Every definition it refers to in "
        f"`_definitions.json`, transitively, is copied into its own `$defs`, and each "
        f"`\"$ref\": \"{_K8S_DEFS_REF}X\"` becomes `\"#/$defs/X\"` (refs inside "
        "`_definitions.json` already have that form). Recursive definitions (e.g. "
        "`JSONSchemaProps`) are kept. Nothing else is changed.",
        "",
        "Licence: Apache-2.0, Copyright The Kubernetes Authors (the API definitions); "
        "kubernetes-validate is Apache-2.0, Copyright (C) 2018 Will Thames. "
        "`licenses/kubernetes/LICENSE` is the Apache License 2.0 text (Kubernetes' own "
        "LICENSE file is that text; this copy comes from the one check-jsonschema ships as "
        "`LICENSE.schemastore`), `licenses/kubernetes/LICENSE.kubernetes-validate` the "
        "package's notice from its dist-info.",
    ]
    return source


# --- bfcl ----------------------------------------------------------------------------------


def _bfcl_mapping(archive: zipfile.ZipFile) -> dict[str, str]:
    """GORILLA_TO_OPENAPI, read (not run) from the package's constants/type_mappings.py."""
    tree = ast.parse(archive.read("bfcl_eval/constants/type_mappings.py"))
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "GORILLA_TO_OPENAPI"):
            mapping: dict[str, str] = ast.literal_eval(node.value)
            return mapping
    raise SystemExit("bfcl: no GORILLA_TO_OPENAPI in constants/type_mappings.py")


def _bfcl_cast(properties: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """A port of bfcl_eval.model_handler.utils._cast_to_openai_type with GORILLA_TO_OPENAPI.

    It fails where BFCL's fails (KeyError, TypeError): such functions are left out.
    """
    for value in properties.values():
        if "type" not in value:
            value["type"] = "string"
        else:
            var_type = value["type"]
            if var_type == "float":
                value["format"] = "float"
                value["description"] += " This is a float type value."
            value["type"] = mapping.get(var_type, "string")
        if value["type"] in ("array", "object"):
            if "properties" in value:
                value["properties"] = _bfcl_cast(value["properties"], mapping)
            elif "items" in value:
                items = value["items"]
                items["type"] = mapping[items["type"]]
                if items["type"] == "array" and "items" in items:
                    items["items"]["type"] = mapping[items["items"]["type"]]
                elif items["type"] == "object" and "properties" in items:
                    items["properties"] = _bfcl_cast(items["properties"], mapping)
    return properties


def _bfcl_parameters(function: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    """The `parameters` that bfcl_eval's convert_to_tool gives an OpenAI-style handler."""
    parameters: dict[str, Any] = copy.deepcopy(function["parameters"])
    parameters["type"] = "object"
    parameters["properties"] = _bfcl_cast(parameters["properties"], mapping)
    return parameters


def _bfcl_functions(archive: zipfile.ZipFile) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, function) for every function doc in the data files, in file order."""
    names = sorted(archive.namelist())
    for path in names:
        if path.startswith("bfcl_eval/data/multi_turn_func_doc/") and path.endswith(".json"):
            for number, line in enumerate(archive.read(path).decode().splitlines(), 1):
                if line.strip():
                    yield f"{path} line {number}", json.loads(line)
    for path in names:
        base = path.removeprefix("bfcl_eval/data/")
        if (base == path or "/" in base or not base.startswith("BFCL_v4_")
                or not base.endswith(".json") or base in _BFCL_SKIP_FILES):
            continue
        for line in archive.read(path).decode().splitlines():
            if not line.strip():
                continue
            test = json.loads(line)
            for function in test.get("function", []):
                yield f"{path} id {test['id']}", function


def _bfcl(wheel: Path, apache: bytes) -> Source:
    name, version = BFCL_EVAL
    source = Source("bfcl")
    distinct: dict[str, tuple[str, str, dict[str, Any]]] = {}
    seen = failed = 0
    with zipfile.ZipFile(wheel) as archive:
        mapping = _bfcl_mapping(archive)
        for where, function in _bfcl_functions(archive):
            seen += 1
            try:
                schema = _bfcl_parameters(function, mapping)
                digest = _sha(schema)
            except (KeyError, TypeError, AttributeError, ValueError):
                failed += 1
                continue
            distinct.setdefault(digest, (function["name"], where, schema))
    chosen = sorted(distinct.items())[:_BFCL_LIMIT]
    counts: dict[str, int] = {}
    for _, (function_name, _, _) in chosen:
        counts[function_name] = counts.get(function_name, 0) + 1
    for digest, (function_name, where, schema) in chosen:
        suffix = f"~{digest[:8]}" if counts[function_name] > 1 else ""
        source.entries.append(Entry(
            id=f"bfcl/{function_name}{suffix}", source="bfcl", licence="Apache-2.0",
            origin=f"{name}=={version} {where} function {function_name}", schema=schema))
    source.licence_files["LICENSE"] = apache
    source.licence_files["NOTICE"] = (
        f"Berkeley Function Calling Leaderboard (BFCL), PyPI package {name}=={version}\n"
        "https://github.com/ShishirPatil/gorilla/tree/main/berkeley-function-call-leaderboard\n"
        "Authors (package metadata): Huanzhi Mao, Shishir Patil, Sky Computing Lab\n"
        "(UC Berkeley). Licensed under the Apache License, Version 2.0 (package metadata:\n"
        "\"License: Apache 2.0\"); the licence text is in LICENSE beside this file.\n"
        "The schemas in the corpus are the function `parameters` of BFCL's data files,\n"
        "converted to JSON Schema (see LICENSES.md): modified files in the sense of\n"
        "section 4(b) of the licence.\n").encode()
    source.notes += [
        f"From the PyPI package `{name}=={version}` "
        "(https://github.com/ShishirPatil/gorilla/tree/main/berkeley-function-call-leaderboard): "
        "the function docs in `bfcl_eval/data/multi_turn_func_doc/*.json` and in the "
        "`function` lists of `bfcl_eval/data/BFCL_v4_*.json` "
        f"(not {', '.join(sorted(_BFCL_SKIP_FILES))}, a list of test ids).",
        "",
        "Changed: each function's `parameters` (BFCL's dialect) is converted to JSON Schema as "
        "BFCL's OpenAI handlers do (`convert_to_tool` with `GORILLA_TO_OPENAPI`, "
        "`bfcl_eval/model_handler/utils.py`): the top `type` becomes `object`; in the "
        "properties BFCL type names map through `GORILLA_TO_OPENAPI` (`dict` -> `object`, "
        "`float` -> `number` plus `format: float` and a sentence added to the description, "
        "`tuple` -> `array`, `any` and unknown names -> `string`, a missing type -> `string`), "
        "recursively as BFCL does. BFCL's prompt-side hints for Java/JavaScript categories "
        "are not applied.",
        "",
        f"Functions read: {seen}; left out because BFCL's own conversion fails on them: "
        f"{failed}; distinct schemas (canonical JSON): {len(distinct)}; taken: the first "
        f"{len(chosen)} by SHA-256 of their canonical JSON (a deterministic, even sample). "
        "The id is the function name, with `~` and the hash's first 8 hex digits when "
        "several taken schemas share a name. The origin is the first place it occurs.",
        "",
        "Licence: Apache-2.0. The wheel ships no licence file: "
        "`licenses/bfcl/NOTICE` states the package's licence and authors, "
        "`licenses/bfcl/LICENSE` is the Apache License 2.0 text.",
    ]
    return source


# --- openai-api ----------------------------------------------------------------------------


def _openai() -> Source:
    version = importlib.metadata.version("openai")
    source = Source("openai-api")
    classes: dict[str, type[pydantic.BaseModel]] = {}
    for module_name in _OPENAI_MODULES:
        module = importlib.import_module(module_name)
        for attribute in sorted(vars(module)):
            value = getattr(module, attribute)
            if inspect.isclass(value) and issubclass(value, pydantic.BaseModel):
                name = f"{value.__module__.removeprefix('openai.types.')}.{value.__qualname__}"
                classes.setdefault(name, value)
    schemas: dict[str, tuple[str, type[pydantic.BaseModel], dict[str, Any]]] = {}
    for name, cls in sorted(classes.items()):
        schema = cls.model_json_schema()
        schemas.setdefault(_canonical(schema), (name, cls, schema))
    distinct = sorted(schemas.values(), key=lambda item: item[0])
    chosen = _spread(distinct, _OPENAI_LIMIT)
    for name, cls, schema in chosen:
        path = cls.__module__.replace(".", "/") + ".py"
        source.entries.append(Entry(
            id=f"openai-api/{name}", source="openai-api", licence="Apache-2.0",
            origin=f"openai=={version} {path} {cls.__qualname__}.model_json_schema()",
            schema=schema))
    source.licence_files["LICENSE"] = _dist_file("openai", "licenses/LICENSE")
    source.notes += [
        f"From the installed PyPI package `openai=={version}` "
        "(https://github.com/openai/openai-python): the pydantic models (API response "
        f"objects) exported by {', '.join(f'`{m}`' for m in _OPENAI_MODULES)}, each as "
        "`Model.model_json_schema()` (pydantic "
        f"{importlib.metadata.version('pydantic')}).",
        "",
        f"Models found: {len(classes)}; distinct schemas (canonical JSON): {len(schemas)}; "
        f"taken: {len(chosen)}, evenly spaced over them in id order.",
        "",
        "Licence: Apache-2.0, Copyright OpenAI. `licenses/openai-api/LICENSE` is the LICENSE "
        "file from the package's dist-info.",
    ]
    return source


# --- json-schema-meta ----------------------------------------------------------------------


def _metaschemas() -> Source:
    version = importlib.metadata.version("jsonschema-specifications")
    folder = _package_dir("jsonschema_specifications") / "schemas"
    source = Source("json-schema-meta")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        source.entries.append(Entry(
            id=f"json-schema-meta/{relative.removesuffix('.json')}", source="json-schema-meta",
            licence="MIT",
            origin=f"jsonschema-specifications=={version} jsonschema_specifications/schemas/"
                   f"{relative}",
            schema=json.loads(path.read_text())))
    source.licence_files["COPYING"] = _dist_file("jsonschema-specifications",
                                                 "licenses/COPYING")
    source.notes += [
        f"From the installed PyPI package `jsonschema-specifications=={version}` "
        "(https://github.com/python-jsonschema/jsonschema-specifications): every file under "
        "`jsonschema_specifications/schemas/` (the metaschemas of drafts 3, 4, 6, 7, "
        "2019-09 and 2020-12 and the 2019-09/2020-12 vocabularies), unmodified. The "
        "2019-09/2020-12 ones refer to each other by URL (`$ref`, `$dynamicRef`, "
        "`$recursiveRef`) and are not self-contained.",
        "",
        "Licence: MIT, Copyright (c) 2022 Julian Berman (the package; "
        "`licenses/json-schema-meta/COPYING` from its dist-info). The metaschemas are "
        "authored by the JSON Schema project (https://json-schema.org, "
        "https://github.com/json-schema-org/json-schema-spec, whose repository licence is "
        "BSD-3-Clause / AFL-3.0).",
    ]
    return source


# --- build ---------------------------------------------------------------------------------


def _write_corpus(entries: list[Entry], path: Path) -> None:
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                               compresslevel=9, mtime=0) as packed:
        for entry in entries:
            record = {"id": entry.id, "source": entry.source, "licence": entry.licence,
                      "origin": entry.origin, "schema": entry.schema}
            packed.write((_compact(record) + "\n").encode())


def _sizes(entries: list[Entry]) -> tuple[int, int, str]:
    sizes = [(len(_compact(e.schema).encode()), e.id) for e in entries]
    largest = max(sizes, default=(0, "-"))
    return sum(size for size, _ in sizes), largest[0], largest[1]


def _write_licences(sources: list[Source], out: Path, compressed: int) -> None:
    folder = out / "licenses"
    if folder.exists():
        shutil.rmtree(folder)
    lines = [
        "# Licences of the schema corpus",
        "",
        f"`{CORPUS_NAME}` holds real-world JSON Schemas from the sources below, one JSON "
        "object a line (`id`, `source`, `licence` as an SPDX id, `origin`, `schema`). Built "
        "by `benchmarks/schema_corpus.py`:",
        "",
        "    .venv/bin/python -m benchmarks.schema_corpus build",
        "",
        "Each schema's `licence` and `origin` fields say where it came from. The licence "
        "files are under `licenses/<source>/`.",
        "",
        "| source | schemas | bytes (compact JSON) | largest | licences |",
        "|---|---:|---:|---:|---|",
    ]
    for source in sources:
        total, largest, _ = _sizes(source.entries)
        spdx = ", ".join(sorted({e.licence for e in source.entries}))
        lines.append(f"| {source.name} | {len(source.entries)} | {total} | {largest} | "
                     f"{spdx} |")
    lines += ["", f"`{CORPUS_NAME}`: {compressed} bytes.", ""]
    for source in sources:
        lines += [f"## {source.name}", "", *source.notes, ""]
        for name, data in sorted(source.licence_files.items()):
            target = folder / source.name / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    (out / LICENSES_NAME).write_text("\n".join(lines).rstrip() + "\n")


def _check(entries: list[Entry]) -> None:
    ids = [e.id for e in entries]
    if len(set(ids)) != len(ids):
        raise SystemExit("duplicate ids in the corpus")
    for entry in entries:
        if not isinstance(entry.schema, dict):
            raise SystemExit(f"{entry.id}: not a JSON object")
        text = _compact(entry.schema)  # refuses NaN and infinities
        if json.loads(text) != entry.schema:
            raise SystemExit(f"{entry.id}: not plain JSON")


def build(out: Path, wheels: Path | None) -> None:
    """Write the corpus and its licences under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        where = wheels or Path(scratch)
        where.mkdir(parents=True, exist_ok=True)
        check_jsonschema = _download(CHECK_JSONSCHEMA, where)
        bfcl_eval = _download(BFCL_EVAL, where)
        # The Apache License 2.0 text, for the sources whose packages ship none.
        with zipfile.ZipFile(check_jsonschema) as archive:
            apache = archive.read(
                "check_jsonschema/builtin_schemas/vendor/licenses/LICENSE.schemastore")
        sources = [_schemastore(check_jsonschema), _kubernetes(apache),
                   _bfcl(bfcl_eval, apache), _openai(), _metaschemas()]
    entries = sorted((e for s in sources for e in s.entries), key=lambda e: e.id)
    _check(entries)
    corpus = out / CORPUS_NAME
    _write_corpus(entries, corpus)
    compressed = corpus.stat().st_size
    _write_licences(sources, out, compressed)
    print(f"{'source':<18}{'count':>7}{'bytes':>12}{'largest':>10}  largest id")
    for source in sources:
        total, largest, largest_id = _sizes(source.entries)
        print(f"{source.name:<18}{len(source.entries):>7}{total:>12}{largest:>10}  {largest_id}")
    total, largest, largest_id = _sizes(entries)
    print(f"{'all':<18}{len(entries):>7}{total:>12}{largest:>10}  {largest_id}")
    print(f"{corpus}: {compressed} bytes compressed")


def _cmd_build(args: argparse.Namespace) -> int:
    build(args.out, args.wheels)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="download and write the corpus")
    build_parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                              help="output folder (default: benchmarks/schemas)")
    build_parser.add_argument("--wheels", type=Path, default=None,
                              help="folder for the downloaded wheels, reused when present "
                                   "(default: a temporary folder)")
    build_parser.set_defaults(handler=_cmd_build)
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
