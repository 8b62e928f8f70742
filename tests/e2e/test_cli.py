"""Every ``modelport`` command as a user runs it: a real process, a real data directory."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier

from modelport.testing import ServerProcess
from tests.e2e._cli import modelport
from tests.integration.echo_model import TYPES

pytestmark = pytest.mark.slow


def ok(home: Path, *args: str) -> str:
    done = modelport(home, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def fails(home: Path, code: int, fragment: str, *args: str) -> None:
    done = modelport(home, *args)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("work")
    X, y = load_iris(return_X_y=True)
    for depth in (1, 3):
        joblib.dump(
            DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X, y),
            work / f"tree{depth}.joblib",
        )
    np.save(work / "sample.npy", X[:4])
    (work / "train.csv").write_text("a,b\n1,2\n")
    (work / "broken.joblib").write_bytes(b"not a pickle at all")
    (work / "rows.json").write_text(json.dumps(X[:2].tolist()))
    return work


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Path:
    home = tmp_path_factory.mktemp("home")
    out = ok(
        home,
        "register",
        "tree",
        str(artifacts / "tree1.joblib"),
        "--sample",
        str(artifacts / "sample.npy"),
        "--tag",
        "team=risk",
        "--metric",
        "accuracy=0.66",
        "--description",
        "stump",
        "--training-data",
        str(artifacts / "train.csv"),
        "--code-version",
        "abc123",
    )
    assert "registered tree@1" in out
    out = ok(
        home,
        "register",
        "tree",
        str(artifacts / "tree3.joblib"),
        "--sample",
        str(artifacts / "sample.npy"),
        "--parent",
        "1",
    )
    assert "registered tree@2" in out
    return home


def test_models_list_and_show(home: Path) -> None:
    listed = json.loads(ok(home, "models", "list", "--json"))
    assert listed[0]["name"] == "tree" and listed[0]["latest_version"] == 2
    assert "tree" in ok(home, "models", "list")
    one = json.loads(ok(home, "models", "show", "tree@1"))
    assert one["tags"] == {"team": "risk"}
    assert one["metrics"] == {"accuracy": 0.66}
    assert one["description"] == "stump"
    assert one["lineage"]["registered_by"] == "alice"
    assert one["lineage"]["code_version"] == "abc123"
    assert one["lineage"]["training_data_digest"].startswith("sha256:")
    assert one["artifact"]["digest"].startswith("sha256:")
    assert one["signature"]["inputs"] == [{"name": "input", "datatype": "FP64", "shape": [-1, 4]}]
    assert json.loads(ok(home, "models", "show", "tree@2"))["lineage"]["parent_version"] == 1
    every = json.loads(ok(home, "models", "show", "tree", "--json"))
    assert [v["version"] for v in every] == [1, 2]
    assert "tree" not in modelport(home, "models", "show", "tree").stderr


def test_alias_set_move_history_and_archive_rules(home: Path) -> None:
    ok(home, "alias", "set", "tree", "champion", "1")
    assert "(was 1)" in ok(home, "alias", "set", "tree", "champion", "2")
    assert json.loads(ok(home, "models", "show", "tree@champion"))["version"] == 2
    history = json.loads(ok(home, "alias", "history", "tree", "--json"))
    assert [(e["previous_version"], e["version"], e["actor"]) for e in history][-2:] == [
        (None, 1, "alice"),
        (1, 2, "alice"),
    ]
    fails(home, 4, "champion", "models", "archive", "tree@2")
    ok(home, "alias", "set", "tree", "old", "1")
    ok(home, "alias", "remove", "tree", "old")
    assert "archived tree@1" in ok(home, "models", "archive", "tree@1")
    fails(home, 4, "archived", "alias", "set", "tree", "champion", "1")
    assert json.loads(ok(home, "models", "show", "tree@1"))["status"] == "archived"


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (("models", "show", "ghost"), 3, "ghost"),
        (("models", "show", "tree@7"), 3, "7"),
        (("models", "show", "tree@nosuch"), 3, "nosuch"),
        (("models", "show", "Bad Name"), 2, "invalid model name"),
        (("alias", "set", "tree", "Bad-Alias", "2"), 2, "invalid alias"),
        (("alias", "set", "tree", "champion", "9"), 3, "9"),
        (("alias", "set", "ghost", "champion", "1"), 3, "ghost"),
        (("models", "archive", "tree"), 2, "NAME@VERSION"),
        (("models", "archive", "tree@9"), 3, "9"),
        (("register", "tree", "missing.joblib"), 3, "missing.joblib"),
        (("register", "tree", "./missing.py:Model"), 3, "missing.py"),
        (("register", "tree", "{tree1}", "--sample", "missing.npy"), 3, "missing.npy"),
        (("register", "tree", "{tree1}", "--training-data", "missing.csv"), 3, "missing.csv"),
        (("register", "", "{tree1}"), 2, "invalid model name ''"),
        (("predict", "tree", "--data", "@missing.json"), 3, "missing.json"),
        (("predict", "tree", "--data", "[[1]]", "--ca", "missing-ca.pem"), 3, "missing-ca.pem"),
        (
            ("predict", "tree", "--data", "[[1]]", "--cert", "gone.pem", "--key", "gone-key.pem"),
            3,
            "gone.pem",
        ),
        (("serve", "served=./missing.onnx", "--port", "0", "--grpc-port", "0"), 3, "missing.onnx"),
        (("serve", "missing.onnx", "--port", "0", "--grpc-port", "0"), 3, "no such file"),
        (
            ("serve", "tree", "--tls-cert", "gone.pem", "--tls-key", "gone-key.pem", "--port", "0"),
            3,
            "--tls-cert 'gone.pem': no such file",
        ),
        (("register", "tree", "model.weird"), 2, "weird"),
        (("register", "tree", "{broken}"), 6, "broken.joblib"),
        (("register", "tree", "{tree1}", "--metric", "acc=high"), 2, "number"),
        (("register", "tree", "{tree1}", "--tag", "novalue"), 2, "KEY=VALUE"),
        (("register", "tree", "{tree1}", "--parent", "42"), 3, "42"),
        (
            ("predict", "tree", "--data", "[[1,2,3,4]]", "--url", "http://127.0.0.1:9"),
            5,
            "cannot reach",
        ),
        (("serve", "{tree1}"), 2, "--name"),
        (("serve", "ghost", "--port", "0", "--grpc-port", "0"), 3, "ghost"),
        (("serve", "tree@1", "--port", "0", "--grpc-port", "0"), 4, "archived"),
    ],
)
def test_errors_exit_non_zero_with_one_line(
    home: Path, artifacts: Path, args: tuple[str, ...], code: int, fragment: str
) -> None:
    paths = {"broken": str(artifacts / "broken.joblib"), "tree1": str(artifacts / "tree1.joblib")}
    resolved = [a.format(**paths) if a.startswith("{") else a for a in args]
    fragment = fragment.format(**paths)
    fails(home, code, fragment, *resolved)


def test_serve_registered_and_predict(home: Path, artifacts: Path) -> None:
    env = {"MODELPORT_HOME": str(home)}
    with ServerProcess(["tree@champion"], env=env) as server:
        out = json.loads(
            ok(
                home,
                "predict",
                "tree",
                "--url",
                server.url,
                "--data",
                f"@{artifacts / 'rows.json'}",
            )
        )
        assert out["model_version"] == "2"
        assert out["outputs"]["predict"] == [0, 0]
        named = json.loads(
            ok(
                home,
                "predict",
                "tree",
                "--url",
                server.url,
                "--data",
                '{"input": [[6.7, 3.0, 5.2, 2.3]]}',
            )
        )
        assert named["outputs"]["predict"] == [2]
        fails(home, 2, "[-1, 4]", "predict", "tree", "--url", server.url, "--data", "[[1, 2]]")
        fails(home, 3, "unknown model", "predict", "ghost", "--url", server.url, "--data", "[[1]]")
        fails(home, 2, "JSON", "predict", "tree", "--url", server.url, "--data", "[[1,")


def test_serving_a_pickle_directly_is_refused(home: Path, artifacts: Path) -> None:
    # Unpickling runs code: a joblib file is served only from a signed registration.
    pickle = str(artifacts / "tree3.joblib")
    fails(home, 2, "modelport register direct", "serve", pickle, "--name", "direct", "--port", "0")
    fails(home, 2, "unpickling runs code", "serve", f"direct={pickle}", "--port", "0")


def test_serve_every_artifact_kind_in_one_server(home: Path, tmp_path: Path) -> None:
    import lightgbm
    import xgboost

    X, y = load_iris(return_X_y=True)
    booster = xgboost.train(
        {"objective": "multi:softprob", "num_class": 3}, xgboost.DMatrix(X, y), 5
    )
    booster.save_model(tmp_path / "iris.json")
    booster.save_model(tmp_path / "iris.ubj")
    lgbm = lightgbm.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1}, lightgbm.Dataset(X, y), 5
    )
    lgbm.save_model(tmp_path / "iris.txt")
    args = [
        f"xgb-json={tmp_path / 'iris.json'}",
        f"xgb-ubj={tmp_path / 'iris.ubj'}",
        f"lgbm={tmp_path / 'iris.txt'}",
        "echo=tests.integration.echo_model:EchoJson",
        "champ=tree@2",
    ]
    with ServerProcess(args, env={"MODELPORT_HOME": str(home)}) as server:
        row = "[[6.7, 3.0, 5.2, 2.3]]"
        for name in ("xgb-json", "xgb-ubj", "lgbm"):
            out = json.loads(ok(home, "predict", name, "--url", server.url, "--data", row))
            assert np.argmax(out["outputs"]["predict"][0]) == 2
        assert json.loads(ok(home, "predict", "champ", "--url", server.url, "--data", row))[
            "outputs"
        ]["predict"] == [2]
        inputs = [
            {
                "name": t.lower(),
                "datatype": t,
                "shape": [1, 1],
                "data": [True if t == "BOOL" else "x" if t == "BYTES" else 1],
            }
            for t in TYPES
        ]
        echo = json.loads(
            ok(
                home,
                "predict",
                "echo",
                "--url",
                server.url,
                "--data",
                json.dumps({"inputs": inputs}),
            )
        )
        assert echo["outputs"]["bytes_out"] == [["x"]]
        assert echo["outputs"]["bool_out"] == [[True]]


def test_tampered_artifact_is_refused(tmp_path: Path, artifacts: Path) -> None:
    home = tmp_path / "home"
    ok(home, "register", "tree", str(artifacts / "tree1.joblib"))
    digest = json.loads(ok(home, "models", "show", "tree@1"))["artifact"]["digest"]
    hexdigest = digest.removeprefix("sha256:")
    stored = home / "artifacts" / "models" / "tree" / "1" / f"{hexdigest}.sealed"
    stored.chmod(0o644)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    fails(home, 6, "tree1.joblib", "serve", "tree", "--port", "0", "--grpc-port", "0")


@pytest.mark.parametrize(
    ("filename", "content", "framework"),
    [
        ("bad.txt", "not a LightGBM model\n", "LightGBM"),
        ("bad.json", '{"not": "an xgboost model"}', "XGBoost"),
        ("bad.ubj", "\x00\x01garbage", "XGBoost"),
    ],
)
def test_framework_noise_never_precedes_the_one_line_error(
    tmp_path: Path, filename: str, content: str, framework: str
) -> None:
    # LightGBM prints "[LightGBM] [Fatal] ..." itself before raising; only our line may show.
    bad = tmp_path / filename
    bad.write_text(content)
    done = modelport(tmp_path / "home", "register", "bad", str(bad))
    assert done.returncode == 6, done
    assert done.stdout == ""
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert framework in done.stderr


def test_a_failed_registration_is_audited(tmp_path: Path, artifacts: Path) -> None:
    home = tmp_path / "home"
    fails(home, 2, "invalid model name ''", "register", "", str(artifacts / "tree1.joblib"))
    fails(home, 3, "missing.joblib", "register", "tree", "missing.joblib")
    tree1 = str(artifacts / "tree1.joblib")
    fails(home, 3, "missing.npy", "register", "tree", tree1, "--sample", "missing.npy")
    fails(home, 6, "broken.joblib", "register", "tree", str(artifacts / "broken.joblib"))
    listed = json.loads(ok(home, "audit", "list", "--json"))
    assert [e["outcome"] for e in listed] == ["started", "failed"] * 4
    entries = [e for e in listed if e["outcome"] == "failed"]
    assert [(e["actor"], e["action"], e["target"], e["outcome"]) for e in entries] == [
        ("alice", "model.register", "''", "failed"),
        ("alice", "model.register", "tree", "failed"),
        ("alice", "model.register", "tree", "failed"),
        ("alice", "model.register", "tree", "failed"),
    ]
    errors = [e["details"]["error"] for e in entries]
    assert "invalid model name" in errors[0] and "missing.joblib" in errors[1]
    assert "missing.npy" in errors[2] and "broken.joblib" in errors[3]
    assert "audit log intact" in ok(home, "audit", "verify")
