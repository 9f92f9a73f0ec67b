"""aioresponses for unit tests of request building and error mapping.

aioresponses 0.7.9 (the newest) predates aiohttp 3.14, whose ClientResponse requires a
`stream_writer`; this subclass supplies one, so the three vendors' client tests share
one workaround instead of three.
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aioresponses import aioresponses

from exporter.http import FORM_CONTENT_TYPE

# Older aiohttp (before 3.14) has no such parameter, and aioresponses works as it is.
_NEEDS_WRITER = "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters


class _CompatResponse(aiohttp.ClientResponse):
    def __init__(self, method: str, url: Any, **kwargs: Any) -> None:
        if _NEEDS_WRITER:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class mocked(aioresponses):  # noqa: N801 - named like the aioresponses it stands for
    def __enter__(self) -> mocked:
        super().__enter__()
        return self

    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("response_class", _CompatResponse)
        super().add(*args, **kwargs)


def form_sent(call: Any) -> dict[str, str]:
    """The form fields of a request aioresponses recorded (`Upstream` sends a form as
    urlencoded bytes, with its Content-Type)."""
    assert call.kwargs["headers"]["Content-Type"] == FORM_CONTENT_TYPE
    return dict(
        parse_qsl(call.kwargs["data"].decode("ascii"), keep_blank_values=True, strict_parsing=True)
    )
