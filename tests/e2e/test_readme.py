"""The README is true: every shell command in it is run here, or named with the test that covers it.

:data:`SNIPPETS` lists every command of every ```bash block of README.md (continuation lines
joined, trailing comments dropped). ``RUN`` commands are run as written, in README order, by
:func:`test_the_readme_commands_run_as_written` in a scratch folder with a data directory set up
as a user would have it (a few versions of ``fraud`` registered, aliases on them, a git
repository for ``$(git rev-parse HEAD)``). The others name the tests that cover them, as
``path::test_name``: serving blocks until interrupted and uses fixed ports, so those commands are
exercised by tests that serve on free ports. A README command missing from the table, a table
entry no longer in the README, or a named test that does not exist fails
:func:`test_every_readme_command_is_run_or_covered`, so a new snippet cannot go untested.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Final

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from modelport.security.certs import make_dev_certs
from modelport.testing import ServerProcess
from tests.e2e._cli import modelport

pytestmark = pytest.mark.slow

ROOT: Final = Path(__file__).resolve().parents[2]
README: Final = ROOT / "README.md"
VENV_BIN: Final = Path(sys.executable).parent

RUN: Final = "run"
"""Run as written by :func:`test_the_readme_commands_run_as_written`."""

_HERE = "tests/e2e/test_readme.py"
_QUICKSTART = f"{_HERE}::test_the_quickstart_runs_and_its_models_are_listed_afterwards"
_MTLS = (
    f"{_HERE}::test_mutual_tls_as_the_readme_shows_it",
    "tests/integration/test_tls_jwt.py::test_a_client_certificate_authenticates_its_subject",
)
_PREDICT = "tests/e2e/test_cli.py::test_serve_registered_and_predict"
_DRIFT_REPORT = (
    "tests/e2e/test_drift_report.py::test_shifted_traffic_is_flagged_and_like_the_reference_is_not"
)
_FEEDBACK_API = "tests/e2e/test_feedback_api.py::"
_FEEDBACK_CLI = "tests/e2e/test_feedback_cli.py::"
_EXPERIMENTS_CLI = "tests/e2e/test_experiments_cli.py::test_every_command"
_EXPERIMENTS = "tests/e2e/test_experiments.py::test_the_platform_decides_on_its_own"
_DEPLOY_APPLY = (
    "tests/e2e/test_deployments_cli.py::"
    "test_apply_is_idempotent_and_each_change_is_audited_with_its_diff",
    "tests/e2e/test_deployments_cli.py::test_the_readme_deployment_applies",
)
_LOGS = "tests/e2e/test_logs_cli.py::test_json_lines_filtered_by_deployment_and_time"
_ALERTRULES = "tests/e2e/test_alertrules_cli.py::"
_ALERTRULES_CLI = _ALERTRULES + "test_apply_a_deployment_with_its_rules_then_list_show_and_delete"
_DEPLOY_SHOW = "tests/e2e/test_deployments_cli.py::test_list_show_and_delete_with_json_output"
_CP = "tests/e2e/test_controlplane.py::"
_CP_START = _CP + "test_it_announces_itself_and_answers_probes_without_a_key"
_CP_APPLY = _CP + "test_apply_with_put_and_post_idempotently_then_read_and_delete"
_UP = (
    "tests/e2e/test_up.py::test_plain_http_names_the_deployment_version_and_variant",
    "tests/e2e/test_up.py::test_tritonclient_http_and_grpc",
)
_GATEWAY = (
    "tests/e2e/test_gateway.py::test_stock_clients_reach_both_versions_through_the_gateway",
    "tests/e2e/test_gateway.py::test_a_replica_killed_under_load_fails_only_its_requests_in_flight",
)

_FEATURES_CLI = "tests/e2e/test_features_cli.py::test_apply_materialize_get_and_training_set"
_FEATURE_SERVING = (
    "tests/e2e/test_feature_serving.py::"
    "test_the_example_serves_what_training_saw_and_skew_shows_a_changed_source"
)
_FEATURES_JOB = (
    "tests/unit/service/test_jobs.py::test_the_materialisation_job_continues_each_online_view"
)

SNIPPETS: Final[dict[str, str | tuple[str, ...]]] = {
    # Two commands
    "./scripts/quickstart": _QUICKSTART,
    ".venv/bin/python examples/drift_alert.py": (
        "tests/e2e/test_alerts.py::test_the_drift_alert_example_runs"
    ),
    "./scripts/test": f"{_HERE}::test_the_scripts_the_readme_names_exist",
    # after the quickstart
    "source .venv/bin/activate": _QUICKSTART,
    "MODELPORT_HOME=.quickstart modelport models list": _QUICKSTART,
    "MODELPORT_HOME=.quickstart modelport models show iris@champion": _QUICKSTART,
    # Install
    "pip install -e .": f"{_HERE}::test_the_install_extras_exist",
    "pip install -e '.[postgres]'": f"{_HERE}::test_the_install_extras_exist",
    "pip install -e '.[xgboost]'": f"{_HERE}::test_the_install_extras_exist",
    "pip install -e '.[lightgbm]'": f"{_HERE}::test_the_install_extras_exist",
    "pip install -e '.[onnx]'": f"{_HERE}::test_the_install_extras_exist",
    "pip install -e '.[dev]'": f"{_HERE}::test_the_install_extras_exist",
    "pip install -e '.[tracing]'": f"{_HERE}::test_the_install_extras_exist",
    # tracing
    "MODELPORT_TRACING__ENABLED=true MODELPORT_TRACING__ENDPOINT=http://127.0.0.1:4318/v1/traces "
    "modelport up": (
        "tests/e2e/test_tracing.py::"
        "test_up_records_the_stages_under_the_gateways_span_and_flushes_when_stopped"
    ),
    'curl -s localhost:8080/v2/models/fraud/infer -H "Authorization: Bearer $KEY" -H '
    "'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' -d '{\"inputs\": "
    '[{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}\'': (
        "tests/e2e/test_tracing.py::test_a_callers_trace_goes_through_the_gateway_to_the_replica",
        "tests/e2e/test_tracing.py::"
        "test_up_records_the_stages_under_the_gateways_span_and_flushes_when_stopped",
    ),
    # feature store
    "modelport features apply feature_repo/": _FEATURES_CLI,
    "modelport features list": _FEATURES_CLI,
    "modelport features show featureviews user_stats -o yaml": _FEATURES_CLI,
    "modelport features materialize": (_FEATURES_CLI, _FEATURES_JOB),
    "modelport features materialize --start 2026-12-01T00:00:00Z --end 2026-12-08T00:00:00Z "
    "--view user_stats": _FEATURES_CLI,
    "modelport features get user_stats:spend_7d user_stats:orders_7d -e user_id=1 -e user_id=2": (
        _FEATURES_CLI
    ),
    "modelport features training-set --service fraud_features --entities events.parquet "
    "--out train.parquet": _FEATURES_CLI,
    "modelport features delete featureservices fraud_features": _FEATURES_CLI,
    "modelport features skew fraud --window 1d": _FEATURE_SERVING,
    ".venv/bin/python examples/feature_store.py": _FEATURE_SERVING,
    # register, models, alias
    "modelport register fraud model.joblib --sample sample.npy --tag team=risk --metric auc=0.91 "
    '--description "gradient boosting, Q3 data" --training-data train.parquet '
    '--code-version "$(git rev-parse HEAD)" --parent 3': RUN,
    "modelport models list": RUN,
    "modelport models list --json": RUN,
    "modelport models show fraud": RUN,
    "modelport models show fraud@3": RUN,
    "modelport models show fraud@champion": RUN,
    "modelport models archive fraud@2": RUN,
    "modelport alias set fraud champion 4": RUN,
    "modelport alias remove fraud challenger": RUN,
    "modelport alias history fraud": RUN,
    "modelport apply -f deploy.yaml": _DEPLOY_APPLY,
    "modelport deployments list": _DEPLOY_SHOW,
    "modelport deployments show fraud": _DEPLOY_SHOW,
    "modelport deployments delete fraud": _DEPLOY_SHOW,
    "modelport logs query --deployment fraud --since 1h": _LOGS,
    "modelport logs query -d fraud --since 2026-12-01 -o json": _LOGS,
    "modelport logs query -d fraud --since 3h --until 1h --limit 100": (
        "tests/e2e/test_logs_cli.py::test_json_lines_filtered_by_deployment_and_time"
    ),
    "modelport logs query -o csv > predictions.csv": "tests/e2e/test_logs_cli.py::test_csv_parquet_and_table",
    "modelport logs prune": "tests/e2e/test_logs_cli.py::test_prune_applies_the_retention_settings",
    "modelport drift profile fraud@3 --reference reference.npy": (
        "tests/e2e/test_drift_cli.py::test_profiles_at_registration_and_by_command"
    ),
    "modelport drift report fraud": _DRIFT_REPORT,
    "modelport drift report fraud --window 24h -o json": _DRIFT_REPORT,
    "modelport drift report fraud --html drift.html": _DRIFT_REPORT,
    "modelport drift report fraud --source log --limit 50000": _DRIFT_REPORT,
    # alert rules and monitor export
    "modelport apply -f fraud-alerts.yaml": (
        _ALERTRULES + "test_the_readme_alert_rule_applies",
        _ALERTRULES_CLI,
    ),
    "modelport alertrules list": _ALERTRULES_CLI,
    "modelport alertrules list -d fraud -o yaml": _ALERTRULES_CLI,
    "modelport alertrules show fraud-latency": _ALERTRULES_CLI,
    "modelport alertrules delete fraud-latency": _ALERTRULES_CLI,
    "modelport monitor export --out monitoring/": (
        _ALERTRULES + "test_monitor_export_writes_a_prometheus_rule_and_a_dashboard",
        _ALERTRULES + "test_the_export_reads_only_metrics_that_modelport_up_exposes",
    ),
    'curl -X PUT http://127.0.0.1:8090/v1/alertrules/fraud-latency -H "Authorization: Bearer '
    "$KEY\" -H 'Content-Type: application/yaml' --data-binary @fraud-latency.yaml": (
        _ALERTRULES + "test_the_control_plane_serves_alert_rules"
    ),
    # alerts
    "modelport alerts list": "tests/unit/cli/test_alerts_cmd.py::test_the_table_shows_each_alert_with_its_labels",
    "modelport alerts list --deployment fraud --all -o json": (
        "tests/unit/cli/test_alerts_cmd.py::test_json_is_what_the_api_answers"
    ),
    'curl "http://127.0.0.1:8090/v1/alerts?deployment=fraud" -H "Authorization: Bearer $KEY"': (
        "tests/unit/server/test_controlplane_alerts.py::"
        "test_alerts_are_listed_for_the_deployments_the_caller_may_see"
    ),
    # feedback
    'curl -s localhost:8080/v2/models/fraud/infer -H "Authorization: Bearer $KEY" -H '
    '\'x-request-id: 7f9c2d4e-0b1a-4c8e-9f00-5e2b6f1d3a77\' -d \'{"inputs": [{"name": '
    '"input", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}\'': (
        _FEEDBACK_API + "test_feedback_for_an_answered_request_is_stored_then_replaced"
    ),
    'curl -s localhost:8080/v2/feedback -H "Authorization: Bearer $KEY" -d \'{"deployment": '
    '"fraud", "request_id": "7f9c2d4e-0b1a-4c8e-9f00-5e2b6f1d3a77", "label": 1}\'': (
        _FEEDBACK_API + "test_feedback_for_an_answered_request_is_stored_then_replaced"
    ),
    'curl -s localhost:8080/v2/feedback -H "Authorization: Bearer $KEY" -d \'{"deployment": '
    '"houses", "feedback": [{"request_id": "a1", "value": 412000}, '
    '{"request_id": "a2", "value": 385500.5}]}\'': (
        _FEEDBACK_API + "test_feedback_for_an_answered_request_is_stored_then_replaced"
    ),
    'curl -s localhost:8080/v2/feedback -H "Authorization: Bearer $KEY" -H '
    "'Content-Type: application/x-ndjson' --data-binary @feedback.jsonl": (
        _FEEDBACK_API + "test_json_lines"
    ),
    "modelport feedback import labels.jsonl": (
        _FEEDBACK_CLI + "test_json_lines_are_imported_and_imported_again_replace"
    ),
    "modelport feedback import labels.csv --deployment fraud": (
        _FEEDBACK_CLI + "test_csv_with_a_deployment_column"
    ),
    "modelport feedback import prices.csv -d houses -o json": (
        _FEEDBACK_CLI + "test_csv_with_a_deployment_column"
    ),
    "modelport feedback import labels.csv -d fraud --skip-unknown --rejects unknown.jsonl": (
        _FEEDBACK_CLI + "test_skip_unknown_stores_the_known_and_writes_the_rejects"
    ),
    # experiments
    "modelport apply -f fraud-v4.yaml": _EXPERIMENTS_CLI,
    "modelport experiments list": _EXPERIMENTS_CLI,
    "modelport experiments show fraud-v4": (_EXPERIMENTS_CLI, _EXPERIMENTS),
    "modelport experiments show fraud-v4 -o json": _EXPERIMENTS_CLI,
    "modelport experiments pause fraud-v4": _EXPERIMENTS_CLI,
    "modelport experiments resume fraud-v4": _EXPERIMENTS_CLI,
    "modelport experiments evaluate fraud-v4": _EXPERIMENTS_CLI,
    "modelport experiments acknowledge fraud-v4": _EXPERIMENTS,
    "modelport experiments promote fraud-v4": _EXPERIMENTS_CLI,
    "modelport experiments abort fraud-v4": "tests/e2e/test_experiments_cli.py::test_abort_and_refusals",
    "modelport experiments delete fraud-v4": _EXPERIMENTS_CLI,
    "modelport alias history fraud champion --json": RUN,
    # serve
    "modelport serve fraud@champion": _PREDICT,
    "modelport serve iris@1 iris@2 fraud --port 9000": (
        _QUICKSTART,
        "tests/e2e/test_cli.py::test_serve_every_artifact_kind_in_one_server",
    ),
    "modelport serve model.onnx --name fraud": (
        "tests/e2e/test_serve_ports.py::test_a_second_server_on_busy_ports_fails_naming_the_port"
    ),
    "modelport serve fraud=model.onnx scorer=mypkg.models:Scorer": (
        "tests/e2e/test_cli.py::test_serve_every_artifact_kind_in_one_server"
    ),
    "modelport serve fraud --port 0 --grpc-port 0": _QUICKSTART,
    "modelport serve fraud --workers 4": (
        "tests/e2e/test_serve.py::test_new_connections_are_spread_over_the_workers"
    ),
    "modelport serve fraud --batching max_batch_rows=64,max_delay=500": (
        "tests/e2e/test_serve.py::test_batching_through_the_server"
    ),
    "modelport serve fraud iris --batching fraud:max_batch_rows=32": (
        "tests/e2e/test_serve.py::test_batching_through_the_server"
    ),
    # predict
    "modelport predict iris --data '[[5.1, 3.5, 1.4, 0.2]]'": _PREDICT,
    "modelport predict iris --data '{\"input\": [[5.1, 3.5, 1.4, 0.2]]}'": _PREDICT,
    "modelport predict iris --data @request.json --url http://127.0.0.1:9000 --version 2": (
        _PREDICT,
        _QUICKSTART,
    ),
    "MODELPORT_API_KEY=mpk_... modelport predict iris --data '[[5.1, 3.5, 1.4, 0.2]]'": _QUICKSTART,
    "modelport predict iris --data @req.json --url https://models.internal:8080 --ca ca.pem "
    "--cert client.pem --key client-key.pem": _MTLS,
    # keys
    "modelport keys create --role predictor --scope 'fraud-*' --name fraud-svc --expires 90d": RUN,
    "modelport keys create --role deployer --json": RUN,
    "modelport keys list": RUN,
    "modelport keys list --json": RUN,
    "modelport keys revoke 3f9a1c2b7d4e": "tests/e2e/test_keys_audit_cli.py::test_create_list_revoke",
    "modelport keys rotate-kek": RUN,
    # audit
    "modelport audit verify": RUN,
    "modelport audit list --since 24h --actor key:3f9a1c2b7d4e --action 'deny.*'": RUN,
    "modelport audit export audit.jsonl": RUN,
    "modelport audit export audit.jsonl --checkpoints checkpoints.jsonl": RUN,
    "modelport audit verify --checkpoints checkpoints.jsonl": RUN,
    "modelport audit checkpoint": RUN,
    # certs and TLS
    "modelport certs dev ./certs": RUN,
    "modelport certs dev ./certs --host models.internal --client-cn ci-runner --force": RUN,
    "export MODELPORT_SECURITY__AUTH__MTLS_IDENTITIES="
    '\'{"CN=modelport-dev-client,O=modelport development": ["predictor"]}\'': _MTLS,
    "modelport serve iris --tls-cert certs/server.pem --tls-key certs/server-key.pem "
    "--tls-ca certs/ca.pem &": _MTLS,
    "curl --retry-connrefused --retry 30 --retry-delay 1 --cacert certs/ca.pem "
    "--cert certs/client.pem --key certs/client-key.pem https://127.0.0.1:8080/v2/models/iris": _MTLS,
    # modelport controlplane
    "modelport controlplane": _CP_START,
    "modelport controlplane --host 0.0.0.0 --tls-cert server.pem --tls-key server-key.pem "
    "--tls-ca ca.pem": _CP + "test_https_with_a_client_certificate",
    'curl -X PUT http://127.0.0.1:8090/v1/deployments/fraud -H "Authorization: Bearer $KEY" '
    "-H 'Content-Type: application/yaml' --data-binary @deploy.yaml": _CP_APPLY,
    'curl -X POST http://127.0.0.1:8090/v1/deployments -H "Authorization: Bearer $KEY" '
    "-H 'Content-Type: application/yaml' --data-binary @deployments.yaml": _CP_APPLY,
    'curl http://127.0.0.1:8090/v1/deployments -H "Authorization: Bearer $KEY"': _CP_APPLY,
    'curl http://127.0.0.1:8090/v1/deployments/fraud -H "Authorization: Bearer $KEY"': _CP_APPLY,
    "curl -X DELETE http://127.0.0.1:8090/v1/deployments/fraud "
    '-H "Authorization: Bearer $KEY"': _CP_APPLY,
    "curl http://127.0.0.1:8090/v1/health/ready": _CP_START,
    # modelport up and modelport gateway
    "modelport up": _UP,
    "modelport up --workers 4 --port 8080": _UP,
    "modelport gateway --port 8080": _GATEWAY,
    'curl -s localhost:8080/v2/models/fraud/infer -H "Authorization: Bearer $KEY" '
    '-H \'X-User-Id: user-42\' -d \'{"inputs": [{"name": "input", "datatype": '
    '"FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}\'': _UP,
    "modelport serve fraud@3 fraud@4 --port 9001 --no-grpc --workers 1 &": _GATEWAY,
    "modelport serve fraud@3 fraud@4 --port 9002 --no-grpc --workers 1 &": _GATEWAY,
    "modelport apply -f fraud.yaml": _GATEWAY,
    "MODELPORT_GATEWAY__UPSTREAM_KEY=$GATEWAY_KEY modelport gateway --port 8080": _GATEWAY,
    # Benchmark
    "bench/run --write-results": f"{_HERE}::test_the_scripts_the_readme_names_exist",
    "bench/run --quick": f"{_HERE}::test_the_scripts_the_readme_names_exist",
}
"""Every README shell command: :data:`RUN`, or the tests (``path::name``) that cover it."""


def _strip_comment(line: str) -> str:
    """Drop a trailing ``# comment`` that is outside quotes."""
    quote = ""
    for i, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip()
    return line.rstrip()


def readme_commands(text: str) -> list[str]:
    """Return the commands of every ```bash block, in order, one per logical line."""
    commands: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        pending = ""
        for raw in block.splitlines():
            line = _strip_comment(raw)
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            command = " ".join((pending + line.strip()).split())
            pending = ""
            if command:
                commands.append(command)
    return commands


def test_commands_are_read_as_a_shell_would() -> None:
    text = (
        "```bash\na 'x # y' \\\n    --b  c   # note\n# only a comment\nd\n```\n```python\ne\n```\n"
    )
    assert readme_commands(text) == ["a 'x # y' --b c", "d"]


def test_every_readme_command_is_run_or_covered() -> None:
    commands = readme_commands(README.read_text(encoding="utf-8"))
    untested = [c for c in commands if c not in SNIPPETS]
    assert not untested, (
        "README commands neither run nor mapped to a test; add each to SNIPPETS in "
        f"{_HERE} (RUN, or the tests that cover it): {untested}"
    )
    stale = [c for c in SNIPPETS if c not in commands]
    assert not stale, f"SNIPPETS entries no longer in the README: {stale}"
    for command, covered in SNIPPETS.items():
        for ref in (covered,) if isinstance(covered, str) else covered:
            if ref == RUN:
                continue
            path, _, name = ref.partition("::")
            source = ROOT / path
            assert source.is_file(), f"{command!r}: {path} does not exist"
            assert re.search(rf"^def {name}\(", source.read_text(), re.M), (
                f"{command!r}: {ref} does not exist"
            )


def test_the_readme_links_only_to_files_in_the_repository() -> None:
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("https://", "#")):
            continue
        path = (ROOT / target.partition("#")[0]).resolve()
        assert path.is_relative_to(ROOT) and path.exists(), target
    # Files the README names in code spans (folders it names may be made at run time).
    for named in re.findall(r"`((?:docs|bench|scripts|examples|src|tests)/[\w./-]+\.\w+)`", text):
        assert (ROOT / named).exists(), named


def test_the_scripts_the_readme_names_exist() -> None:
    for script in ("scripts/quickstart", "scripts/test", "bench/run"):
        path = ROOT / script
        assert path.is_file() and os.access(path, os.X_OK), script
    bench = (ROOT / "bench" / "run").read_text()
    assert "--write-results" in bench and "--quick" in bench


def test_the_install_extras_exist() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert {"postgres", "xgboost", "lightgbm", "onnx", "tracing", "dev"} <= set(extras)
    assert "modelport[postgres,xgboost,lightgbm,onnx,tracing]" in extras["dev"]
    dependencies = " ".join(project["dependencies"])
    for core in ("scikit-learn", "onnxruntime"):
        assert core in dependencies


def _shell_env(home: Path) -> dict[str, str]:
    env = {**os.environ, "MODELPORT_HOME": str(home), "MODELPORT_USER": "readme"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env['PATH']}"
    env.pop("MODELPORT_DATABASE_URL", None)
    return env


def _shell(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder as the README's commands expect it, with ``fraud`` versions 1-3 registered."""
    work = tmp_path_factory.mktemp("readme")
    X, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), work / "model.joblib")
    np.save(work / "sample.npy", X[:8])
    (work / "train.parquet").write_bytes(b"PAR1 stands in for the training data PAR1")
    for git in (["init", "-q"], ["-c", "user.name=r", "-c", "user.email=r@x", "commit", "-q"]):
        extra = ["--allow-empty", "-m", "start"] if "commit" in git else []
        subprocess.run(["git", *git, *extra], cwd=work, check=True, capture_output=True)
    home = work / "home"
    for _ in range(3):
        done = modelport(home, "register", "fraud", str(work / "model.joblib"), "--no-compile")
        assert done.returncode == 0, done.stderr
    for alias, version in (("champion", "3"), ("challenger", "1")):
        assert modelport(home, "alias", "set", "fraud", alias, version).returncode == 0
    return work


def test_the_readme_commands_run_as_written(scratch: Path) -> None:
    env = _shell_env(scratch / "home")
    ran: set[str] = set()
    for command in readme_commands(README.read_text(encoding="utf-8")):
        if SNIPPETS.get(command) != RUN or command in ran:
            continue  # covered elsewhere, or already run (the TLS example repeats certs dev)
        ran.add(command)
        done = _shell(command, scratch, env)
        assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    assert ran == {c for c, covered in SNIPPETS.items() if covered == RUN}
    home = scratch / "home"
    version = json.loads(modelport(home, "models", "show", "fraud@champion").stdout)
    assert version["version"] == 4 and version["lineage"]["parent_version"] == 3
    assert version["lineage"]["code_version"] and version["tags"] == {"team": "risk"}
    assert json.loads(modelport(home, "models", "show", "fraud@2").stdout)["status"] == "archived"
    assert (scratch / "audit.jsonl").stat().st_size > 0
    assert (scratch / "certs" / "client.pem").is_file()


def test_the_quickstart_runs_and_its_models_are_listed_afterwards(tmp_path: Path) -> None:
    # A copy of the repository's layout: the quickstart keeps its data in ROOT/.quickstart.
    (tmp_path / "examples").mkdir()
    for script in ("quickstart.py", "_demo.py"):
        shutil.copy(ROOT / "examples" / script, tmp_path / "examples")
    (tmp_path / ".venv").symlink_to(VENV_BIN.parent)
    env = _shell_env(tmp_path / "unused")
    env.pop("MODELPORT_HOME")
    done = _shell(".venv/bin/python examples/quickstart.py", tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "deployment/iris created" in done.stdout and "without the key: 401" in done.stdout
    split = next(line for line in done.stdout.splitlines() if line.startswith("200 users"))
    assert "current (version 1)" in split and "champion (version 2)" in split
    assert "x-modelport-variant: " in done.stdout
    assert "MODELPORT_HOME=.quickstart modelport models list" in done.stdout
    listed = _shell(
        "source .venv/bin/activate\nMODELPORT_HOME=.quickstart modelport models list --json",
        tmp_path,
        env,
    )
    assert listed.returncode == 0, listed.stderr
    [iris] = json.loads(listed.stdout)
    assert (iris["name"], iris["latest_version"], iris["aliases"]) == ("iris", 3, {"champion": 2})
    shown = _shell("MODELPORT_HOME=.quickstart modelport models show iris@champion", tmp_path, env)
    assert shown.returncode == 0 and json.loads(shown.stdout)["version"] == 2


def test_mutual_tls_as_the_readme_shows_it(tmp_path: Path) -> None:
    """The TLS example on free ports: the subject it maps is the one ``certs dev`` writes."""
    text = README.read_text(encoding="utf-8")
    [mapping] = re.findall(r"^export MODELPORT_SECURITY__AUTH__MTLS_IDENTITIES='(.*)'$", text, re.M)
    made = make_dev_certs(tmp_path / "certs")
    assert list(json.loads(mapping)) == [made.client_subject]
    home = tmp_path / "home"
    X, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=500).fit(X, y), tmp_path / "iris.joblib")
    assert modelport(home, "register", "iris", str(tmp_path / "iris.joblib")).returncode == 0
    env = {"MODELPORT_HOME": str(home), "MODELPORT_SECURITY__AUTH__MTLS_IDENTITIES": mapping}
    tls = ["--tls-cert", str(made.server), "--tls-key", str(made.server_key)]
    context = ssl.create_default_context(cafile=str(made.ca))
    context.load_cert_chain(made.client, made.client_key)
    args = ["iris", *tls, "--tls-ca", str(made.ca), "--workers", "1"]
    with ServerProcess(args, env=env, auth=True, verify=context) as server:
        certs = ["--ca", str(made.ca), "--cert", str(made.client), "--key", str(made.client_key)]
        done = modelport(
            home, "predict", "iris", "--url", server.url, "--data", "[[5.1, 3.5, 1.4, 0.2]]", *certs
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["outputs"]["predict"] == [0]
        refused = modelport(
            home, "predict", "iris", "--url", server.url, "--data", "[[1, 2, 3, 4]]", *certs[:2]
        )
        assert refused.returncode != 0 and refused.stderr.startswith("error: ")


def test_the_feature_store_examples_run(tmp_path: Path) -> None:
    text = README.read_text()
    section = text[text.index("## Feature store") : text.index("## Security")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    for number, block in enumerate(blocks):
        script = tmp_path / f"example{number}.py"
        script.write_text(block)
        done = subprocess.run(
            [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
