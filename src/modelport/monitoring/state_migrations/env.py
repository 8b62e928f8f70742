"""Alembic environment for the monitoring state in the metadata database.

Drift windows and results, and (from 0002) alert rules, alert states and notifications. The
stores run migrations themselves (``modelport.db.migrate``) and hand Alembic an open
connection; nothing here reads an ini file or the environment.
"""

from __future__ import annotations

from modelport.db import run_alembic_env

run_alembic_env("monitoring state")
