"""A Jupyter server for the browser tests (JupyterLab, or nbgrader's formgrader in a plain
server): a free port on 127.0.0.1, a random token, its own config and runtime folders."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def jupyter_server(app: str, root: Path, env: dict[str, str], log_path: Path,
                   extra: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(base URL, token) of `jupyter APP` (lab, server) serving ROOT until the block ends."""
    port, token = _free_port(), secrets.token_hex(16)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "jupyter"), app, "--no-browser", f"--port={port}",
             "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
             *extra] + (["--allow-root"] if os.geteuid() == 0 else []),  # CI runs as root
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"jupyter {app} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        try:
            yield base, token
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
