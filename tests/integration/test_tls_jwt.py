"""TLS, mutual TLS and OIDC tokens through real server processes (REST and gRPC).

Certificates come from ``modelport.security.certs.make_dev_certs`` (what ``modelport certs dev``
writes); tokens are signed in the test with keys whose public halves the server reads from a JWKS
file, as it would from an identity provider.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tritonclient.utils import InferenceServerException

from modelport.core.settings import Settings
from modelport.security.certs import DevCerts, make_dev_certs
from modelport.security.identity import parse_grants
from modelport.service.wiring import open_security_store
from modelport.testing import ServerProcess

BODY = {
    "inputs": [
        {"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [[5.1, 3.5, 1.4, 0.2]]}
    ]
}
ISSUER = "https://idp.example.test/realms/ml"
AUDIENCE = "modelport"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> DevCerts:
    return make_dev_certs(tmp_path_factory.mktemp("certs"))


def client_context(certs: DevCerts, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if with_cert:
        context.load_cert_chain(certs.client, certs.client_key)
    return context


# --- TLS ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_server(model_home: Path, certs: DevCerts) -> Iterator[ServerProcess]:
    args = [
        "iris@1",
        "--workers",
        "1",
        "--tls-cert",
        str(certs.server),
        "--tls-key",
        str(certs.server_key),
    ]
    env = {"MODELPORT_HOME": str(model_home)}
    with ServerProcess(args, env=env, auth=True, verify=str(certs.ca)) as process:
        yield process


@pytest.fixture(scope="module")
def api_key(model_home: Path) -> str:
    with open_security_store(Settings(home=model_home)) as store:
        _, token = store.create_key("tls", parse_grants(["predictor:iris"]), None, "tests")
    return token


def test_tls_serves_https_to_a_client_that_trusts_the_ca(
    tls_server: ServerProcess, certs: DevCerts, api_key: str
) -> None:
    assert tls_server.url.startswith("https://")
    url = f"{tls_server.url}/v2/models/iris/infer"
    auth = {"Authorization": f"Bearer {api_key}"}
    reply = httpx.post(url, json=BODY, headers=auth, verify=client_context(certs))
    assert reply.status_code == 200, reply.text
    # Over TLS the credential rules are the same.
    for headers in ({}, {"Authorization": "Bearer mpk_000000000000_" + "A" * 43}):
        reply = httpx.post(url, json=BODY, headers=headers, verify=client_context(certs))
        assert reply.status_code == 401


def test_tls_refuses_plain_http_and_untrusted_clients(tls_server: ServerProcess) -> None:
    plain = tls_server.url.replace("https://", "http://")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{plain}/v2/health/live", timeout=5)
    with pytest.raises(httpx.ConnectError):  # the system store does not know the dev CA
        httpx.get(f"{tls_server.url}/v2/health/live", timeout=5)


def test_tls_refuses_versions_older_than_1_2(tls_server: ServerProcess, certs: DevCerts) -> None:
    def context(maximum: ssl.TLSVersion) -> ssl.SSLContext:
        made = client_context(certs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            made.minimum_version = ssl.TLSVersion.TLSv1
            made.maximum_version = maximum
        made.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
        return made

    # Control: the same client, allowed TLS 1.2, gets through.
    url = f"{tls_server.url}/v2/health/live"
    assert httpx.get(url, verify=context(ssl.TLSVersion.TLSv1_2), timeout=5).status_code == 200
    with pytest.raises(httpx.ConnectError) as caught:
        httpx.get(url, verify=context(ssl.TLSVersion.TLSv1_1), timeout=5)
    message = str(caught.value).upper()
    if "NO_PROTOCOLS_AVAILABLE" in message or "NO PROTOCOLS AVAILABLE" in message:
        pytest.skip("this OpenSSL build cannot offer TLS 1.1 even at security level 0")


def test_grpc_over_tls(tls_server: ServerProcess, certs: DevCerts) -> None:
    client = grpcclient.InferenceServerClient(
        tls_server.grpc_address, ssl=True, root_certificates=str(certs.ca)
    )
    try:
        assert client.is_server_live()
        with pytest.raises(InferenceServerException) as caught:
            client.get_model_metadata("iris")
        assert "UNAUTHENTICATED" in str(caught.value.status())
    finally:
        client.close()
    plaintext = grpcclient.InferenceServerClient(tls_server.grpc_address)
    try:
        with pytest.raises(InferenceServerException):
            plaintext.is_server_live(client_timeout=5)
    finally:
        plaintext.close()


# --- mutual TLS -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtls_server(model_home: Path, certs: DevCerts) -> Iterator[ServerProcess]:
    args = [
        "iris@1",
        "--workers",
        "1",
        "--tls-cert",
        str(certs.server),
        "--tls-key",
        str(certs.server_key),
        "--tls-ca",
        str(certs.ca),
    ]
    identities = {certs.client_subject: ["predictor:iris"]}
    env = {
        "MODELPORT_HOME": str(model_home),
        "MODELPORT_SECURITY__AUTH__MTLS_IDENTITIES": json.dumps(identities),
    }
    # The readiness probe itself needs a client certificate now.
    context = client_context(certs, with_cert=True)
    with ServerProcess(args, env=env, auth=True, verify=context) as process:
        yield process


@pytest.fixture(scope="module")
def mtls_url(mtls_server: ServerProcess) -> str:
    return mtls_server.url


def test_a_client_certificate_authenticates_its_subject(mtls_url: str, certs: DevCerts) -> None:
    context = client_context(certs, with_cert=True)
    reply = httpx.post(f"{mtls_url}/v2/models/iris/infer", json=BODY, verify=context)
    assert reply.status_code == 200, reply.text
    # Its grants come from the mapping: predictor on iris only.
    reply = httpx.post(f"{mtls_url}/v2/repository/models/iris/load", json={}, verify=context)
    assert reply.status_code == 403
    assert "cert:" in reply.json()["error"]


def test_mutual_tls_refuses_a_client_without_a_certificate(mtls_url: str, certs: DevCerts) -> None:
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{mtls_url}/v2/health/live", verify=client_context(certs), timeout=5)


def test_grpc_mutual_tls(mtls_server: ServerProcess, certs: DevCerts) -> None:
    client = grpcclient.InferenceServerClient(
        mtls_server.grpc_address,
        ssl=True,
        root_certificates=str(certs.ca),
        private_key=str(certs.client_key),
        certificate_chain=str(certs.client),
    )
    try:
        data = np.array([[5.1, 3.5, 1.4, 0.2]])
        tensor = grpcclient.InferInput("input", [1, 4], "FP64")
        tensor.set_data_from_numpy(data)
        assert client.infer("iris", [tensor]).as_numpy("predict_proba").shape == (1, 3)
        with pytest.raises(InferenceServerException) as caught:
            client.load_model("iris")
        assert "PERMISSION_DENIED" in str(caught.value.status())
    finally:
        client.close()


# --- OIDC tokens ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwt_server(
    model_home: Path, signing_key: rsa.RSAPrivateKey, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    jwks = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256", "use": "sig"}]}))
    env = {
        "MODELPORT_HOME": str(model_home),
        "MODELPORT_SECURITY__AUTH__OIDC__ISSUER": ISSUER,
        "MODELPORT_SECURITY__AUTH__OIDC__AUDIENCE": AUDIENCE,
        "MODELPORT_SECURITY__AUTH__OIDC__JWKS_FILE": str(jwks),
        "MODELPORT_SECURITY__AUTH__OIDC__ROLES_CLAIM": "realm_access.roles",
    }
    with ServerProcess(["iris@1", "--workers", "1"], env=env, auth=True) as process:
        yield process


def token(key: rsa.RSAPrivateKey, kid: str = "k1", **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice",
        "iat": now,
        "exp": now + 300,
        "realm_access": {"roles": ["predictor:iris", "offline_access"]},
        **overrides,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def call(server: ServerProcess, bearer: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"}
    return httpx.post(f"{server.url}/v2/models/iris/infer", json=BODY, headers=headers)


def test_a_valid_token_grants_its_roles(
    jwt_server: ServerProcess, signing_key: rsa.RSAPrivateKey
) -> None:
    assert call(jwt_server, token(signing_key)).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "https://evil.example.test"}, "issuer"),
        ({"nbf": int(time.time()) + 3600}, ""),
    ],
)
def test_tokens_failing_a_claim_check_are_refused(
    jwt_server: ServerProcess,
    signing_key: rsa.RSAPrivateKey,
    overrides: dict[str, Any],
    fragment: str,
) -> None:
    reply = call(jwt_server, token(signing_key, **overrides))
    assert reply.status_code == 401
    assert fragment in reply.json()["error"]


def test_forged_tokens_are_refused(
    jwt_server: ServerProcess, signing_key: rsa.RSAPrivateKey
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert call(jwt_server, token(other)).status_code == 401  # signed by someone else
    unsigned = jwt.encode(
        {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 60},
        None,
        algorithm="none",
    )
    assert call(jwt_server, unsigned).status_code == 401
    assert call(jwt_server, token(signing_key, kid="unknown")).status_code == 401
    # Algorithm confusion: HS256 keyed with the server's own public key (PEM), which an
    # attacker knows. PyJWT refuses to make such a token, so it is assembled by hand.
    public_pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 60}
    claims["realm_access"] = {"roles": ["admin"]}
    header = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    signing_input = b".".join(
        base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=")
        for part in (header, claims)
    )
    mac = hmac.new(public_pem, signing_input, hashlib.sha256).digest()
    confused = signing_input + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")
    reply = call(jwt_server, confused.decode())
    assert reply.status_code == 401
    assert "HS256" in reply.json()["error"]


def test_grpc_accepts_a_token_in_metadata(
    jwt_server: ServerProcess, signing_key: rsa.RSAPrivateKey
) -> None:
    client = grpcclient.InferenceServerClient(jwt_server.grpc_address)
    try:
        metadata = client.get_model_metadata(
            "iris", headers={"authorization": f"Bearer {token(signing_key)}"}
        )
        assert metadata.name == "iris"
        with pytest.raises(InferenceServerException) as caught:
            client.get_model_metadata("iris")
        assert "UNAUTHENTICATED" in str(caught.value.status())
    finally:
        client.close()
