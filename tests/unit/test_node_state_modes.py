"""Secrets at rest on a node: an AM's container record carries its etcd password (in the env)
and its TLS bundle is written beside it; none of it is readable by anyone but the node's user."""
import os
import stat

from gaia_common.pb import types_pb2
from gaia_node import state
from tests.unit.test_node_table import spec, table


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_an_am_records_and_certificate_are_private(tmp_path):
    old = os.umask(0o022)   # the usual umask: files would be 0644 and directories 0755 by default
    try:
        check_am_start(tmp_path)
    finally:
        os.umask(old)


def check_am_start(tmp_path):
    containers, _ = table(tmp_path)
    am = spec("app.am.1", is_am=True, tls=types_pb2.TlsBundle(ca_pem=b"CA", cert_pem=b"CERT", key_pem=b"KEY"))
    am.env["GAIA_ETCD_PASSWORD"] = "s3cret"
    containers.start(am)
    directory = tmp_path / "containers" / "app.am.1"
    record = directory / state.RECORD
    assert "s3cret" in record.read_text()                 # the record is what must be kept private
    assert mode(record) == 0o600
    assert mode(directory) == 0o700 and mode(tmp_path / "containers") == 0o700
    assert mode(directory / "tls") == 0o700
    assert {mode(f) for f in (directory / "tls").iterdir()} == {0o600}
    assert [p.name for p in directory.rglob("*") if stat.S_IMODE(p.stat().st_mode) & 0o077] == []


def test_json_state_files_are_0600_even_over_an_old_one(tmp_path):
    path = tmp_path / "launch.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    stale_tmp = tmp_path / f"launch.json.tmp.{os.getpid()}"     # left by a crash, world-readable
    stale_tmp.write_text("")
    os.chmod(stale_tmp, 0o644)
    state.write_json_atomic(str(path), {"env": {"GAIA_ETCD_PASSWORD": "x"}})
    assert mode(path) == 0o600 and state.read_json(str(path)) == {"env": {"GAIA_ETCD_PASSWORD": "x"}}


def test_an_existing_container_directory_is_made_private(tmp_path):
    dirs = state.ContainerDirs(str(tmp_path))
    (tmp_path / "containers" / "c.0.1").mkdir(parents=True, mode=0o755)
    os.chmod(tmp_path / "containers" / "c.0.1", 0o755)
    assert mode(dirs.create("c.0.1")) == 0o700
