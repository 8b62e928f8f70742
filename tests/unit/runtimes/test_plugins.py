"""Third-party runtimes found through the ``modelport.runtimes`` entry-point group.

A real distribution is stood in for by a ``*.dist-info`` folder on ``sys.path``: that is all
``importlib.metadata`` reads, exactly as it reads an installed wheel's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from modelport.core.datatypes import Datatype
from modelport.core.errors import ConfigError, DependencyMissing
from modelport.core.inference import InferenceRequest, Tensor
from modelport.core.settings import RuntimeSettings
from modelport.runtimes import catalog
from modelport.runtimes.base import ModelRuntime
from modelport.runtimes.catalog import ENTRY_POINT_GROUP, plugin_runtimes, runtime_class
from modelport.service.dataplane import DataPlane
from modelport.service.models import ModelRepository, ModelSource

PLUGIN = """
from modelport.core.datatypes import Datatype
from modelport.core.signature import Signature, TensorSpec
from modelport.runtimes.base import ModelRuntime


class TripleRuntime(ModelRuntime):
    framework = "triple"
    platform = "triple_platform"

    def load(self):
        self._signature = Signature(
            inputs=(TensorSpec("x", Datatype.FP64, (-1,)),),
            outputs=(TensorSpec("y", Datatype.FP64, (-1,)),),
        )

    def predict(self, inputs, outputs):
        return {"y": inputs["x"] * 3}

    def unload(self):
        self._signature = None


class NotARuntime:
    pass
"""


def install(folder: Path, dist: str, entries: dict[str, str]) -> None:
    """Write ``dist``'s module and a dist-info declaring ``entries`` into ``folder``."""
    (folder / f"{dist}.py").write_text(PLUGIN)
    info = folder / f"{dist}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{lines}\n")


@pytest.fixture()
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    install(
        tmp_path,
        "mp_plugin_dist",
        {
            "triple": "mp_plugin_dist:TripleRuntime",
            "broken": "mp_plugin_dist:NotARuntime",
            "absent": "mp_plugin_absent_module:Runtime",
            "onnx": "mp_plugin_dist:TripleRuntime",  # cannot replace a built-in
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.usefixtures("plugin")
def test_a_declared_runtime_is_found_by_name() -> None:
    cls = runtime_class("triple")
    assert issubclass(cls, ModelRuntime)
    assert cls.__module__ == "mp_plugin_dist"
    assert plugin_runtimes()["triple"] == ("mp_plugin_dist:TripleRuntime", "mp_plugin_dist")


@pytest.mark.usefixtures("plugin")
def test_a_plugin_cannot_replace_a_built_in_runtime() -> None:
    assert "onnx" not in plugin_runtimes()
    assert runtime_class("onnx").__module__ == "modelport.runtimes.onnx"


@pytest.mark.usefixtures("plugin")
def test_bad_plugin_targets_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="mp_plugin_dist:NotARuntime is not a ModelRuntime"):
        runtime_class("broken")
    with pytest.raises(DependencyMissing, match="reinstall mp_plugin_dist, which declares it"):
        runtime_class("absent")


@pytest.mark.usefixtures("plugin")
def test_unknown_names_list_plugins_too() -> None:
    with pytest.raises(ConfigError, match="unknown runtime 'nope'.*python, sklearn, triple"):
        runtime_class("nope")


def test_without_the_plugin_the_name_is_unknown() -> None:
    with pytest.raises(ConfigError, match="unknown runtime 'triple'"):
        runtime_class("triple")


@pytest.mark.usefixtures("plugin")
def test_a_plugin_runtime_serves_through_the_data_plane() -> None:
    repository = ModelRepository(RuntimeSettings())
    repository.add(ModelSource(name="t", version="1", framework="triple", artifact=None))
    repository.load_all()
    plane = DataPlane(repository)
    x = np.array([1.0, 2.0])
    request = InferenceRequest(inputs=[Tensor("x", Datatype.FP64, x.shape, x)])
    response = asyncio.run(plane.infer("t", None, request))
    np.testing.assert_array_equal(response.outputs[0].data, [3.0, 6.0])
    assert plane.model_metadata("t", None)["platform"] == "triple_platform"


def test_built_in_lookups_do_not_read_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail() -> None:
        raise AssertionError("entry points read for a built-in name")

    monkeypatch.setattr(catalog, "plugin_runtimes", fail)
    assert runtime_class("python").framework == "python"
