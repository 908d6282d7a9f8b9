"""The served REST API checked against its own OpenAPI document, with schemathesis.

Every operation gets requests generated from the document, valid and invalid, sent
to a running lab's controller on its unix socket. No answer may be a server error,
every answer must be one the document lists, in the shape it gives, and invalid
requests must be refused. Names in this lab are ones generated text will not hit,
so no generated request can start, stop or move anything real.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from helpers.labs import build_lab

TOPOLOGY = """\
name: api
segments:
  seg-contract-1: {subnet: 100.64.1.0/24}
  seg-contract-2: {subnet: 100.64.2.0/24}
hosts:
  hv-contract-1: {segment: seg-contract-1}
  hv-contract-2: {segment: seg-contract-2}
tenants:
  ten-contract:
    networks:
      net-contract: {subnet: 10.0.0.0/24}
vms:
  vm-contract-1: {host: hv-contract-1, nics: [{network: ten-contract/net-contract}]}
  vm-contract-2: {host: hv-contract-2, nics: [{network: ten-contract/net-contract}]}
"""
EXAMPLES = 30  # generated requests per operation
# A topology file is a string to JSON schema; whether it is a valid topology, only the
# loader can say, with a 422 that places each problem in the file (checked by test_apply).
BEYOND_THE_SCHEMA = {"POST /topology": [positive_data_acceptance]}


class UnixSocketApp:
    """An ASGI app that forwards each request to the controller's API on its unix socket:
    schemathesis speaks ASGI or TCP, the lab's API listens on a unix socket only."""

    def __init__(self, socket_path):
        self._client = httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)),
                                    base_url="http://sdnvirt", timeout=30)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        query = scope.get("query_string", b"").decode()
        path = scope.get("raw_path", scope["path"].encode()).decode()  # as sent: %23 stays %23
        answer = self._client.request(scope["method"], path + (f"?{query}" if query else ""),
                                      headers=[(k.decode("latin-1"), v.decode("latin-1"))
                                               for k, v in scope["headers"] if k.lower() != b"host"],
                                      content=body)
        await send({"type": "http.response.start", "status": answer.status_code,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in answer.headers.multi_items()
                                if k.lower() not in ("transfer-encoding", "content-length")]})
        await send({"type": "http.response.body", "body": answer.content})

    def close(self) -> None:
        self._client.close()


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    path = tmp_path_factory.mktemp("contract") / "api.yaml"
    path.write_text(TOPOLOGY)
    for lab in build_lab(path):
        app = UnixSocketApp(lab.paths.api_socket)
        try:
            # /events never ends by design: it is checked on its own, in test_apply.
            yield schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path="/events")
        finally:
            app.close()


def answers_as_documented(operation, mode: GenerationMode) -> None:
    """Raises with schemathesis's report (and a curl line) for the first failure it finds."""
    excluded = BEYOND_THE_SCHEMA.get(operation.label, [])

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,  # CI sends what was checked
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(excluded_checks=excluded)

    run()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_every_answer_is_one_the_openapi_document_describes(api_schema, mode):
    """Valid requests must be served as documented; invalid ones refused with a documented 4xx."""
    failures = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        try:
            answers_as_documented(operation, mode)
        except Unsatisfiable:  # no parameter to get wrong (e.g. GET /hosts): nothing invalid to send
            assert mode == GenerationMode.NEGATIVE, operation.label
        except Exception as failure:  # every operation's failure, not only the first one
            failures[operation.label] = str(failure)
    report = "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    assert not failures, f"{sorted(failures)}\n\n{report}"
