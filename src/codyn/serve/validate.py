"""Every field of a chat completion request checked before any backend is called.

A backend that gets a malformed request answers in its own way: llama.cpp's server, for one,
answers a wrong type with HTTP 500, which looks like an outage and would be retried on every
model. So the proxy checks the body against OpenAI's chat completion parameters first and
answers what does not fit with a 400 naming the parameter (``param``, as OpenAI does), and
hands backends a normalised body: optional parameters given as null are dropped, and content
made only of text parts becomes one string (many servers take only strings).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from codyn.errors import CodynError

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MAX_INT = 2**63 - 1
"""Integers beyond int64 fit no backend's request model."""
MAX_STOP = 4
TEXT_PARTS = {"text", "refusal"}
PART_TAGS = {"image_url": "vision", "input_audio": "audio", "file": "file"}
"""Content parts other than text, and the catalog tag a model needs to be sent them."""
_PARTS_BY_ROLE = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", *PART_TAGS),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
}
_MESSAGE_KEYS = {
    "role", "content", "name", "tool_calls", "tool_call_id", "function_call", "refusal",
    "audio", "annotations",
}  # fmt: skip


class InvalidRequest(CodynError):
    """A request that does not fit the chat completions API (HTTP 400); ``param`` names the
    field (``messages[0].role``), None for the body as a whole."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class ChatRequest:
    """A checked request: the body to send (normalised) and what the proxy reads from it."""

    body: dict[str, Any]
    extra: dict[str, Any] | None = None
    """The ``codyn`` object (tests for a verifying route), taken out of the body."""
    part_kinds: set[str] = field(default_factory=set)
    """Non-text content part types the messages carry (``image_url``, ...)."""

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def include_usage(self) -> bool:
        return bool((self.body.get("stream_options") or {}).get("include_usage"))


def _reject_constant(name: str) -> float:
    raise InvalidRequest(f"request body is not valid JSON: {name} is not a JSON number")


def parse_json(raw: bytes) -> Any:
    """The body as JSON; NaN and Infinity (which Python's parser accepts) are refused, and so
    are numbers too long to convert and nesting too deep to parse."""
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON ({exc})") from None
    except ValueError as exc:  # an integer of more than 4300 digits
        raise InvalidRequest(f"request body is not valid JSON ({exc})") from None
    except RecursionError:
        raise InvalidRequest("request body is not valid JSON (nested too deeply)") from None


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Parse and check a ``/v1/chat/completions`` body; `InvalidRequest` on the first fault."""
    request = parse_json(raw)
    if not isinstance(request, dict):
        raise InvalidRequest("request body must be a JSON object")
    body: dict[str, Any] = {}
    for name, value in request.items():
        if name not in PARAMETERS:
            raise InvalidRequest(f"unrecognized request argument supplied: {name}", name)
        if value is None:
            if name in ("model", "messages"):
                raise InvalidRequest(f"`{name}` must not be null", name)
            continue
        body[name] = value
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest(
            "`model` is required: a route, codyn/<route>:<knob> or a model", "model"
        )
    kinds: set[str] = set()
    body["messages"] = _messages(body.get("messages"), kinds)
    for name, check in PARAMETERS.items():
        if name in body and check is not None:
            check(body[name], name)
    if "stream_options" in body and not body.get("stream"):
        raise InvalidRequest(
            "`stream_options` is only allowed when `stream` is true", "stream_options"
        )
    if "top_logprobs" in body and not body.get("logprobs"):
        raise InvalidRequest("`top_logprobs` needs `logprobs: true`", "top_logprobs")
    extra = body.pop("codyn", None)
    return ChatRequest(body, extra, kinds)


# -- messages ----------------------------------------------------------------------------------


def _messages(messages: Any, kinds: set[str]) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty list", "messages")
    return [_message(message, f"messages[{i}]", kinds) for i, message in enumerate(messages)]


def _message(message: Any, where: str, kinds: set[str]) -> dict[str, Any]:
    if not isinstance(message, dict):
        raise InvalidRequest(f"every message must be an object with a `role` ({where})", where)
    role = message.get("role")
    if role not in ROLES:
        raise InvalidRequest(
            f"{where}.role must be one of {', '.join(ROLES)}, got {_shown(role)}", f"{where}.role"
        )
    unknown = sorted(set(message) - _MESSAGE_KEYS)
    if unknown:
        raise InvalidRequest(f"{where}: unrecognized field {unknown[0]!r}", f"{where}.{unknown[0]}")
    out = {key: value for key, value in message.items() if value is not None}
    for key in ("name", "tool_call_id", "refusal"):
        if key in out:
            _string(out[key], f"{where}.{key}")
    calls = out.get("tool_calls")
    if calls is not None:
        if role != "assistant":
            raise InvalidRequest(f"{where}: only assistant messages carry `tool_calls`", where)
        _tool_calls(calls, f"{where}.tool_calls")
    if "function_call" in out:
        _function(out["function_call"], f"{where}.function_call", arguments=True)
    content = out.get("content")
    if content is None:
        if role == "assistant" and ("tool_calls" in out or "function_call" in out):
            return out
        raise InvalidRequest(
            f"{where}.content must be a string or a list of parts", f"{where}.content"
        )
    if role == "tool" and "tool_call_id" not in out:
        raise InvalidRequest(
            f"{where}: a tool message needs `tool_call_id`", f"{where}.tool_call_id"
        )
    if role == "function" and "name" not in out:
        raise InvalidRequest(f"{where}: a function message needs `name`", f"{where}.name")
    if isinstance(content, str):
        return out
    allowed = _PARTS_BY_ROLE.get(role, ())
    if not isinstance(content, list) or not content or not allowed:
        raise InvalidRequest(
            f"{where}.content must be a string"
            + (" or a non-empty list of content parts" if allowed else ""),
            f"{where}.content",
        )
    used = {_part(part, f"{where}.content[{i}]", allowed) for i, part in enumerate(content)}
    if used <= TEXT_PARTS:  # text only: one string, which every backend takes
        out["content"] = "\n".join(part[part["type"]] for part in content)
    else:
        kinds.update(used - TEXT_PARTS)
    return out


def _part(part: Any, where: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise InvalidRequest(f"{where} must be an object with a `type`", where)
    kind = part["type"]
    if kind not in allowed:
        raise InvalidRequest(
            f"{where}.type {kind!r} is not allowed here ({', '.join(allowed)})", f"{where}.type"
        )
    payload = part.get(kind)
    if kind in ("text", "refusal"):
        _string(payload, f"{where}.{kind}")
    elif kind == "image_url":
        if not isinstance(payload, dict):
            raise InvalidRequest(f"{where}.image_url must be an object with `url`", where)
        _string(payload.get("url"), f"{where}.image_url.url")
        _one_of(payload.get("detail", "auto"), f"{where}.image_url.detail", ("auto", "low", "high"))
    elif not isinstance(payload, dict):
        raise InvalidRequest(f"{where}.{kind} must be an object", f"{where}.{kind}")
    return kind


def _tool_calls(calls: Any, where: str) -> None:
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where} must be a list", where)
    for i, call in enumerate(calls):
        here = f"{where}[{i}]"
        if not isinstance(call, dict):
            raise InvalidRequest(f"{here} must be an object", here)
        _string(call.get("id"), f"{here}.id")
        _one_of(call.get("type"), f"{here}.type", ("function",))
        _function(call.get("function"), f"{here}.function", arguments=True)


def _function(value: Any, where: str, *, arguments: bool) -> None:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object with `name`", where)
    _string(value.get("name"), f"{where}.name")
    if arguments:
        _string(value.get("arguments"), f"{where}.arguments")


# -- parameters -----------------------------------------------------------------------------


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _string(value: Any, where: str) -> None:
    if not isinstance(value, str):
        raise InvalidRequest(f"{where} must be a string, got {_shown(value)}", where)


def _one_of(value: Any, where: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        shown = ", ".join(allowed)
        raise InvalidRequest(f"{where} must be one of {shown}, got {_shown(value)}", where)


def _boolean(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{where} must be true or false, got {_shown(value)}", where)


def _object(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where} must be an object, got {_shown(value)}", where)


def _number(low: float, high: float) -> Callable[[Any, str], None]:
    def check(value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidRequest(f"{where} must be a number, got {_shown(value)}", where)
        if not (math.isfinite(value) and low <= value <= high):
            raise InvalidRequest(f"{where} must be in [{low:g}, {high:g}], got {value:g}", where)

    return check


def _integer(low: int, high: int) -> Callable[[Any, str], None]:
    def check(value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(f"{where} must be an integer, got {_shown(value)}", where)
        if not low <= value <= high:
            raise InvalidRequest(f"{where} must be in [{low}, {high}], got {_shown(value)}", where)

    return check


def _stop(value: Any, where: str) -> None:
    if isinstance(value, str):
        return
    if not (isinstance(value, list) and len(value) <= MAX_STOP) or not all(
        isinstance(s, str) for s in value
    ):
        raise InvalidRequest(f"{where} must be a string or a list of at most {MAX_STOP}", where)


def _stream_options(value: Any, where: str) -> None:
    _object(value, where)
    unknown = sorted(set(value) - {"include_usage", "include_obfuscation"})
    if unknown:
        raise InvalidRequest(f"{where}: unrecognized field {unknown[0]!r}", f"{where}.{unknown[0]}")
    for key, flag in value.items():
        _boolean(flag, f"{where}.{key}")


def _logit_bias(value: Any, where: str) -> None:
    _object(value, where)
    bias = _number(-100, 100)
    for token, weight in value.items():
        if not token.isdigit():
            raise InvalidRequest(f"{where}: keys are token ids, got {_shown(token)}", where)
        bias(weight, f"{where}.{token}")


def _response_format(value: Any, where: str) -> None:
    _object(value, where)
    _one_of(value.get("type"), f"{where}.type", ("text", "json_object", "json_schema"))
    if value["type"] == "json_schema":
        schema = value.get("json_schema")
        _object(schema, f"{where}.json_schema")
        _string(schema.get("name"), f"{where}.json_schema.name")


def _tools(value: Any, where: str) -> None:
    if not isinstance(value, list):
        raise InvalidRequest(f"{where} must be a list", where)
    for i, tool in enumerate(value):
        here = f"{where}[{i}]"
        _object(tool, here)
        _one_of(tool.get("type"), f"{here}.type", ("function",))
        _function(tool.get("function"), f"{here}.function", arguments=False)
        parameters = tool["function"].get("parameters")
        if parameters is not None:
            _object(parameters, f"{here}.function.parameters")


def _tool_choice(value: Any, where: str) -> None:
    if isinstance(value, str):
        _one_of(value, where, ("none", "auto", "required"))
        return
    _object(value, where)
    _one_of(value.get("type"), f"{where}.type", ("function",))
    _function(value.get("function"), f"{where}.function", arguments=False)


def _functions(value: Any, where: str) -> None:
    if not isinstance(value, list):
        raise InvalidRequest(f"{where} must be a list", where)
    for i, function in enumerate(value):
        _function(function, f"{where}[{i}]", arguments=False)


def _function_call(value: Any, where: str) -> None:
    if isinstance(value, str):
        _one_of(value, where, ("none", "auto"))
    else:
        _function(value, where, arguments=False)


def _strings(value: Any, where: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidRequest(f"{where} must be a list of strings", where)


def _metadata(value: Any, where: str) -> None:
    _object(value, where)
    for key, item in value.items():
        _string(item, f"{where}.{key}")


def _codyn(value: Any, where: str) -> None:
    _object(value, where)
    unknown = sorted(set(value) - {"tests"})
    if unknown:
        raise InvalidRequest(f"{where}: unrecognized field {unknown[0]!r}", f"{where}.{unknown[0]}")
    if value.get("tests") is not None:
        _strings(value["tests"], f"{where}.tests")


PARAMETERS: dict[str, Callable[[Any, str], None] | None] = {
    "model": None,
    "messages": None,
    "frequency_penalty": _number(-2, 2),
    "presence_penalty": _number(-2, 2),
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "max_tokens": _integer(1, MAX_INT),
    "max_completion_tokens": _integer(1, MAX_INT),
    "n": _integer(1, 128),
    "seed": _integer(-(2**63), MAX_INT),
    "top_logprobs": _integer(0, 20),
    "logprobs": _boolean,
    "stream": _boolean,
    "parallel_tool_calls": _boolean,
    "store": _boolean,
    "stream_options": _stream_options,
    "stop": _stop,
    "logit_bias": _logit_bias,
    "response_format": _response_format,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "functions": _functions,
    "function_call": _function_call,
    "user": _string,
    "metadata": _metadata,
    "service_tier": _string,
    "reasoning_effort": _string,
    "modalities": _strings,
    "audio": _object,
    "prediction": _object,
    "web_search_options": _object,
    "codyn": _codyn,
}
"""OpenAI's chat completion parameters (plus ``codyn``) and the check of each."""
