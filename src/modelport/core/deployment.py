"""The Deployment resource: a public model name in front of weighted, sticky and shadow variants.

A deployment is declared in YAML (or the same document as JSON) and applied with
``modelport apply -f FILE``::

    apiVersion: modelport.io/v1
    kind: Deployment
    metadata:
      name: fraud
    spec:
      variants:
        - name: current
          model: fraud@3
          weight: 90
          role: control
        - name: candidate
          model: fraud@candidate
          weight: 10
          role: treatment
        - name: next
          model: fraud@5
          role: shadow
          mirror: 25
      traffic:
        stickyKey:
          header: X-User-Id
      replicas:
        urls: [http://10.0.0.5:8080, http://10.0.0.6:8080]
      cache:
        enabled: true
        ttlSeconds: 60
      features:
        entities:
          - joinKey: user_id
            input: user_id
          - joinKey: merchant_id
            parameter: merchant_id
        features: [user_stats:spend_7d, user_stats:orders_7d]
        onMissing: default
        defaults: {spend_7d: 0.0, orders_7d: 0}

Field names are camelCase in documents (Kubernetes style) and snake_case in Python. Every
document is validated in full before anything is applied; :func:`parse_deployment` turns
pydantic's errors into one :class:`~modelport.core.errors.InvalidInput` whose message names each
bad field by its path in the document (``spec.variants[1].weight``) and what was expected.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from modelport.core.refs import ModelRef, validate_model_name
from modelport.core.resources import API_VERSION, Metadata, Spec, checked, parse_resource

__all__ = [
    "API_VERSION",
    "CacheSpec",
    "Deployment",
    "DeploymentSpec",
    "EntityKeySpec",
    "FeaturesSpec",
    "Metadata",
    "PredictionLogSpec",
    "ReplicaSpec",
    "StickyKey",
    "TrafficSpec",
    "VariantSpec",
    "parse_deployment",
]

_WEIGHT_TOTAL = 100.0
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class VariantSpec(Spec):
    """One version behind the deployment's public name."""

    name: str
    """The variant's name within the deployment (``control``, ``candidate``...): what the
    ``x-modelport-variant`` header says and what metrics and the prediction log are labelled
    with."""

    model: str
    """The registered version it serves: ``NAME@VERSION`` (pinned) or ``NAME@ALIAS`` (follows the
    alias)."""

    weight: float = Field(default=0.0, ge=0.0, le=_WEIGHT_TOTAL)
    """Percent of the deployment's traffic (control and treatment variants; the weights of
    those add up to 100). A variant at weight 0 gets no traffic."""

    role: Literal["control", "treatment", "shadow"] = "control"
    """``control`` and ``treatment`` answer callers; a ``shadow`` gets copies of requests off the
    caller's path, and its answers are only logged."""

    mirror: float = Field(default=0.0, ge=0.0, le=_WEIGHT_TOTAL)
    """For a shadow: percent of requests copied to it."""

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        return checked(validate_model_name, name)

    @field_validator("model")
    @classmethod
    def _model(cls, model: str) -> str:
        ref = checked(ModelRef.parse, model)
        if ref.version is None and ref.alias is None:
            raise ValueError(f"expected NAME@VERSION or NAME@ALIAS, got {model!r}")
        return model

    @model_validator(mode="after")
    def _role_fields(self) -> VariantSpec:
        if self.role == "shadow" and self.weight:
            raise ValueError("a shadow variant answers no caller: give it mirror, not weight")
        if self.role != "shadow" and self.mirror:
            raise ValueError("mirror is for shadow variants; give a control or treatment a weight")
        return self

    @property
    def ref(self) -> ModelRef:
        """The model reference the variant serves."""
        return ModelRef.parse(self.model)


class StickyKey(Spec):
    """Where a request's unit key is read from: a header or a request parameter (one of them)."""

    header: str | None = None
    """Header holding the unit key (``X-User-Id``); matched case-insensitively."""

    parameter: str | None = None
    """Inference request parameter holding the unit key (``"parameters": {"user_id": ...}``)."""

    @model_validator(mode="after")
    def _one_source(self) -> StickyKey:
        if (self.header is None) == (self.parameter is None):
            raise ValueError("give exactly one of header or parameter")
        if self.header is not None and not _is_token(self.header):
            raise ValueError(f"{self.header!r} is not an HTTP header name")
        return self


class TrafficSpec(Spec):
    """How requests are spread over the variants."""

    sticky_key: StickyKey | None = None
    """Where the unit key is read: requests with the same key always get the same variant
    (across requests, gateway replicas and restarts). Without one, or for a request that
    carries no key, the variant is drawn at random by weight."""

    salt: str | None = Field(default=None, min_length=1, max_length=128)
    """Mixed into the hash of the unit key; a new salt reshuffles which units get which
    variant. Default: the deployment's name."""


class ReplicaSpec(Spec):
    """The model servers (``modelport serve``) that host the variants behind a gateway."""

    urls: list[str] = Field(default_factory=list)
    """Base URLs of the replicas (``http://10.0.0.5:8080``)."""

    dns: str | None = None
    """``HOST:PORT`` whose name resolves to every replica's address, as a Kubernetes headless
    Service gives; looked up again as it changes."""

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"expected http:// or https:// and a host, got {url!r}")
            if parts.path not in ("", "/") or parts.query or parts.fragment:
                raise ValueError(f"expected a base URL without a path or query, got {url!r}")
        if len(set(urls)) != len(urls):
            raise ValueError("a replica URL is listed twice")
        return urls

    @field_validator("dns")
    @classmethod
    def _dns(cls, dns: str | None) -> str | None:
        if dns is None:
            return None
        host, sep, port = dns.rpartition(":")
        if not sep or not host or not port.isdecimal() or not 0 < int(port) < 65536:
            raise ValueError(f"expected HOST:PORT, got {dns!r}")
        return dns

    @model_validator(mode="after")
    def _one_source(self) -> ReplicaSpec:
        if bool(self.urls) == (self.dns is not None):
            raise ValueError("give urls or dns (one of them)")
        return self


class CacheSpec(Spec):
    """The response cache of a deployment (off unless enabled)."""

    enabled: bool = False
    """Answer a repeated request from the cache; keyed by the served version and the request."""

    backend: Literal["memory", "redis"] = "memory"
    """``memory``: each gateway process keeps its own; ``redis``: shared by gateway replicas."""

    max_entries: int = Field(default=10_000, ge=1)
    """Most answers kept (memory backend)."""

    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Most bytes of answers kept (memory backend)."""

    ttl_seconds: float = Field(default=60.0, gt=0)
    """How long an answer may be served from the cache."""


class PredictionLogSpec(Spec):
    """What the prediction log keeps of this deployment's requests."""

    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of requests logged (1: every one, 0: none)."""

    redact: list[str] = Field(default_factory=list)
    """Input or output names whose values are never written."""

    hash: list[str] = Field(default_factory=list)
    """Input or output names written as a keyed hash (joinable, not readable)."""

    @model_validator(mode="after")
    def _disjoint(self) -> PredictionLogSpec:
        both = sorted(set(self.redact) & set(self.hash))
        if both:
            raise ValueError(f"{both} are both redacted and hashed: choose one")
        return self


class EntityKeySpec(Spec):
    """One join key of the enriching features and where each request carries it (one source)."""

    join_key: str
    """The join key (``user_id``), as the feature views' entities name it."""

    input: str | None = None
    """A request input holding one key per row: BYTES (UTF-8 text) or INT64, shape ``[N]`` or
    ``[N, 1]``. Not sent to the model unless its signature names an input so."""

    parameter: str | None = None
    """A request parameter holding one key (a string or an integer) for every row."""

    @field_validator("join_key")
    @classmethod
    def _join_key(cls, join_key: str) -> str:
        if not _IDENTIFIER.fullmatch(join_key):
            raise ValueError(f"{join_key!r} is not a join key: expected letters, digits and '_'")
        return join_key

    @model_validator(mode="after")
    def _one_source(self) -> EntityKeySpec:
        if (self.input is None) == (self.parameter is None):
            raise ValueError("give exactly one of input or parameter")
        if self.input == "" or self.parameter == "":
            raise ValueError("the input or parameter name is empty")
        return self


class FeaturesSpec(Spec):
    """Feature enrichment: the gateway reads features online and adds them to the model input.

    Each request carries the entity keys; the gateway reads the declared features for every
    row in one batched online read and assembles the model input in the order of the served
    version's signature: a signature input named like a feature (``spend_7d``) gets that
    feature's column; the other features, in declared order, form one ``[N, F]`` matrix for the
    input named by ``input`` (or the model's only input that is neither named like a feature
    nor an entity key's input). Inputs the request gives itself pass through unchanged. Whether
    the features fit the signature is checked when the gateway builds the deployment's route.
    """

    entities: list[EntityKeySpec] = Field(min_length=1)
    """Each join key the features need and where the request carries it."""

    features: list[str] | None = None
    """Feature references, ``view:feature``, in the order of the matrix's columns."""

    service: str | None = None
    """Or a feature service's name: its features, in its order."""

    input: str | None = None
    """The model input assembled from the features not named by an input of their own; by
    default the model's only input left."""

    on_missing: Literal["reject", "default", "null"] = "reject"
    """A feature without a value for a row (no row online, a null, older than the view's ttl):
    ``reject`` answers 400 naming the entity and the feature; ``default`` uses ``defaults``;
    ``null`` sends NaN (float inputs only)."""

    defaults: dict[str, float | int | str | bool] = Field(default_factory=dict)
    """For ``onMissing: default``: the value of each feature, by ``view:feature`` or by feature
    name; every feature needs one."""

    @field_validator("features")
    @classmethod
    def _features(cls, features: list[str] | None) -> list[str] | None:
        if features is None:
            return None
        if not features:
            raise ValueError("list at least one feature ('view:feature')")
        for ref in features:
            parts = ref.split(":")
            if len(parts) != 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
                raise ValueError(f"{ref!r} is not a feature reference: expected 'view:feature'")
        twice = sorted({ref for ref in features if features.count(ref) > 1})
        if twice:
            raise ValueError(f"{twice} appear more than once")
        return features

    @model_validator(mode="after")
    def _consistent(self) -> FeaturesSpec:
        if (self.features is None) == (self.service is None):
            raise ValueError("give exactly one of features (a list of 'view:feature') or service")
        keys = [e.join_key for e in self.entities]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"join keys {twice} are declared more than once in entities")
        if self.on_missing != "default":
            if self.defaults:
                raise ValueError(
                    f"defaults are for onMissing: default; onMissing is {self.on_missing}"
                )
            return self
        if self.features is not None:
            missing = [f for f in self.features if self.default(f) is None]
            if missing:
                raise ValueError(f"onMissing is default, but {missing} have no defaults")
            known = set(self.features) | {f.split(":")[1] for f in self.features}
            unknown = sorted(set(self.defaults) - known)
            if unknown:
                raise ValueError(f"defaults {unknown} name no declared feature")
        return self

    def default(self, ref: str) -> float | int | str | bool | None:
        """The default of feature ``ref`` (``view:feature``), given by reference or by name."""
        if ref in self.defaults:
            return self.defaults[ref]
        return self.defaults.get(ref.split(":", 1)[1])


class DeploymentSpec(Spec):
    """What a deployment serves and how."""

    variants: list[VariantSpec] = Field(min_length=1)
    """The versions behind the public name."""

    traffic: TrafficSpec = TrafficSpec()
    """How requests are spread over the variants."""

    replicas: ReplicaSpec | None = None
    """Where the variants are served; absent: in the same process tree (``modelport up``)."""

    cache: CacheSpec = CacheSpec()
    """The response cache."""

    prediction_log: PredictionLogSpec = PredictionLogSpec()
    """What is logged of each prediction."""

    features: FeaturesSpec | None = None
    """Feature enrichment from the online feature store; absent: requests go as they come."""

    @model_validator(mode="after")
    def _variants(self) -> DeploymentSpec:
        names = [v.name for v in self.variants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"variant names must be unique; {twice} appear more than once")
        answering = [v for v in self.variants if v.role != "shadow"]
        if not answering:
            raise ValueError("at least one variant must be a control or treatment")
        total = math.fsum(v.weight for v in answering)
        if not math.isclose(total, _WEIGHT_TOTAL, abs_tol=1e-9):
            shown = ", ".join(f"{v.name}={v.weight:g}" for v in answering)
            raise ValueError(
                f"the weights of the variants must add up to 100, got {total:g} ({shown})"
            )
        return self


class Deployment(Spec):
    """A Deployment document."""

    api_version: Literal["modelport.io/v1"]
    """Always ``modelport.io/v1``."""

    kind: Literal["Deployment"]
    """Always ``Deployment``."""

    metadata: Metadata
    """Name and labels."""

    spec: DeploymentSpec
    """Variants, traffic, replicas, cache, prediction log and feature enrichment."""

    @property
    def name(self) -> str:
        """The deployment's public name."""
        return self.metadata.name

    @property
    def salt(self) -> str:
        """The salt of sticky assignment: the configured one, or the deployment's name."""
        return self.spec.traffic.salt or self.metadata.name

    def document(self) -> dict[str, Any]:
        """The deployment as a document (camelCase keys, defaults included)."""
        return self.model_dump(mode="json", by_alias=True)


def parse_deployment(document: object) -> Deployment:
    """Validate a Deployment document (parsed YAML or JSON).

    Raises:
        InvalidInput: The document is not a valid Deployment; the message names every bad field
            by its path in the document and says what was expected.
    """
    return parse_resource(Deployment, document)


def _is_token(name: str) -> bool:
    allowed = set("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return bool(name) and set(name) <= allowed
