"""One quick question to the Docker Engine without the SDK: does this image exist, and with
which labels?

``luzia dispatch`` asks it of every agent job. Importing the Docker SDK (requests, urllib3)
costs ~70 ms and making a client another round trip; a plain HTTP GET on the engine's Unix
socket answers in a few milliseconds. Only for an engine on a Unix socket (``DOCKER_HOST``
unset or ``unix://``); for any other (TCP, TLS, SSH) the SDK answers, as everywhere else.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import urllib.parse

from controllers.errors import DockerUnavailable

DEFAULT_SOCKET = "/var/run/docker.sock"
TIMEOUT = 5.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=TIMEOUT)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        sock.connect(self._path)
        self.sock = sock


def engine_socket() -> str | None:
    """The engine's Unix socket, or None when ``DOCKER_HOST`` names another kind of endpoint."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    return None


def image_labels(tag: str) -> dict[str, str] | None:
    """``tag``'s labels ({} when it has none), None when there is no such image;
    ``DockerUnavailable`` when the engine does not answer."""
    path = engine_socket()
    if path is None:
        from controllers.image import image_labels as sdk_labels

        return sdk_labels(tag)
    connection = _UnixConnection(path)
    try:
        connection.request("GET", f"/images/{urllib.parse.quote(tag, safe='')}/json")
        reply = connection.getresponse()
        body = reply.read()
    except OSError as exc:
        raise DockerUnavailable(f"cannot reach the Docker Engine at {path}: {exc}") from exc
    finally:
        connection.close()
    if reply.status == 404:
        return None
    if reply.status != 200:
        raise DockerUnavailable(f"the Docker Engine answered {reply.status} for image {tag}")
    info = json.loads(body)
    return dict((info.get("Config") or {}).get("Labels") or {})
