"""Alembic environment for the feature registry in the metadata database.

The registry runs migrations itself (``modelport.db.migrate``) and hands Alembic an open
connection; nothing here reads an ini file or the environment.
"""

from __future__ import annotations

from modelport.db import run_alembic_env

run_alembic_env("feature registry")
