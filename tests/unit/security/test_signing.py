"""Signed manifests: DSSE + in-toto layout, canonical JSON, and verification that fails closed."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelport.core.errors import ConfigError, IntegrityError
from modelport.security.signing import (
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    Manifest,
    Resource,
    canonical_json,
    key_id,
    load_or_create_signing_key,
    load_public_key,
    pae,
    public_key_pem,
    sign_manifest,
    trusted_keys,
    verify_manifest,
)

MODEL = Resource("registered/model.joblib", hashlib.sha256(b"model").hexdigest(), 5)
ONNX = Resource("serving/model.onnx", hashlib.sha256(b"onnx").hexdigest(), 4)
MANIFEST = Manifest("fraud", 3, "eu", "alice", (ONNX, MODEL))


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def envelope_doc(raw: bytes) -> dict[str, object]:
    doc: dict[str, object] = json.loads(raw)
    return doc


def payload_of(raw: bytes) -> dict[str, object]:
    doc = envelope_doc(raw)
    statement: dict[str, object] = json.loads(base64.b64decode(str(doc["payload"])))
    return statement


def reencode(doc: dict[str, object]) -> bytes:
    return json.dumps(doc).encode()


def test_sign_and_verify_round_trip(key: Ed25519PrivateKey) -> None:
    signed = verify_manifest(sign_manifest(MANIFEST, key), trusted_keys([key.public_key()]))
    assert signed.key_id == key_id(key.public_key())
    assert signed.manifest.model == "fraud" and signed.manifest.version == 3
    assert signed.manifest.jurisdiction == "eu" and signed.manifest.signer == "alice"
    assert set(signed.manifest.resources) == {MODEL, ONNX}
    assert signed.manifest.resource_for(f"sha256:{MODEL.digest}") == MODEL
    assert signed.manifest.resource_for("sha256:" + "0" * 64) is None


def test_layout_follows_model_signing(key: Ed25519PrivateKey) -> None:
    raw = sign_manifest(MANIFEST, key)
    doc = envelope_doc(raw)
    assert doc["payloadType"] == PAYLOAD_TYPE
    signatures = doc["signatures"]
    assert isinstance(signatures, list) and signatures[0]["keyid"].startswith("ed25519:")
    statement = payload_of(raw)
    assert statement["_type"] == STATEMENT_TYPE
    assert statement["predicateType"] == PREDICATE_TYPE
    subject = statement["subject"]
    assert isinstance(subject, list) and subject[0]["name"] == "fraud@3"
    expected = hashlib.sha256(bytes.fromhex(MODEL.digest) + bytes.fromhex(ONNX.digest))
    assert subject[0]["digest"] == {"sha256": expected.hexdigest()}
    predicate = statement["predicate"]
    assert isinstance(predicate, dict)
    assert [r["name"] for r in predicate["resources"]] == [MODEL.name, ONNX.name]
    assert predicate["modelport"] == {
        "model": "fraud",
        "version": 3,
        "jurisdiction": "eu",
        "signer": "alice",
    }
    payload = base64.b64decode(str(doc["payload"]))
    assert payload == canonical_json(statement), "the payload is canonical JSON"


def test_canonical_json_and_pae() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})
    assert pae("t", b"body") == b"DSSEv1 1 t 4 body"


def test_signing_is_deterministic(key: Ed25519PrivateKey) -> None:
    reordered = Manifest("fraud", 3, "eu", "alice", (MODEL, ONNX))
    assert sign_manifest(MANIFEST, key) == sign_manifest(reordered, key)


def test_tampered_manifest_fails(key: Ed25519PrivateKey) -> None:
    raw = sign_manifest(MANIFEST, key)
    statement = payload_of(raw)
    predicate = statement["predicate"]
    assert isinstance(predicate, dict)
    predicate["resources"][0]["digest"] = "0" * 64  # point the manifest at other bytes
    doc = envelope_doc(raw)
    doc["payload"] = base64.b64encode(canonical_json(statement)).decode()
    with pytest.raises(IntegrityError, match="does not verify: the manifest was altered"):
        verify_manifest(reencode(doc), trusted_keys([key.public_key()]))


def test_tampered_signature_fails(key: Ed25519PrivateKey) -> None:
    doc = envelope_doc(sign_manifest(MANIFEST, key))
    signatures = doc["signatures"]
    assert isinstance(signatures, list)
    sig = bytearray(base64.b64decode(signatures[0]["sig"]))
    sig[0] ^= 1
    signatures[0]["sig"] = base64.b64encode(bytes(sig)).decode()
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_manifest(reencode(doc), trusted_keys([key.public_key()]))


def test_a_file_that_does_not_match_its_entry_is_caught_by_digest(key: Ed25519PrivateKey) -> None:
    # A tampered file keeps a valid signature but no longer matches the signed digest.
    signed = verify_manifest(sign_manifest(MANIFEST, key), trusted_keys([key.public_key()]))
    tampered = "sha256:" + hashlib.sha256(b"modeL").hexdigest()
    assert signed.manifest.resource_for(tampered) is None


def test_wrong_key_with_a_forged_key_id_fails(key: Ed25519PrivateKey) -> None:
    forger = Ed25519PrivateKey.generate()
    doc = envelope_doc(sign_manifest(MANIFEST, forger))
    signatures = doc["signatures"]
    assert isinstance(signatures, list)
    signatures[0]["keyid"] = key_id(key.public_key())  # claims to be the trusted key
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_manifest(reencode(doc), trusted_keys([key.public_key()]))


def test_untrusted_signer_fails(key: Ed25519PrivateKey) -> None:
    stranger = Ed25519PrivateKey.generate()
    raw = sign_manifest(MANIFEST, stranger)
    with pytest.raises(IntegrityError, match="not a trusted signer"):
        verify_manifest(raw, trusted_keys([key.public_key()]))
    with pytest.raises(IntegrityError, match="not a trusted signer"):
        verify_manifest(raw, {})
    # Trusting the stranger's public key is what makes it verify.
    trusted = trusted_keys([key.public_key(), stranger.public_key()])
    assert verify_manifest(raw, trusted).key_id == key_id(stranger.public_key())


def test_missing_signature_fails(key: Ed25519PrivateKey) -> None:
    doc = envelope_doc(sign_manifest(MANIFEST, key))
    doc["signatures"] = []
    with pytest.raises(IntegrityError, match="carries no signature"):
        verify_manifest(reencode(doc), trusted_keys([key.public_key()]))
    del doc["signatures"]
    with pytest.raises(IntegrityError, match="carries no signature"):
        verify_manifest(reencode(doc), trusted_keys([key.public_key()]))


def test_a_signature_without_key_id_is_tried_against_trusted_keys(key: Ed25519PrivateKey) -> None:
    doc = envelope_doc(sign_manifest(MANIFEST, key))
    signatures = doc["signatures"]
    assert isinstance(signatures, list)
    del signatures[0]["keyid"]
    signed = verify_manifest(reencode(doc), trusted_keys([key.public_key()]))
    assert signed.key_id == key_id(key.public_key())


@pytest.mark.parametrize(
    "raw",
    [b"", b"[]", b"{}", b'{"payloadType": "x", "payload": "!!"}'],
)
def test_malformed_envelopes(raw: bytes, key: Ed25519PrivateKey) -> None:
    with pytest.raises(IntegrityError, match="malformed"):
        verify_manifest(raw, trusted_keys([key.public_key()]))


def test_wrong_payload_type_and_inconsistent_subject(key: Ed25519PrivateKey) -> None:
    doc = envelope_doc(sign_manifest(MANIFEST, key))
    doc["payloadType"] = "text/plain"
    with pytest.raises(IntegrityError, match="payload type"):
        verify_manifest(reencode(doc), trusted_keys([key.public_key()]))
    # A validly signed statement whose subject does not match its resources is refused too.
    statement = payload_of(sign_manifest(MANIFEST, key))
    subject = statement["subject"]
    assert isinstance(subject, list)
    subject[0]["digest"]["sha256"] = "0" * 64
    payload = canonical_json(statement)
    forged: dict[str, object] = {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode(),
        "signatures": [
            {
                "keyid": key_id(key.public_key()),
                "sig": base64.b64encode(key.sign(pae(PAYLOAD_TYPE, payload))).decode(),
            }
        ],
    }
    with pytest.raises(IntegrityError, match="subject digest"):
        verify_manifest(reencode(forged), trusted_keys([key.public_key()]))


def test_duplicate_resource_names_are_refused(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="unique"):
        sign_manifest(Manifest("m", 1, "global", "a", (MODEL, MODEL)), key)


def test_signing_key_is_created_private_with_its_public_half(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"
    key = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public = tmp_path / "keys" / "signing.pub.pem"
    assert public.read_bytes() == public_key_pem(key.public_key())
    again = load_or_create_signing_key(path)
    assert key_id(again.public_key()) == key_id(key.public_key())
    assert key_id(load_public_key(public)) == key_id(key.public_key())
    assert key_id(load_public_key(path)) == key_id(key.public_key()), "private file: its half"


def test_bad_key_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_public_key(tmp_path / "absent.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    with pytest.raises(ConfigError, match="not an unencrypted PEM key"):
        load_public_key(junk)
    with pytest.raises(ConfigError, match="not an unencrypted PEM key"):
        load_or_create_signing_key(junk)
