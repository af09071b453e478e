"""Starts and supervises one local vLLM OpenAI server on a loopback port.

The server runs in its own session (process group), so stopping it reaches vLLM's engine-core
and worker processes too. On Linux it also receives SIGTERM when the process that started it
dies, so a gateway killed abruptly does not leave an engine holding memory and a port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.errors import EngineUnavailable

logger = logging.getLogger(__name__)

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
# The structured-output backend the engine is pinned to.
GRAMMAR_BACKEND = "xgrammar"
# What the engine inherits from the gateway's environment, and nothing else: the gateway's
# own variables (API keys among them) never reach it.
INHERITED_ENV = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TMPDIR", "TERM",
    "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "LD_LIBRARY_PATH", "LD_PRELOAD",
    "XDG_CACHE_HOME", "HF_HOME", "HF_HUB_CACHE", "TRANSFORMERS_CACHE", "TRITON_CACHE_DIR",
    "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
    "CUDA_HOME", "CUDA_PATH", "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES", "NCCL_DEBUG",
})
# Prefixes of the engine's own settings (vLLM, torch) that pass too.
INHERITED_PREFIXES = ("LC_", "VLLM_", "TORCH", "CUDA_", "KMP_", "OMP_")
# Never inherited, even under an allowed prefix: the gateway sets the engine's key itself.
ENGINE_KEY_ENV = "VLLM_API_KEY"
_PR_SET_PDEATHSIG = 1
_LOG_TAIL_BYTES = 4000


class EngineStartFailed(EngineUnavailable):
    """The local engine exited or never became healthy while starting."""

    default_code = "engine_start_failed"


@dataclass(frozen=True)
class VllmServerSpec:
    """How to run the local vLLM server; built from the engine settings."""

    model: str
    served_model_name: str
    host: str = "127.0.0.1"
    port: int = 0
    python: str | None = None
    max_lora_rank: int = 16
    max_loras: int = 8
    max_cpu_loras: int | None = None
    max_model_len: int = 2048
    # vLLM reads VLLM_CPU_KVCACHE_SPACE with int(): whole GiB only.
    kv_cache_gib: int = 2
    # Tool calling: a chat template file and vLLM's tool-call parser (both optional).
    chat_template: Path | None = None
    tool_call_parser: str | None = None
    extra_args: tuple[str, ...] = ()
    extra_env: Mapping[str, str] = field(default_factory=dict)
    # The key the engine requires on its /v1 routes; only the gateway knows it.
    api_key: str | None = field(default=None, repr=False)
    log_file: Path = Path("var/vllm.log")
    stop_grace_s: float = 20.0
    # Replaces `python -m vllm.entrypoints.openai.api_server`, e.g. for a wrapper script.
    launcher: tuple[str, ...] | None = None

    def command(self, port: int) -> list[str]:
        """The server's command line; always `python -m`, as the `vllm` script fails on CPU."""
        launcher = self.launcher or (self.python or sys.executable, "-m", VLLM_MODULE)
        args = [
            *launcher,
            "--model", self.model,
            "--served-model-name", self.served_model_name,
            "--host", self.host,
            "--port", str(port),
            "--enable-lora",
            "--max-lora-rank", str(self.max_lora_rank),
            "--max-loras", str(self.max_loras),
            "--max-model-len", str(self.max_model_len),
            # One grammar backend, the one the compile check runs (gateway.grammar): under
            # "auto", a schema xgrammar refuses would fall back per request to a backend that
            # builds its masks while decoding, which no compile check can bound.
            f"--structured-outputs-config.backend={GRAMMAR_BACKEND}",
        ]  # fmt: skip
        if self.max_cpu_loras is not None:
            args += ["--max-cpu-loras", str(self.max_cpu_loras)]
        if self.chat_template is not None:
            args += ["--chat-template", str(self.chat_template)]
        if self.tool_call_parser is not None:
            args += ["--enable-auto-tool-choice", "--tool-call-parser", self.tool_call_parser]
        return [*args, *self.extra_args]

    def environment(self) -> dict[str, str]:
        """The server's environment: an allow-list of ours, plus runtime LoRA loading, no
        hub access and the engine's API key."""
        inherited = {k: v for k, v in os.environ.items() if _inherited(k)}
        key = {ENGINE_KEY_ENV: self.api_key} if self.api_key else {}
        return {
            **inherited,
            **key,
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",
            "VLLM_CPU_KVCACHE_SPACE": str(self.kv_cache_gib),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            **self.extra_env,
        }


def _inherited(name: str) -> bool:
    if name == ENGINE_KEY_ENV:
        return False
    return name in INHERITED_ENV or name.startswith(INHERITED_PREFIXES)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the server binds it a moment later)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class VllmSupervisor:
    """Owns one vLLM server process: start, wait until healthy, stop without orphans."""

    def __init__(self, spec: VllmServerSpec, *, poll_interval_s: float = 0.5) -> None:
        self._spec = spec
        self._port = spec.port or free_port(spec.host)
        self._poll_interval_s = poll_interval_s
        self._process: asyncio.subprocess.Process | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self._spec.host}:{self._port}"

    @property
    def log_file(self) -> Path:
        return self._spec.log_file

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    async def start(self) -> None:
        """Launches the server; returns at once (see :meth:`wait_ready`)."""
        if self.running:
            raise RuntimeError("the engine is already running; stop() it first")
        command = self._spec.command(self._port)
        log_file = self._spec.log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            log.write(f"\n==> starting: {' '.join(command)}\n".encode())
            log.flush()
            self._process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env=self._spec.environment(),
                start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid()),
            )
        logger.info(
            "engine started: pid=%d url=%s log=%s", self._process.pid, self.base_url, log_file
        )

    async def wait_ready(self, timeout: float) -> None:
        """Polls GET /health until it answers 200; fails fast if the process exits."""
        process = self._require_process()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        # trust_env=False: a proxy from the environment must not sit between us and loopback.
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while process.returncode is None:
                if await self._healthy(client):
                    logger.info("engine ready at %s", self.base_url)
                    return
                if loop.time() >= deadline:
                    raise EngineStartFailed(self._failure(f"not healthy after {timeout:.0f} s"))
                await asyncio.sleep(self._poll_interval_s)
        raise EngineStartFailed(self._failure(f"exited with status {process.returncode}"))

    async def stop(self) -> int | None:
        """SIGTERM to the whole process group, SIGKILL after the grace period; the exit status."""
        process = self._process
        if process is None:
            return None
        if process.returncode is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self._spec.stop_grace_s)
            except TimeoutError:
                logger.warning(
                    "engine ignored SIGTERM for %.0f s; killing it", self._spec.stop_grace_s
                )
        # Also reaches children that outlived their parent, or the ones it left after SIGTERM.
        _signal_group(process.pid, signal.SIGKILL)
        status = await process.wait()
        logger.info("engine stopped: pid=%d status=%d", process.pid, status)
        return status

    async def wait_exit(self) -> int:
        """Waits until the server process exits; its exit status."""
        return await self._require_process().wait()

    async def healthy(self) -> bool:
        """One health check (2 s at most)."""
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            return await self._healthy(client)

    async def _healthy(self, client: httpx.AsyncClient) -> bool:
        try:
            response = await client.get(f"{self.base_url}/health")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _require_process(self) -> asyncio.subprocess.Process:
        if self._process is None:
            raise RuntimeError("the engine was never started; call start() first")
        return self._process

    def _failure(self, what: str) -> str:
        return (
            f"the local vLLM engine {what}; the end of its log {self.log_file} follows. "
            f"Fix the cause or set the engine mode to remote.\n{self.log_tail()}"
        )

    def log_tail(self, size: int = _LOG_TAIL_BYTES) -> str:
        """The last ``size`` bytes of the server's log."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - size))
                return log.read().decode(errors="replace")
        except OSError as error:
            return f"(log unreadable: {error})"


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when its parent dies."""
    if not sys.platform.startswith("linux"):
        return None

    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        # The parent may have died between fork and prctl; then nobody would signal us.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return hook
