"""Supervising the local engine process: start, readiness, stop, crashes, orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.engine.model_prep import PROJECT_ROOT, default_model_dir, prepare_model
from gateway.engine.supervisor import EngineStartFailed, VllmServerSpec, VllmSupervisor

pytestmark = pytest.mark.anyio

# Accepts vLLM's command line, answers GET /health (and /argv with what it was given).
# FAKE_MODE=crash exits at once; FAKE_MODE=stubborn ignores SIGTERM; FAKE_DELAY delays
# listening; FAKE_CHILD_PIDFILE makes it start a child that ignores SIGTERM, like a worker.
FAKE_VLLM = r"""
import http.server, json, os, signal, subprocess, sys, time
args = sys.argv[1:]
print("fake engine starting", flush=True)
mode = os.environ.get("FAKE_MODE", "serve")
if mode == "crash":
    print("boom: cannot load model", flush=True)
    sys.exit(3)
if mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.environ.get("FAKE_CHILD_PIDFILE"):
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    child = subprocess.Popen([sys.executable, "-c", code])
    open(os.environ["FAKE_CHILD_PIDFILE"], "w").write(str(child.pid))
time.sleep(float(os.environ.get("FAKE_DELAY", "0")))
seen = {"argv": args, "env": dict(os.environ)}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(seen).encode() if self.path == "/argv" else b""
        self.send_response(200 if self.path in ("/health", "/argv") else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
http.server.HTTPServer((host, port), Handler).serve_forever()
"""

SpecFactory = Callable[..., VllmServerSpec]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_spec(tmp_path: Path) -> SpecFactory:
    def build(grace: float = 5.0, **env: str) -> VllmServerSpec:
        return VllmServerSpec(
            model="/models/base",
            served_model_name="base",
            launcher=(sys.executable, "-c", FAKE_VLLM),
            extra_env=env,
            log_file=tmp_path / "logs" / "engine.log",
            stop_grace_s=grace,
        )

    return build


@pytest.fixture
async def supervisors() -> AsyncIterator[list[VllmSupervisor]]:
    """Collects supervisors and stops them all, whatever the test did."""
    started: list[VllmSupervisor] = []
    yield started
    for supervisor in started:
        await supervisor.stop()


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # a zombie has exited; only its reaper is missing


def _wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    # Killed processes take a moment to exit, especially on a busy machine.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def _wait_gone(pid: int) -> bool:
    return _wait_until(lambda: _gone(pid))


def test_command_line_runs_the_module_with_lora_enabled() -> None:
    spec = VllmServerSpec(
        model="/m",
        served_model_name="smol",
        python="/venv/bin/python",
        max_lora_rank=32,
        max_loras=3,
        max_cpu_loras=6,
        max_model_len=1024,
        extra_args=("--dtype", "bfloat16"),
    )
    assert spec.command(8123) == [
        "/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server",
        "--model", "/m", "--served-model-name", "smol",
        "--host", "127.0.0.1", "--port", "8123",
        "--enable-lora", "--max-lora-rank", "32", "--max-loras", "3",
        "--max-model-len", "1024", "--structured-outputs-config.backend=xgrammar",
        "--max-cpu-loras", "6",
        "--dtype", "bfloat16",
    ]  # fmt: skip


def test_environment_allows_runtime_lora_and_stays_offline() -> None:
    env = VllmServerSpec(model="/m", served_model_name="s", kv_cache_gib=3).environment()
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "3"
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["PATH"] == os.environ["PATH"]


def test_environment_is_an_allow_list_and_carries_the_engine_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GATEWAY_ADMIN_KEY", "admin-secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "cloud-secret")
    monkeypatch.setenv("VLLM_API_KEY", "inherited")
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "all")
    env = VllmServerSpec(model="/m", served_model_name="s", api_key="fresh").environment()
    assert "GATEWAY_ADMIN_KEY" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["VLLM_API_KEY"] == "fresh"
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "all"
    keyless = VllmServerSpec(model="/m", served_model_name="s").environment()
    assert "VLLM_API_KEY" not in keyless
    assert "fresh" not in repr(VllmServerSpec(model="/m", served_model_name="s",
                                              api_key="fresh"))


async def test_starts_on_a_free_port_and_becomes_ready(
    fake_spec: SpecFactory, supervisors: list[VllmSupervisor]
) -> None:
    supervisor = VllmSupervisor(fake_spec(FAKE_DELAY="0.5"), poll_interval_s=0.05)
    supervisors.append(supervisor)
    await supervisor.start()
    await supervisor.wait_ready(timeout=20)
    assert supervisor.running
    async with httpx.AsyncClient(base_url=supervisor.base_url) as client:
        seen: dict[str, Any] = (await client.get("/argv")).json()
    port = supervisor.base_url.rsplit(":", 1)[1]
    assert seen["argv"][:4] == ["--model", "/models/base", "--served-model-name", "base"]
    assert seen["argv"][seen["argv"].index("--port") + 1] == port != "0"
    assert seen["env"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert seen["env"]["HF_HUB_OFFLINE"] == "1"
    assert seen["env"]["FAKE_DELAY"] == "0.5"


async def test_stop_terminates_and_reports_the_signal(
    fake_spec: SpecFactory, supervisors: list[VllmSupervisor]
) -> None:
    supervisor = VllmSupervisor(fake_spec(), poll_interval_s=0.05)
    supervisors.append(supervisor)
    await supervisor.start()
    await supervisor.wait_ready(timeout=20)
    assert await supervisor.stop() == -signal.SIGTERM
    assert not supervisor.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{supervisor.base_url}/health", trust_env=False)


async def test_crash_fails_fast_with_the_log_tail(
    fake_spec: SpecFactory, supervisors: list[VllmSupervisor]
) -> None:
    supervisor = VllmSupervisor(fake_spec(FAKE_MODE="crash"), poll_interval_s=0.05)
    supervisors.append(supervisor)
    await supervisor.start()
    started = time.monotonic()
    with pytest.raises(EngineStartFailed, match="exited with status 3") as failure:
        await supervisor.wait_ready(timeout=60)
    assert time.monotonic() - started < 10
    assert "boom: cannot load model" in failure.value.message
    assert not supervisor.running


async def test_times_out_when_never_healthy(
    fake_spec: SpecFactory, supervisors: list[VllmSupervisor]
) -> None:
    supervisor = VllmSupervisor(fake_spec(FAKE_DELAY="60"), poll_interval_s=0.05)
    supervisors.append(supervisor)
    await supervisor.start()
    with pytest.raises(EngineStartFailed, match="not healthy after 1 s"):
        await supervisor.wait_ready(timeout=1)
    assert supervisor.running


async def test_kills_a_server_that_ignores_sigterm(
    fake_spec: SpecFactory, supervisors: list[VllmSupervisor]
) -> None:
    supervisor = VllmSupervisor(fake_spec(grace=1.0, FAKE_MODE="stubborn"), poll_interval_s=0.05)
    supervisors.append(supervisor)
    await supervisor.start()
    await supervisor.wait_ready(timeout=20)
    started = time.monotonic()
    assert await supervisor.stop() == -signal.SIGKILL
    assert 1.0 <= time.monotonic() - started < 5


async def test_stop_leaves_no_child_behind(
    fake_spec: SpecFactory, supervisors: list[VllmSupervisor], tmp_path: Path
) -> None:
    pidfile = tmp_path / "child.pid"
    supervisor = VllmSupervisor(fake_spec(FAKE_CHILD_PIDFILE=str(pidfile)), poll_interval_s=0.05)
    supervisors.append(supervisor)
    await supervisor.start()
    await supervisor.wait_ready(timeout=20)
    child = int(pidfile.read_text())
    assert not _gone(child)
    await supervisor.stop()
    assert _wait_gone(child)


async def test_output_goes_to_the_log_file_only(
    fake_spec: SpecFactory, supervisors: list[VllmSupervisor], capfd: pytest.CaptureFixture[str]
) -> None:
    spec = fake_spec(FAKE_MODE="crash")
    supervisor = VllmSupervisor(spec, poll_interval_s=0.05)
    supervisors.append(supervisor)
    await supervisor.start()
    with pytest.raises(EngineStartFailed):
        await supervisor.wait_ready(timeout=20)
    log = spec.log_file.read_text()
    assert "==> starting: " in log
    assert "fake engine starting" in log
    assert "fake engine starting" not in capfd.readouterr().out


async def test_refuses_misuse(fake_spec: SpecFactory, supervisors: list[VllmSupervisor]) -> None:
    supervisor = VllmSupervisor(fake_spec(), poll_interval_s=0.05)
    supervisors.append(supervisor)
    assert await supervisor.stop() is None
    with pytest.raises(RuntimeError, match="never started"):
        await supervisor.wait_ready(timeout=1)
    await supervisor.start()
    with pytest.raises(RuntimeError, match="already running"):
        await supervisor.start()


# Starts a supervised fake engine, prints its pid, then waits to be killed.
_GATEWAY = """
import asyncio, sys
from pathlib import Path
from gateway.engine.supervisor import VllmServerSpec, VllmSupervisor
async def main():
    spec = VllmServerSpec(model="m", served_model_name="s", log_file=Path(sys.argv[2]),
                          launcher=(sys.executable, "-c", sys.argv[1]))
    supervisor = VllmSupervisor(spec)
    await supervisor.start()
    await supervisor.wait_ready(timeout=20)
    print(supervisor.pid, flush=True)
    await asyncio.sleep(600)
asyncio.run(main())
"""


def test_engine_dies_with_a_killed_gateway(tmp_path: Path) -> None:
    command = [sys.executable, "-c", _GATEWAY, FAKE_VLLM, str(tmp_path / "engine.log")]
    with subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True) as gateway:
        try:
            assert gateway.stdout is not None
            engine = int(gateway.stdout.readline())
            assert not _gone(engine)
        finally:
            gateway.kill()
    assert _wait_gone(engine)


@pytest.mark.integration
async def test_real_vllm_serves_the_converted_model(
    tmp_path: Path, supervisors: list[VllmSupervisor]
) -> None:
    model = prepare_model(default_model_dir())
    spec = VllmServerSpec(
        model=str(model), served_model_name="smol", log_file=tmp_path / "vllm.log"
    )
    supervisor = VllmSupervisor(spec)
    supervisors.append(supervisor)
    await supervisor.start()
    await supervisor.wait_ready(timeout=600)
    async with httpx.AsyncClient(base_url=supervisor.base_url, trust_env=False) as client:
        assert (await client.get("/health")).status_code == 200
        models = (await client.get("/v1/models")).json()
    assert [(entry["id"], entry["max_model_len"]) for entry in models["data"]] == [("smol", 2048)]
    group = supervisor.pid
    assert group is not None
    await supervisor.stop()
    assert _wait_until(lambda: _group_members(group) == [])


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members
