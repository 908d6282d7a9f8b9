"""The client side of the REST API, as the CLI and the tests use it."""

from __future__ import annotations

from pathlib import Path

import httpx

TIMEOUT = 10.0


class ApiError(RuntimeError):
    """The controller could not be reached, or refused the request."""


class ApiClient:
    def __init__(self, socket_path: Path):
        self.socket_path = socket_path

    def _get(self, path: str):
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket_path)),
                              base_url="http://sdnvirt", timeout=TIMEOUT) as client:
                response = client.get(path)
        except httpx.HTTPError as error:
            raise ApiError(f"controller at {self.socket_path}: {error}") from None
        if response.status_code >= 400:
            raise ApiError(f"{path}: {response.status_code} {_detail(response)}")
        return response.json()

    def status(self) -> dict:
        return self._get("/status")

    def flows(self, host: str) -> list[dict]:
        return self._get(f"/hosts/{host}/flows")

    def counters(self) -> dict:
        return self._get("/counters")


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail", response.text))
    except ValueError:
        return response.text
