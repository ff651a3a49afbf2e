"""The real LiteLLM proxy, started on 127.0.0.1 for tests, offline.

LiteLLM is a test fixture, never a dependency of oxi: ``scripts/install-litellm`` installs the
pinned version into its own virtual environment under ``.tools/`` (``./dev test`` runs it).

    with OpenAIServer([Text("hi")], models=("fake-model",)) as upstream, LiteLLMProxy(
        [proxy_model("fake-gpt", upstream, input_cost_per_token=2e-6)]
    ) as proxy:
        target = LiteLLMTarget(base_url=proxy.base_url, api_key=proxy.master_key)

Offline start needs the ``LITELLM_LOCAL_*`` switches (reference/agent-cli-protocols.md):
without them LiteLLM downloads its price list at import. Without a database there are no
virtual keys, only ``master_key``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from oxi_core.testing.model_server import LOCALHOST

LITELLM_VERSION = "1.106.2"  # keep in step with scripts/install-litellm
OFFLINE_ENV: Mapping[str, str] = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_LOCAL_BLOG_POSTS": "True",
    "LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS": "True",
    "LITELLM_LOCAL_POLICY_TEMPLATES": "True",
    "LITELLM_LOCAL_AUTOROUTER_PRESETS": "True",
    "LITELLM_TELEMETRY": "False",
    "LITELLM_LOG": "ERROR",
}
START_TIMEOUT_S = 180.0  # about 7 s alone; much longer on a loaded 2-core machine


class LiteLLMMissing(RuntimeError):
    """The pinned proxy is not installed: run scripts/install-litellm."""


def litellm_binary() -> Path:
    """``$OXI_LITELLM``, else ``.tools/litellm-<version>/bin/litellm`` in this checkout."""
    explicit = os.environ.get("OXI_LITELLM")
    if explicit:
        return Path(explicit)
    here = Path(__file__).resolve()
    for folder in here.parents:
        if (folder / "scripts" / "install-litellm").is_file():
            return folder / ".tools" / f"litellm-{LITELLM_VERSION}" / "bin" / "litellm"
    raise LiteLLMMissing("cannot find the checkout's scripts/install-litellm; set OXI_LITELLM")


def proxy_model(name: str, upstream: Any, *, upstream_model: str = "fake-model",
                provider: str = "openai", **prices: float) -> dict[str, Any]:
    """One ``model_list`` entry: ``name`` served by ``upstream`` (a scripted OpenAI server)."""
    params: dict[str, Any] = {"model": f"{provider}/{upstream_model}",
                              "api_base": upstream.api_base_url, "api_key": "dummy"}
    params.update(prices)
    return {"model_name": name, "litellm_params": params}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
        return port


class LiteLLMProxy:
    """``litellm --config ... --host 127.0.0.1 --port P`` in its own process group."""

    def __init__(self, model_list: Sequence[Mapping[str, Any]], *,
                 master_key: str = "sk-litellm-test", num_retries: int = 0) -> None:
        self.model_list = [dict(m) for m in model_list]
        self.master_key = master_key
        self.num_retries = num_retries
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def config_yaml(self) -> str:
        import json

        # JSON is YAML: no YAML writer needed for a generated file.
        return json.dumps({
            "model_list": self.model_list,
            "general_settings": {"master_key": self.master_key},
            "litellm_settings": {"telemetry": False, "num_retries": self.num_retries,
                                 "request_timeout": 30},
        }, indent=2)

    def start(self, timeout_s: float = START_TIMEOUT_S) -> Self:
        binary = litellm_binary()
        if not binary.is_file():
            raise LiteLLMMissing(f"{binary} is not installed; run scripts/install-litellm")
        self._dir = tempfile.TemporaryDirectory(prefix="oxi-litellm-")
        folder = Path(self._dir.name)
        config = folder / "config.yaml"
        config.write_text(self.config_yaml(), encoding="utf-8")
        self.port = free_port()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(folder),
               "LANG": "C.UTF-8", **OFFLINE_ENV}
        self._log = (folder / "litellm.log").open("wb")
        self.process = subprocess.Popen(
            [str(binary), "--config", str(config), "--host", LOCALHOST, "--port",
             str(self.port), "--num_workers", "1"],
            cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            self._wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        url = f"{self.base_url}/health/liveliness"
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"litellm exited {self.process.returncode} while starting:\n"
                                   f"{self.log_tail()}")
            try:
                if httpx.get(url, timeout=2.0, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"litellm not ready within {timeout_s:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        if self._dir is None:
            return ""
        path = Path(self._dir.name) / "litellm.log"
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, grace_s: float = 10.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=grace_s)
            except ProcessLookupError:
                pass
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
