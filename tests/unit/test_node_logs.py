"""gaia_node.logs over files (what the shim writes), and the engine's timestamped entries."""
import threading
import time

from gaia_node import logs
from gaia_node.drivers.docker import parse_time


def collect(directory, **kw):
    out = {"stdout": b"", "stderr": b""}
    kw.setdefault("ended", lambda: True)
    kw.setdefault("active", lambda: True)
    for stream, data in logs.read(directory=str(directory), driver=None, handle=None, **kw):
        out[stream] += data
    return out


def test_everything_or_the_tail_of_each_stream(tmp_path):
    (tmp_path / "stdout").write_bytes(b"one\ntwo\nthree\n")
    (tmp_path / "stderr").write_bytes(b"oops\n")
    assert collect(tmp_path) == {"stdout": b"one\ntwo\nthree\n", "stderr": b"oops\n"}
    assert collect(tmp_path, tail_bytes=6) == {"stdout": b"three\n", "stderr": b"oops\n"}


def test_missing_files_are_empty(tmp_path):
    assert collect(tmp_path) == {"stdout": b"", "stderr": b""}


def test_follow_sees_new_output_and_ends_with_the_container(tmp_path):
    out = tmp_path / "stdout"
    out.write_bytes(b"a\n")
    ended = threading.Event()

    def writer():
        time.sleep(0.3)
        with open(out, "ab") as f:
            f.write(b"b\n")
        time.sleep(0.3)
        with open(out, "ab") as f:
            f.write(b"c\n")
        ended.set()   # written before the end: a follower must still get it

    threading.Thread(target=writer).start()
    began = time.monotonic()
    got = collect(tmp_path, follow=True, ended=ended.is_set)
    assert got["stdout"] == b"a\nb\nc\n"
    assert time.monotonic() - began < 5


def test_follow_stops_when_the_reader_goes(tmp_path):
    began = time.monotonic()
    deadline = began + 0.5
    collect(tmp_path, follow=True, ended=lambda: False, active=lambda: time.monotonic() < deadline)
    assert time.monotonic() - began < 2


def test_engine_entries_split_and_compare_exactly():
    chunks = [b"2026-11-22T21:30:00.000000001Z hel", b"lo\n2026-11-22T21:30:00.5Z world\n"]
    entries = list(logs._entries(chunks))
    assert [data for _, data in entries] == [b"hello\n", b"world\n"]
    assert entries[0][0] < entries[1][0]
    assert entries[1][0][1] == 500_000_000


def test_engine_times():
    assert parse_time("0001-01-01T00:00:00Z") == 0.0
    assert abs(parse_time("2026-11-22T21:30:00.123456789Z") - 1795383000.123456789) < 1e-6
