"""The REST protocol's transport wrapper: one write per response, nothing held that must go."""

from __future__ import annotations

from modelport.server.rest.http_protocol import _OneSendTransport

HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


class _Recorder:
    """Stands in for the event loop's transport: records writes and closes."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_head_and_body_leave_in_one_write() -> None:
    inner = _Recorder()
    transport = _OneSendTransport(inner)  # type: ignore[arg-type]
    transport.write(HEAD)
    assert inner.writes == []
    transport.write(b"{}")
    assert inner.writes == [HEAD + b"{}"]
    transport.flush()  # the response completes: nothing more to send
    assert inner.writes == [HEAD + b"{}"]


def test_a_head_without_body_goes_out_when_the_response_completes() -> None:
    inner = _Recorder()
    transport = _OneSendTransport(inner)  # type: ignore[arg-type]
    transport.write(HEAD)
    transport.flush()
    assert inner.writes == [HEAD]


def test_interim_heads_and_one_piece_answers_are_written_at_once() -> None:
    inner = _Recorder()
    transport = _OneSendTransport(inner)  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    error = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 3\r\n\r\nbad"
    transport.write(error)
    transport.write(b"chunk")
    assert inner.writes == [b"HTTP/1.1 100 Continue\r\n\r\n", error, b"chunk"]


def test_close_sends_a_held_head_unless_the_connection_is_gone() -> None:
    inner = _Recorder()
    transport = _OneSendTransport(inner)  # type: ignore[arg-type]
    transport.write(HEAD)
    transport.close()
    assert inner.writes == [HEAD] and inner.closed
    gone = _Recorder()
    gone.closed = True
    transport = _OneSendTransport(gone)  # type: ignore[arg-type]
    transport.write(HEAD)
    transport.close()
    assert gone.writes == []


def test_everything_else_reaches_the_real_transport() -> None:
    transport = _OneSendTransport(_Recorder())  # type: ignore[arg-type]
    assert transport.get_extra_info("peername") == "info:peername"
    assert transport.is_closing() is False


def test_uvicorn_versions_outside_the_known_range_are_refused() -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from modelport.server.rest.http_protocol import UVICORN_PROBLEM, uvicorn_problem

    assert UVICORN_PROBLEM is None  # the installed uvicorn is one this protocol extends
    assert uvicorn_problem("0.47.0", HttpToolsProtocol) is None
    assert "0.46.0 is not between 0.47 and 1.0" in str(uvicorn_problem("0.46.0", HttpToolsProtocol))
    assert "1.0.0" in str(uvicorn_problem("1.0.0", HttpToolsProtocol))
    partial = type("Partial", (HttpToolsProtocol,), {"on_headers_complete": None})
    assert str(uvicorn_problem("0.55.0", partial)).endswith(
        "HttpToolsProtocol lacks on_headers_complete"
    )


def test_a_problem_falls_back_to_uvicorns_stock_protocol(caplog: object) -> None:
    import logging

    import pytest

    from modelport.server.rest.http_protocol import HttpLimits, HttpProtocol, http_protocol

    assert isinstance(caplog, pytest.LogCaptureFixture)
    limits = HttpLimits(1024, 1.0, 2.0)
    bound = http_protocol(limits, None, problem=None)
    assert isinstance(bound, type) and issubclass(bound, HttpProtocol)
    assert bound.limits is limits
    with caplog.at_level(logging.WARNING, logger="modelport.server"):
        assert http_protocol(limits, None, problem="uvicorn 9.0 is not between") == "httptools"
    assert "uvicorn 9.0 is not between" in caplog.text and "stock httptools" in caplog.text
