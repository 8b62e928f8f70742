"""Settings as a command reads them: a bad ``MODELPORT_*`` value is a one-line *config* error.

:func:`modelport.core.settings.load_settings` raises pydantic's ``ValidationError``, which is
not a :class:`~modelport.core.errors.ModelportError` and would end the command with a traceback;
:func:`checked_settings` names each bad setting by its environment variable instead (exit 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelport.core.errors import ConfigError

if TYPE_CHECKING:
    from modelport.core.settings import Settings

__all__ = ["checked_settings"]


def checked_settings() -> Settings:
    """Read the settings from the environment.

    Raises:
        ConfigError: A setting is invalid; the message names its variable
            (``MODELPORT_CONTROLPLANE__PORT``), what is wrong and the value given.
    """
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from modelport.core.settings import load_settings

    try:
        return load_settings()
    except SettingsError as exc:  # a list or mapping setting that is not JSON
        raise ConfigError(
            f"invalid setting: {exc}; list and mapping settings are JSON, e.g. "
            "MODELPORT_MONITORING__SLO_LATENCY_SECONDS='[0.1, 0.5]'"
        ) from None
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            path = [str(part) for part in error["loc"]]
            variable = "MODELPORT_" + "__".join(path).upper()
            given = error.get("input")
            shown = ""
            if isinstance(given, str | int | float | bool) and not _secret(variable):
                text = repr(given)
                shown = f" (got {text if len(text) <= 60 else text[:57] + '...'})"
            problems.append(f"{variable} ({'.'.join(path)}): {error['msg']}{shown}")
        raise ConfigError("invalid setting: " + "; ".join(problems)) from None


def _secret(variable: str) -> bool:
    """Whether a variable may hold a secret, whose value is never echoed."""
    return any(word in variable for word in ("KEY", "SECRET", "TOKEN", "PASSWORD", "URL"))
