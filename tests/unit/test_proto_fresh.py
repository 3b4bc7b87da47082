"""The generated code in gaia_common/pb must be what proto/*.proto generates today.

If this fails after editing a .proto file, run `python -m gaia_common.protogen` and commit
the result (with the grpcio-tools version pinned in setup.cfg's test extra).
"""
import shutil

import pytest

from gaia_common import protogen


def test_generated_code_is_fresh():
    stale = protogen.stale_files()
    assert stale == [], (f"gaia_common/pb is stale ({', '.join(stale)}): "
                         "run `python -m gaia_common.protogen`")


@pytest.fixture
def pb_copy(tmp_path, monkeypatch):
    """A copy of gaia_common/pb that protogen compares against instead of the real one."""
    copy = tmp_path / "pb"
    shutil.copytree(protogen.OUT_DIR, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(protogen, "OUT_DIR", copy)
    return copy


def test_copy_is_fresh(pb_copy):
    assert protogen.stale_files() == []


def test_detects_an_edited_generated_file(pb_copy):
    path = pb_copy / "types_pb2.py"
    path.write_text(path.read_text() + "# edited by hand\n")
    assert protogen.stale_files() == ["types_pb2.py"]


def test_detects_a_missing_generated_file(pb_copy):
    (pb_copy / "node_pb2_grpc.py").unlink()
    assert protogen.stale_files() == ["node_pb2_grpc.py"]


def test_detects_a_leftover_file(pb_copy):
    (pb_copy / "old_pb2.py").write_text("# from a .proto that is gone\n")
    assert protogen.stale_files() == ["old_pb2.py"]


def test_detects_an_edited_proto(pb_copy, tmp_path, monkeypatch):
    protos = tmp_path / "proto"
    shutil.copytree(protogen.PROTO_DIR, protos)
    types = protos / "types.proto"
    types.write_text(types.read_text().replace(
        "  int64 gpu_memory_bytes = 9;\n", "  int64 gpu_memory_bytes = 9;\n  int64 fpga_count = 10;\n"))
    assert "fpga_count" in types.read_text()
    monkeypatch.setattr(protogen, "PROTO_DIR", protos)
    stale = protogen.stale_files()
    assert "types_pb2.py" in stale and "types_pb2.pyi" in stale
    assert "master_pb2.py" not in stale


def test_generated_imports_are_package_relative():
    for path in protogen.OUT_DIR.glob("*_pb2*.py"):
        text = path.read_text()
        assert "\nimport types_pb2" not in text, path.name
    from gaia_common.pb import master_pb2, node_pb2  # noqa: F401  (imports resolve inside the package)
