"""Run one request through tollgate with the official OpenAI Python SDK and report it.

tests/sdk_clients.rs starts tollgate against a mock upstream and a fake Blnk, then runs this
script once per scenario. The script sends one request, checks what the SDK returned, and
prints one JSON line to stdout with what it observed. It exits with status 1 and a message on
stderr when an observation does not match.

Environment:
    TOLLGATE_BASE_URL   tollgate's base URL, ending in /v1
    TOLLGATE_CUSTOMER   customer id, sent in the X-Customer-Id header
    TOLLGATE_SCENARIO   one of the names in SCENARIOS
    TOLLGATE_EXPECT     optional JSON object of expected observations: "text", "embedding",
                        "usage" (compared as a subset of the SDK's usage object) and
                        "cost_usd" (the x-tollgate-cost-usd header)
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

import openai

CHAT_MODEL = "gpt-4o-mini"
COMPLETIONS_MODEL = "gpt-3.5-turbo-instruct"
EMBEDDING_MODEL = "text-embedding-3-small"
PROMPT = "Say hello."

# Response headers copied into the report. A header the response lacks is reported as null.
REPORTED_HEADERS = (
    "x-tollgate-request-id",
    "x-tollgate-cost-usd",
    "x-tollgate-charge",
    "x-should-retry",
    "content-type",
)


class CheckFailed(Exception):
    """A missing setting, or an observation that differs from what the scenario expects."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def required_env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise CheckFailed(f"the environment variable {name} is missing; tests/sdk_clients.rs sets it")
    return value


def load_expectations() -> dict[str, Any]:
    text = os.environ.get("TOLLGATE_EXPECT", "")
    if not text:
        return {}
    try:
        expected = json.loads(text)
    except json.JSONDecodeError as error:
        raise CheckFailed(f"TOLLGATE_EXPECT is not valid JSON: {error}") from error
    check(isinstance(expected, dict), "TOLLGATE_EXPECT must be a JSON object")
    return expected


def reported_headers(headers: Any) -> dict[str, str | None]:
    return {name: headers.get(name) for name in REPORTED_HEADERS}


def report(status: int, headers: Any, **observed: Any) -> dict[str, Any]:
    """Build the report of a successful call, checking the status and tollgate's request id."""
    check(status == 200, f"expected HTTP 200, got {status}")
    found = reported_headers(headers)
    check(bool(found["x-tollgate-request-id"]), "the response has no x-tollgate-request-id header")
    return {"status": status, "headers": found, **observed}


def usage_dict(usage: Any) -> dict[str, Any] | None:
    return None if usage is None else usage.to_dict(mode="json")


# Scenarios. Each sends one request and returns its report.


def chat(client: openai.OpenAI) -> dict[str, Any]:
    raw = client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": PROMPT}],
    )
    completion = raw.parse()
    check(len(completion.choices) == 1, f"expected 1 choice, got {len(completion.choices)}")
    text = completion.choices[0].message.content
    return report(raw.status_code, raw.headers, text=text, usage=usage_dict(completion.usage))


def read_chat_stream(stream: Any) -> dict[str, Any]:
    """Collect the text of a chat stream, counting chunks and those with no choices."""
    text: list[str] = []
    chunks = 0
    empty_choice_chunks = 0
    usage = None
    usage_chunk_index = None
    for chunk in stream:
        if not chunk.choices:
            empty_choice_chunks += 1
        if chunk.usage is not None:
            usage = usage_dict(chunk.usage)
            usage_chunk_index = chunks
        for choice in chunk.choices:
            if choice.delta.content:
                text.append(choice.delta.content)
        chunks += 1
    return {
        "text": "".join(text),
        "usage": usage,
        "chunks": chunks,
        "empty_choice_chunks": empty_choice_chunks,
        "usage_chunk_is_last": usage_chunk_index is not None and usage_chunk_index == chunks - 1,
    }


def chat_stream(client: openai.OpenAI) -> dict[str, Any]:
    raw = client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
    )
    observed = read_chat_stream(raw.parse())
    check(
        observed["empty_choice_chunks"] == 0,
        f"{observed['empty_choice_chunks']} chunk(s) with empty choices reached the SDK, "
        "but the request did not set stream_options.include_usage, so tollgate must remove the usage-only chunk",
    )
    check(observed["usage"] is None, f"a chunk carried usage, but the request did not set stream_options.include_usage: {observed['usage']}")
    return report(raw.status_code, raw.headers, **observed)


def chat_stream_usage(client: openai.OpenAI) -> dict[str, Any]:
    raw = client.chat.completions.with_raw_response.create(
        model=CHAT_MODEL,
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        stream_options={"include_usage": True},
    )
    observed = read_chat_stream(raw.parse())
    check(observed["usage"] is not None, "the stream ended without the usage chunk that stream_options.include_usage requests")
    check(
        observed["empty_choice_chunks"] == 1,
        f"expected exactly 1 usage-only chunk, got {observed['empty_choice_chunks']} chunks with empty choices",
    )
    check(observed["usage_chunk_is_last"], "the usage chunk was not the last chunk of the stream")
    return report(raw.status_code, raw.headers, **observed)


def responses(client: openai.OpenAI) -> dict[str, Any]:
    raw = client.responses.with_raw_response.create(model=CHAT_MODEL, input=PROMPT)
    response = raw.parse()
    return report(raw.status_code, raw.headers, text=response.output_text, usage=usage_dict(response.usage))


def responses_stream(client: openai.OpenAI) -> dict[str, Any]:
    raw = client.responses.with_raw_response.create(model=CHAT_MODEL, input=PROMPT, stream=True)
    text: list[str] = []
    event_types: list[str] = []
    usage = None
    for event in raw.parse():
        event_types.append(event.type)
        if event.type == "response.output_text.delta":
            text.append(event.delta)
        elif event.type == "response.completed":
            usage = usage_dict(event.response.usage)
    check(bool(event_types), "the stream ended without any event")
    check(
        event_types[-1] == "response.completed",
        f"the last event was {event_types[-1]!r}, expected the terminal 'response.completed'",
    )
    check(usage is not None, "the response.completed event carried no usage")
    return report(raw.status_code, raw.headers, text="".join(text), usage=usage, events=event_types)


def embeddings(client: openai.OpenAI) -> dict[str, Any]:
    # No encoding_format: the SDK requests base64 and decodes it to floats itself.
    raw = client.embeddings.with_raw_response.create(model=EMBEDDING_MODEL, input=PROMPT)
    result = raw.parse()
    check(len(result.data) == 1, f"expected 1 embedding, got {len(result.data)}")
    embedding = list(result.data[0].embedding)
    return report(raw.status_code, raw.headers, embedding=embedding, usage=usage_dict(result.usage))


def completions(client: openai.OpenAI) -> dict[str, Any]:
    raw = client.completions.with_raw_response.create(model=COMPLETIONS_MODEL, prompt=PROMPT)
    completion = raw.parse()
    check(len(completion.choices) == 1, f"expected 1 choice, got {len(completion.choices)}")
    text = completion.choices[0].text
    return report(raw.status_code, raw.headers, text=text, usage=usage_dict(completion.usage))


def completions_stream(client: openai.OpenAI) -> dict[str, Any]:
    raw = client.completions.with_raw_response.create(model=COMPLETIONS_MODEL, prompt=PROMPT, stream=True)
    text: list[str] = []
    chunks = 0
    empty_choice_chunks = 0
    usage = None
    for chunk in raw.parse():
        chunks += 1
        if not chunk.choices:
            empty_choice_chunks += 1
        if chunk.usage is not None:
            usage = usage_dict(chunk.usage)
        text.extend(choice.text for choice in chunk.choices)
    check(
        empty_choice_chunks == 0,
        f"{empty_choice_chunks} chunk(s) with empty choices reached the SDK, "
        "but the request did not set stream_options.include_usage, so tollgate must remove the usage-only chunk",
    )
    check(usage is None, f"a chunk carried usage, but the request did not set stream_options.include_usage: {usage}")
    observed = {"text": "".join(text), "usage": usage, "chunks": chunks, "empty_choice_chunks": empty_choice_chunks}
    return report(raw.status_code, raw.headers, **observed)


def insufficient_funds(client: openai.OpenAI) -> dict[str, Any]:
    try:
        client.chat.completions.create(
            model=CHAT_MODEL,
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=100,
        )
    except openai.APIStatusError as error:
        headers = reported_headers(error.response.headers)
        check(error.status_code == 402, f"expected HTTP 402, got {error.status_code}: {error.message}")
        check(error.code == "insufficient_funds", f"expected error code insufficient_funds, got {error.code!r}")
        check(error.type == "insufficient_quota", f"expected error type insufficient_quota, got {error.type!r}")
        check(headers["x-should-retry"] == "false", f"expected x-should-retry: false, got {headers['x-should-retry']!r}")
        error_body = {"type": error.type, "code": error.code, "message": error.message}
        return {"status": error.status_code, "headers": headers, "error": error_body}
    raise CheckFailed("the request succeeded, but the customer cannot pay for it, so tollgate must return 402")


SCENARIOS: dict[str, Callable[[openai.OpenAI], dict[str, Any]]] = {
    "chat": chat,
    "chat_stream": chat_stream,
    "chat_stream_usage": chat_stream_usage,
    "responses": responses,
    "responses_stream": responses_stream,
    "embeddings": embeddings,
    "completions": completions,
    "completions_stream": completions_stream,
    "insufficient_funds": insufficient_funds,
}


def is_subset(expected: Any, observed: Any) -> bool:
    """Return whether every key of `expected` is in `observed` with an equal value, at any depth."""
    if isinstance(expected, dict):
        if not isinstance(observed, dict):
            return False
        return all(key in observed and is_subset(value, observed[key]) for key, value in expected.items())
    return bool(expected == observed)


def compare(expected: dict[str, Any], observed: dict[str, Any]) -> None:
    for key in ("text", "embedding"):
        if key in expected:
            check(observed.get(key) == expected[key], f"expected {key} {expected[key]!r}, got {observed.get(key)!r}")
    if "usage" in expected:
        check(
            is_subset(expected["usage"], observed.get("usage")),
            f"expected usage containing {expected['usage']}, got {observed.get('usage')}",
        )
    if "cost_usd" in expected:
        cost = observed["headers"]["x-tollgate-cost-usd"]
        check(cost == expected["cost_usd"], f"expected x-tollgate-cost-usd {expected['cost_usd']!r}, got {cost!r}")


def main() -> int:
    try:
        base_url = required_env("TOLLGATE_BASE_URL")
        customer = required_env("TOLLGATE_CUSTOMER")
        scenario = required_env("TOLLGATE_SCENARIO")
        expected = load_expectations()
        run = SCENARIOS.get(scenario)
        check(run is not None, f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
        client = openai.OpenAI(
            base_url=base_url,
            api_key="sk-client-test",
            max_retries=0,
            timeout=30.0,
            default_headers={"X-Customer-Id": customer},
        )
        observed = run(client)
        compare(expected, observed)
    except CheckFailed as error:
        print(f"client_test.py: scenario {os.environ.get('TOLLGATE_SCENARIO')!r} failed: {error}", file=sys.stderr)
        return 1
    except openai.OpenAIError as error:
        print(f"client_test.py: the SDK raised {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    output = {"sdk": "python", "sdk_version": openai.__version__, "scenario": scenario, **observed}
    print(json.dumps(output, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
