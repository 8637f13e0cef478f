from __future__ import annotations

import socket

import pytest


@pytest.fixture(autouse=True)
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never touch the network."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise RuntimeError("unit tests may not open network connections")

    monkeypatch.setattr(socket.socket, "connect", refuse)
