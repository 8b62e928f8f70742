"""``modelport predict``: call a server's infer endpoint and print the outputs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer

from modelport.cli._files import existing_file
from modelport.cli.errors import EXIT_BY_STATUS
from modelport.core.errors import ConfigError, InvalidInput, ModelNotReady

if TYPE_CHECKING:
    import ssl

    import httpx

    from modelport.core.datatypes import Datatype
    from modelport.core.inference import InferenceRequest, InferenceResponse, Tensor

# numpy, httpx, ssl and the protocol codecs are imported when a prediction is sent, not to parse
# options.

__all__ = ["attach", "build_request"]


def _read_data(data: str) -> Any:
    text = data
    if data.startswith("@"):
        text = existing_file(data[1:], "--data @FILE").read_text(encoding="utf-8")
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"--data is not valid JSON: {exc}") from None


def _tensor(name: str, datatype: Datatype, values: Any) -> Tensor:
    import numpy as np

    from modelport.core.datatypes import Datatype, to_numpy_dtype
    from modelport.core.inference import Tensor

    try:
        if datatype is Datatype.BYTES:
            array = np.asarray(values, dtype=object)
            flat = [v.encode() if isinstance(v, str) else v for v in array.reshape(-1)]
            array = np.array(flat, dtype=object).reshape(array.shape)
        else:
            array = np.asarray(values, dtype=to_numpy_dtype(datatype))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"input {name!r}: cannot read the data as {datatype.value}: {exc}"
        ) from None
    return Tensor(name=name, datatype=datatype, shape=tuple(array.shape), data=array)


def build_request(payload: Any, metadata: dict[str, Any]) -> InferenceRequest:
    """Build an inference request from ``--data`` and the model's metadata.

    ``payload`` may be a nested list (the model's single input) or an object mapping input names
    to nested lists. (A full protocol request with ``inputs`` is sent as it is, not built here.)

    Raises:
        InvalidInput: The data does not fit the model's inputs.
    """
    from modelport.core.datatypes import parse_datatype
    from modelport.core.inference import InferenceRequest

    specs = {i["name"]: parse_datatype(i["datatype"]) for i in metadata.get("inputs", [])}
    if isinstance(payload, list):
        if len(specs) != 1:
            raise InvalidInput(
                f"a bare list fits a model with one input; this one has {', '.join(specs)}: "
                'give {"input-name": [...], ...}'
            )
        ((name, datatype),) = specs.items()
        return InferenceRequest(inputs=[_tensor(name, datatype, payload)])
    if not isinstance(payload, dict):
        raise InvalidInput("--data must be a JSON list, an object of inputs, or a protocol request")
    unknown = [n for n in payload if n not in specs]
    if unknown:
        raise InvalidInput(f"unknown input {unknown[0]!r}; the model expects {', '.join(specs)}")
    return InferenceRequest(inputs=[_tensor(n, specs[n], v) for n, v in payload.items()])


def _check(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    typer.echo(f"error: HTTP {response.status_code}: {message}", err=True)
    raise typer.Exit(EXIT_BY_STATUS.get(response.status_code, 1))


def _outputs(response: InferenceResponse) -> dict[str, Any]:
    import numpy as np

    from modelport.core.datatypes import Datatype

    out: dict[str, Any] = {}
    for t in response.outputs:
        data = t.data
        if t.datatype is Datatype.BYTES:
            data = np.vectorize(lambda b: b.decode("utf-8", "replace"), otypes=[object])(data)
        out[t.name] = data.tolist()
    return {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": out,
    }


def predict(
    model: Annotated[str, typer.Argument(help="Served model name.")],
    data: Annotated[str, typer.Option(help="JSON input, or @FILE holding it.")],
    url: Annotated[str, typer.Option(help="Server base URL.")] = "http://127.0.0.1:8080",
    version: Annotated[str | None, typer.Option(help="Served version.")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the server.")] = 30.0,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="MODELPORT_API_KEY",
            help="API key or token sent as 'Authorization: Bearer ...' [env: MODELPORT_API_KEY].",
            show_envvar=False,
        ),
    ] = None,
    ca: Annotated[
        Path | None, typer.Option(help="CA file (PEM) to verify an HTTPS server with.")
    ] = None,
    cert: Annotated[
        Path | None, typer.Option(help="Client certificate (PEM) for mutual TLS.")
    ] = None,
    key: Annotated[Path | None, typer.Option(help="Client certificate's private key.")] = None,
) -> None:
    """Send DATA to MODEL on a running server and print its outputs as JSON."""
    import httpx

    from modelport.protocol.rest import decode_infer_response, encode_infer_request

    path = f"/v2/models/{model}" + (f"/versions/{version}" if version else "")
    payload = _read_data(data)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        verify = _tls_context(ca, cert, key)
        with httpx.Client(
            base_url=url.rstrip("/"), timeout=timeout, headers=headers, verify=verify
        ) as client:
            meta = client.get(path)
            _check(meta)
            if isinstance(payload, dict) and "inputs" in payload:
                body = orjson.dumps(payload)  # already a protocol request: the server checks it
            else:
                request = build_request(payload, meta.json())
                body, _ = encode_infer_request(request)
            headers = {"Content-Type": "application/json"}
            reply = client.post(f"{path}/infer", content=body, headers=headers)
            _check(reply)
    except httpx.TransportError as exc:
        raise ModelNotReady(f"cannot reach the server at {url}: {exc}") from None
    length = reply.headers.get("inference-header-content-length")
    result = decode_infer_response(reply.content, int(length) if length else None)
    typer.echo(orjson.dumps(_outputs(result)).decode())


def _tls_context(ca: Path | None, cert: Path | None, key: Path | None) -> ssl.SSLContext | bool:
    import ssl

    if ca is None and cert is None:
        return True
    if (cert is None) != (key is None):
        raise ConfigError("--cert and --key go together (the client certificate and its key)")
    existing_file(ca, "--ca")
    existing_file(cert, "--cert")
    existing_file(key, "--key")
    try:
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        if cert is not None and key is not None:
            context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS files: {exc}") from None
    return context


def attach(app: typer.Typer) -> None:
    """Add ``predict`` to ``app``."""
    app.command("predict")(predict)
