"""The client side of the REST API, as the CLI, the lab and the tests use it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx

from sdnvirt.model.problems import InputError, Problem

TIMEOUT = 10.0
VM_ACTION_TIMEOUT = 180.0  # a save writes the guest's memory to disk
APPLY_TIMEOUT = 60.0
CANCEL_TIMEOUT = 90.0  # the controller answers a cancel within a minute
EVENT_SILENCE = 20.0  # seconds; the event stream sends a keepalive every 5 s


class ApiError(RuntimeError):
    """The controller could not be reached, or refused the request."""

    def __init__(self, message: str, status: int | None = None, problems: list[dict] | None = None):
        super().__init__(message)
        self.status = status
        self.problems = problems or []  # where a refused input is wrong: Problem fields


class ApiClient:
    def __init__(self, socket_path: Path):
        self.socket_path = socket_path

    def _request(self, method: str, path: str, body: dict | None = None, timeout: float = TIMEOUT):
        return self._response(method, path, body, timeout).json()

    def _response(self, method: str, path: str, body: dict | None = None, timeout: float = TIMEOUT) -> httpx.Response:
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket_path)),
                              base_url="http://sdnvirt", timeout=timeout) as client:
                response = client.request(method, path, json=body)
        except httpx.HTTPError as error:
            raise ApiError(f"controller at {self.socket_path}: {error}") from None
        if response.status_code >= 400:
            raise ApiError(_detail(response), response.status_code, _problems(response))
        return response

    def events(self, kinds: list[str] | None = None, after: int | None = None) -> Iterator[dict]:
        """The controller's events as they come, each {"id", "kind", "data"}; ends (ApiError)
        when the controller goes away, or says nothing, not even its keepalive, for
        EVENT_SILENCE seconds."""
        params = [("kind", k) for k in kinds or []] + ([("after", str(after))] if after is not None else [])
        try:
            with httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket_path)), base_url="http://sdnvirt",
                              timeout=httpx.Timeout(TIMEOUT, read=EVENT_SILENCE)) as client, \
                    client.stream("GET", "/events", params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(_detail(response), response.status_code, _problems(response))
                event: dict = {}
                for line in response.iter_lines():
                    if not line:
                        if "kind" in event:
                            yield event
                        event = {}
                    elif line.startswith("id: "):
                        event["id"] = int(line[4:])
                    elif line.startswith("event: "):
                        event["kind"] = line[7:]
                    elif line.startswith("data: "):
                        event["data"] = json.loads(line[6:])
        except httpx.HTTPError as error:
            raise ApiError(f"controller at {self.socket_path}: event stream: {error}") from None

    def status(self) -> dict:
        return self._request("GET", "/status")

    def topology(self) -> dict:
        return self._request("GET", "/topology")

    def apply_topology(self, source: str, filename: str, dry_run: bool = False) -> dict:
        """What the file changes (and, without dry_run, the change applied); InputError for
        a file that is not valid or cannot be applied now, each problem placed in it."""
        try:
            return self._request("POST", "/topology", {"source": source, "filename": filename, "dry_run": dry_run},
                                 timeout=APPLY_TIMEOUT)
        except ApiError as error:
            if error.problems:
                raise InputError([Problem(**p) for p in error.problems]) from None
            raise

    def hosts(self) -> list[dict]:
        return self._request("GET", "/hosts")

    def networks(self) -> list[dict]:
        return self._request("GET", "/networks")

    def flows(self, host: str) -> list[dict]:
        return self._request("GET", f"/hosts/{host}/flows")

    def counters(self) -> dict:
        return self._request("GET", "/counters")

    def metrics(self) -> str:
        """The counters in Prometheus's exposition format."""
        return self._response("GET", "/metrics").text

    def vms(self) -> list[dict]:
        return self._request("GET", "/vms")

    def vm(self, name: str) -> dict:
        return self._request("GET", f"/vms/{name}")

    def vm_action(self, name: str, action: str) -> dict:
        return self._request("POST", f"/vms/{name}/{action}", timeout=VM_ACTION_TIMEOUT)

    def console(self, name: str, lines: int = 100) -> str:
        return self._request("GET", f"/vms/{name}/console?lines={lines}")["console"]

    def migrations(self) -> list[dict]:
        return self._request("GET", "/migrations")

    def migrate(self, vm: str, to: str, offline: bool = False, capture: bool = False) -> dict:
        return self._request("POST", "/migrations", {"vm": vm, "to": to, "offline": offline, "capture": capture})

    def migration(self, migration_id: int, wait: float = 0.0) -> dict:
        return self._request("GET", f"/migrations/{migration_id}?wait={wait}", timeout=wait + TIMEOUT)

    def migration_timeline(self, migration_id: int) -> dict:
        return self._request("GET", f"/migrations/{migration_id}/timeline")

    def cancel_migration(self, migration_id: int) -> dict:
        """Answered once the migration has ended: its report says whether it was cancelled."""
        return self._request("POST", f"/migrations/{migration_id}/cancel", timeout=CANCEL_TIMEOUT)

    def attach_probe(self, migration_id: int, figures: dict) -> dict:
        return self._request("POST", f"/migrations/{migration_id}/probe", figures)

    def exec(self, name: str, command: list[str], timeout: float = 30.0) -> tuple[int, bytes]:
        reply = self._request("POST", f"/vms/{name}/exec", {"command": command, "timeout": timeout},
                              timeout=timeout + 15)
        return reply["exit_status"], base64.b64decode(reply["output"])


def _problems(response: httpx.Response) -> list[dict]:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return []
    return detail.get("problems", []) if isinstance(detail, dict) else []


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        return response.text
    if isinstance(detail, dict) and "message" in detail:
        return detail["message"]
    return str(detail)
