from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from gateway.config import DEFAULT_CONFIG, Settings


def _keys(model: type[BaseModel], prefix: str = "") -> set[str]:
    keys = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        keys.add(path)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _keys(annotation, f"{path}.")
    return keys


def _yaml_keys(data: dict[str, Any], prefix: str = "") -> set[str]:
    keys = set()
    for name, value in data.items():
        keys.add(f"{prefix}{name}")
        if isinstance(value, dict):
            keys |= _yaml_keys(value, f"{prefix}{name}.")
    return keys


def test_the_shipped_file_documents_every_setting() -> None:
    shipped = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert _yaml_keys(shipped) == _keys(Settings)


def test_the_shipped_file_holds_the_defaults(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.chdir(Path(DEFAULT_CONFIG).parent.parent)
    from_file = Settings()
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n")
    monkeypatch.setenv("GATEWAY_CONFIG", str(empty))
    defaults = Settings()
    assert _resolved(from_file.model_dump()) == _resolved(defaults.model_dump())


def _resolved(value: Any) -> Any:
    """Paths made absolute (the file's are relative to the project root), the rest as is."""
    if isinstance(value, Path):
        return value.resolve()
    if isinstance(value, dict):
        return {k: _resolved(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolved(v) for v in value]
    return value


def test_environment_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_SERVER__PORT", "9123")
    monkeypatch.setenv("GATEWAY_ENGINE__MODE", "remote")
    monkeypatch.setenv("GATEWAY_ENGINE__URLS", '["http://127.0.0.1:9"]')
    settings = Settings()
    assert settings.server.port == 9123
    assert settings.engine.urls == ["http://127.0.0.1:9"]


def test_unknown_keys_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  prot: 80\n")
    monkeypatch.setenv("GATEWAY_CONFIG", str(bad))
    with pytest.raises(ValueError, match="prot"):
        Settings()


def test_remote_mode_needs_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_ENGINE__MODE", "remote")
    with pytest.raises(ValueError, match="engine.urls"):
        Settings()


def test_without_keys_the_gateway_stays_on_loopback() -> None:
    settings = Settings.model_validate({"server": {"host": "0.0.0.0"}})
    assert settings.bind_host() == "127.0.0.1"
    keyed = Settings.model_validate({"server": {"host": "0.0.0.0"},
                                     "auth": {"keys": [{"name": "a", "key": "s"}]}})
    assert keyed.bind_host() == "0.0.0.0"


def test_the_production_file_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_CONFIG", str(DEFAULT_CONFIG.parent / "production.yaml"))
    monkeypatch.setenv("GATEWAY_APP_KEY", "app-secret")
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", "admin-secret")
    settings = Settings()
    assert settings.engine.mode == "remote"
    assert settings.engine.model == "meta-llama/Llama-3.1-8B-Instruct"
    assert [k.secret() for k in settings.auth.keys] == ["app-secret", "admin-secret"]
    assert settings.bind_host() == "0.0.0.0"
