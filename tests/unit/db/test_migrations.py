"""Each package's declared head revision is Alembic's, and a database at its head opens without
loading Alembic."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from modelport.db import Migrations
from modelport.experiments._schema import MIGRATIONS as EXPERIMENTS
from modelport.monitoring._schema import MIGRATIONS as MONITORING
from modelport.registry._schema import MIGRATIONS as REGISTRY
from modelport.security._schema import MIGRATIONS as SECURITY


@pytest.mark.parametrize(
    "migrations", [REGISTRY, SECURITY, EXPERIMENTS, MONITORING], ids=lambda m: m.name
)
def test_the_declared_head_is_alembics(migrations: Migrations) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations.script_dir))
    assert ScriptDirectory.from_config(config).get_current_head() == migrations.head


def test_a_database_at_its_head_opens_without_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    code = (
        "import sys\n"
        "from modelport.registry import MetadataStore\n"
        "from modelport.security.store import SecurityStore\n"
        "from modelport.core.clock import SystemClock\n"
        f"MetadataStore({url!r}, SystemClock()).close()\n"
        f"SecurityStore({url!r}, SystemClock()).close()\n"
        "print('alembic' in sys.modules)\n"
    )
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "True"  # a new database is migrated
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "False"
