"""Which variant answers a request: weighted split, sticky assignment, override and shadows.

Pure policy over plain data (no I/O), so every gateway replica and every restart decides alike:

- **Sticky.** A request that carries a unit key (a user id, say) is placed by a hash of the salt
  and the key: BLAKE2b-64 of the salt, a zero byte and the key, read as a number in ``[0, 1)``,
  picks the variant whose slice of the cumulative weights holds it. The same key and salt give
  the same variant in every process; another salt gives an independent placement.
- **Random.** A request without a key is placed by a uniform draw from the injected ``random``
  function; such requests are marked unkeyed so that they can be counted apart.
- **Weights.** Percentages of the control and treatment variants, adding up to 100; a variant at
  weight 0 holds an empty slice and is never chosen. A :class:`TrafficPlan` is immutable: a
  gateway replaces its plan by assigning a new one, so a request sees the old weights or the
  new ones, never a mixture.
- **Override.** A tester may name the variant (the ``X-Modelport-Variant`` header); whether the
  caller may do that is decided before, by authorisation.
- **Shadows.** Each shadow variant receives a copy of a request with its ``mirror`` percentage,
  decided by a hash of its own (the salt and the shadow's name mixed in), so which requests are
  copied does not depend on which variant answered them.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modelport.core.deployment import Deployment
from modelport.core.errors import InvalidInput

__all__ = ["Assignment", "Slot", "TrafficPlan", "unit_position"]

_SCALE = float(1 << 64)


def unit_position(salt: str, key: str) -> float:
    """The place of a unit key in ``[0, 1)`` under ``salt``: the same in every process.

    Args:
        salt: The deployment's (or experiment's) salt.
        key: The unit key (a user id...).
    """
    digest = hashlib.blake2b(
        salt.encode("utf-8", "surrogatepass") + b"\x00" + key.encode("utf-8", "surrogatepass"),
        digest_size=8,
    ).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True, slots=True)
class Slot:
    """A variant a request can be sent to: its name and the model reference it serves."""

    variant: str
    model: str


@dataclass(slots=True)
class Assignment:
    """Where one request goes.

    Attributes:
        slot: The variant that answers.
        keyed: Whether a unit key placed it (``False``: drawn at random, or overridden).
        overridden: Whether the caller named the variant.
        shadows: Shadow variants that get a copy of the request, off the caller's path.
    """

    slot: Slot
    keyed: bool
    overridden: bool = False
    shadows: tuple[Slot, ...] = ()


class TrafficPlan:
    """The split of one deployment, built once per change of the deployment and then only read.

    Args:
        salt: Mixed into every hash (a new salt reshuffles the units).
        answering: ``(slot, weight)`` of the control and treatment variants, in order; the
            weights are percentages adding up to 100.
        shadows: ``(slot, mirror)`` of the shadow variants: the percentage copied to each.

    Raises:
        InvalidInput: No variant, a negative weight, or weights that do not add up to 100.
    """

    __slots__ = ("_answering", "_bounds", "_open", "_shadows", "salt")

    def __init__(
        self,
        salt: str,
        answering: Sequence[tuple[Slot, float]],
        shadows: Sequence[tuple[Slot, float]] = (),
    ) -> None:
        if not answering:
            raise InvalidInput("a traffic plan needs at least one answering variant")
        if any(weight < 0 or not math.isfinite(weight) for _, weight in answering):
            raise InvalidInput("variant weights are percentages from 0 to 100")
        total = math.fsum(weight for _, weight in answering)
        if not math.isclose(total, 100.0, abs_tol=1e-9):
            raise InvalidInput(f"variant weights must add up to 100, got {total:g}")
        self.salt = salt
        # Variants at weight 0 are left out: they hold no slice, and a rounding error at a
        # boundary can never land on them.
        self._open = tuple(slot for slot, weight in answering if weight > 0)
        bounds: list[float] = []
        running = 0.0
        for _, weight in ((s, w) for s, w in answering if w > 0):
            running += weight / total
            bounds.append(running)
        bounds[-1] = 1.0  # the last slice ends exactly at 1, whatever the float sum gave
        self._bounds = tuple(bounds)
        self._shadows = tuple((slot, mirror / 100.0) for slot, mirror in shadows if mirror > 0)
        self._answering = {slot.variant: slot for slot, _ in answering}

    @classmethod
    def of(cls, deployment: Deployment) -> TrafficPlan:
        """The plan of a validated deployment."""
        answering = [
            (Slot(v.name, v.model), v.weight)
            for v in deployment.spec.variants
            if v.role != "shadow"
        ]
        shadows = [
            (Slot(v.name, v.model), v.mirror)
            for v in deployment.spec.variants
            if v.role == "shadow"
        ]
        return cls(deployment.salt, answering, shadows)

    def answering(self) -> list[str]:
        """Names of the variants that may answer callers, weight 0 included."""
        return list(self._answering)

    def assign(
        self,
        key: str | None,
        random: Callable[[], float],
        override: str | None = None,
    ) -> Assignment:
        """Choose the variant of one request, and the shadows that get a copy of it.

        Args:
            key: The request's unit key; ``None`` when it carries none.
            random: Uniform draws in ``[0, 1)`` for requests without a key (``random.random``).
            override: A variant the caller named (authorised before); a variant at weight 0
                may be named.

        Raises:
            InvalidInput: ``override`` names no answering variant of this plan.
        """
        if override is not None:
            # A variant at weight 0 can be named: that is how testers try one before it
            # gets traffic.
            slot = self._answering.get(override)
            if slot is None:
                raise InvalidInput(
                    f"no variant {override!r} answers here; variants: {', '.join(self._answering)}"
                )
            return Assignment(
                slot, keyed=False, overridden=True, shadows=self._mirrored(key, random)
            )
        if key is None:
            position = random()
        else:
            position = unit_position(self.salt, key)
        slot = self._open[bisect.bisect_right(self._bounds, position)]
        return Assignment(slot, keyed=key is not None, shadows=self._mirrored(key, random))

    def _mirrored(self, key: str | None, random: Callable[[], float]) -> tuple[Slot, ...]:
        if not self._shadows:
            return ()
        chosen = []
        for slot, share in self._shadows:
            if key is None:
                position = random()
            else:
                position = unit_position(f"{self.salt}\x00shadow\x00{slot.variant}", key)
            if position < share:
                chosen.append(slot)
        return tuple(chosen)
