"""``modelport feedback import`` on a real data directory, as a user runs it: JSON lines and CSV,
all or nothing, ``--skip-unknown`` with ``--rejects``, bad lines, exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from modelport.experiments.feedback import FeedbackStore
from modelport.monitoring.prediction_log import PredictionLog, PredictionRecord
from modelport.testing import FakeClock
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

LOGGED = [f"req-{i}" for i in range(8)]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    log = PredictionLog(home / "predictions", flush_interval_s=30)
    for i, rid in enumerate(LOGGED):
        log.log(
            PredictionRecord(
                request_id=rid,
                time=datetime.now(UTC),
                deployment="fraud" if i < 6 else "houses",
                variant="current",
                model="m",
                model_version="1",
                shadow=False,
                latency_ms=1.0,
                identity=None,
                inputs='{"x": [1]}',
                outputs='{"label": [1]}',
            )
        )
    log.log(  # a shadow's copy alone does not make a request known
        PredictionRecord("shadow-only", datetime.now(UTC), "fraud", "candidate", "m", "2", True,
                         1.0, None, "{}", "{}")
    )  # fmt: skip
    log.close()
    return home


def stored(home: Path, deployment: str) -> dict[str, str]:
    with FeedbackStore(f"sqlite:///{home / 'modelport.db'}", FakeClock()) as store:
        table = store.read(deployment)
    return dict(
        zip(table.column("request_id").to_pylist(), table.column("truth").to_pylist(), strict=True)
    )


def test_json_lines_are_imported_and_imported_again_replace(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"deployment": "fraud", "request_id": "req-0", "label": 1}\n'
        '{"request_id": "req-1", "label": 0}\n'
        "\n"
        '{"deployment": "houses", "request_id": "req-6", "value": 412000.5}\n'
    )
    done = modelport(home, "feedback", "import", str(path), "--deployment", "fraud")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "stored 3 feedback (0 replaced an earlier one)"
    again = modelport(home, "feedback", "import", str(path), "-d", "fraud", "-o", "json")
    assert json.loads(again.stdout) == {
        "accepted": 3,
        "replaced": 3,
        "unknown": 0,
        "unknown_ids": [],
    }
    assert stored(home, "fraud") == {"req-0": "1", "req-1": "0"}
    assert stored(home, "houses") == {"req-6": "412000.5"}


def test_csv_with_a_deployment_column(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("request_id,deployment,label\nreq-2,fraud,1\nreq-3,,legit\n")
    done = modelport(home, "feedback", "import", str(path), "-d", "fraud")
    assert done.returncode == 0, done.stderr
    assert stored(home, "fraud") == {"req-2": "1", "req-3": '"legit"'}


def test_an_unknown_id_stores_nothing_and_exits_3(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\nreq-0,1\nnever-logged,0\nshadow-only,1\nreq-1,0\n")
    rejects = tmp_path / "rejects.jsonl"
    done = modelport(
        home, "feedback", "import", str(path), "-d", "fraud", "--rejects", str(rejects)
    )
    assert done.returncode == 3, (done.stdout, done.stderr)
    assert done.stderr.strip() == (
        "error: 2 request ids are not in the prediction log (fraud: 'never-logged', "
        "'shadow-only'); nothing was written; --skip-unknown stores the others (the unknown "
        f"ones are in {rejects})"
    )
    assert stored(home, "fraud") == {}
    assert [json.loads(line)["request_id"] for line in rejects.read_text().splitlines()] == [
        "never-logged",
        "shadow-only",
    ]


def test_skip_unknown_stores_the_known_and_writes_the_rejects(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text('request_id,label\nreq-0,1\nnever-logged,0\nreq-1,"[0, 1]"\n')
    rejects = tmp_path / "rejects.jsonl"
    done = modelport(
        home, "feedback", "import", str(path), "-d", "fraud", "--skip-unknown", "--rejects",
        str(rejects),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "stored 2 feedback (0 replaced an earlier one); skipped 1 with unknown request ids "
        f"(written to {rejects})"
    )
    assert stored(home, "fraud") == {"req-0": "1", "req-1": "[0,1]"}
    assert [json.loads(line) for line in rejects.read_text().splitlines()] == [
        {"deployment": "fraud", "request_id": "never-logged", "label": 0}
    ]
    # The rejects are a file `feedback import` takes back (once the requests are logged).
    back = modelport(home, "feedback", "import", str(rejects))
    assert back.returncode == 3 and "'never-logged'" in back.stderr


def test_a_bad_line_is_named_and_nothing_is_stored(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("request_id,label\nreq-0,1\nreq-1,1,extra\n")
    done = modelport(home, "feedback", "import", str(path), "-d", "fraud", "--skip-unknown")
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: line 3: 3 field(s), expected 2 (request_id, label)")
    assert stored(home, "fraud") == {}
    lines = tmp_path / "labels.jsonl"
    lines.write_text('{"request_id": "req-0", "label": 1}\n{"request_id": "req-1", "label": 0.5}\n')
    done = modelport(home, "feedback", "import", str(lines), "-d", "fraud")
    assert done.returncode == 2
    assert "error: line 2: label must be a string, an integer or a boolean" in done.stderr


def test_arguments_are_checked(home: Path, tmp_path: Path) -> None:
    missing = modelport(home, "feedback", "import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 3 and "no such file" in missing.stderr
    odd = tmp_path / "labels.txt"
    odd.write_text('{"deployment": "fraud", "request_id": "req-0", "label": 1}\n')
    unsure = modelport(home, "feedback", "import", str(odd))
    assert unsure.returncode == 2 and "give --format jsonl or --format csv" in unsure.stderr
    chosen = modelport(home, "feedback", "import", str(odd), "--format", "jsonl")
    assert chosen.returncode == 0, chosen.stderr
    no_deployment = tmp_path / "labels.csv"
    no_deployment.write_text("request_id,label\nreq-0,1\n")
    refused = modelport(home, "feedback", "import", str(no_deployment))
    assert refused.returncode == 2 and "no deployment column" in refused.stderr
