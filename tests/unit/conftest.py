"""Unit tests: no root, no ports, no servers, no subprocesses, any machine, seconds.

The rule is held, not hoped for: a unit test that opens a socket or starts a process
fails here with the reason (such a test belongs in tests/integration/).
"""

from __future__ import annotations

import socket
import subprocess
from typing import NoReturn

import pytest


def _refuse(what: str) -> NoReturn:
    raise AssertionError(f"a unit test may not {what}: move it to tests/integration/")


@pytest.fixture(autouse=True)
def _no_network_no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "bind", lambda *_: _refuse("bind a socket"))
    monkeypatch.setattr(socket.socket, "connect", lambda *_: _refuse("connect a socket"))
    monkeypatch.setattr(
        subprocess.Popen, "__init__", lambda *_, **__: _refuse("start a process")
    )
