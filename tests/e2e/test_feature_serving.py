"""Features from definition to served prediction: the example, and skew found when it exists.

``examples/feature_store.py`` applies a feature repository, trains a model on a point-in-time
training set, serves it under ``modelport up`` with feature enrichment (callers send only
customer ids) and checks the served predictions equal the model's predictions on features
computed offline at the same instant; ``modelport features skew`` then finds no mismatch. When
the offline data is rewritten afterwards, the same command reports every served value as a
mismatch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_serves_what_training_saw_and_skew_shows_a_changed_source(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "feature_store.py")],
        env={**os.environ, "MODELPORT_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "served and offline predictions are equal" in done.stdout
    assert "20 rows compared" in done.stdout

    skew = modelport(home, "features", "skew", "fraud", "-o", "json")
    assert skew.returncode == 0, skew.stderr
    report = json.loads(skew.stdout)
    assert report["rows"] == 20
    assert {f["feature"]: f["mismatches"] for f in report["features"]} == {
        "customer_stats:spend_7d": 0,
        "customer_stats:orders_7d": 0,
        "customer_stats:chargebacks_90d": 0,
    }

    # The offline source changes after serving (a backfill): what was served no longer
    # matches what training would see; only the unknown customer (missing on both) agrees.
    source = home / "repo" / "data" / "customer_stats.parquet"
    table = pq.read_table(source)
    spend = table.column("spend_7d")
    table = table.set_column(
        table.schema.get_field_index("spend_7d"), "spend_7d", pc.add(spend, 1.0)
    )
    pq.write_table(table, source)
    changed = json.loads(modelport(home, "features", "skew", "fraud", "-o", "json").stdout)
    by_feature = {f["feature"]: f for f in changed["features"]}
    assert by_feature["customer_stats:spend_7d"]["mismatches"] == 19
    assert by_feature["customer_stats:orders_7d"]["mismatches"] == 0
    [example, *_] = by_feature["customer_stats:spend_7d"]["examples"]
    assert example["offline"] == pytest.approx(example["online"] + 1.0)

    refused = modelport(home, "features", "skew", "fraud", "--window", "soon")
    assert refused.returncode != 0 and "--window 'soon'" in refused.stderr
