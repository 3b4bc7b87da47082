"""gaia bench vcuda's real-GPU rows: unmeasured without a GPU (never estimated), and the
measuring plumbing (processes, ready/start handshake, configs, ratios) against a stand-in
worker that answers from the config it was given, as the torch worker would on a GPU."""
import json
import sys
import types

import pytest

from gaia_cli.bench import vcuda
from gaia_common.pb import types_pb2
from gaia_node.gpu_discovery import NodeGpus

# Answers as vcuda_torch.py does; its figures follow the vcuda.conf it was handed.
FAKE_WORKER = '''
import json, os, sys
path = os.environ.get("GAIA_VCUDA_CONFIG")
lines = open(path).read().splitlines() if path else []
cfg = dict(l.split("=", 1) for l in lines if "=" in l and not l.startswith("#"))
what = sys.argv[1]
if what == "probe":
    print(json.dumps({"cuda": True, "device": "Fake GPU", "torch": "0"}))
elif what == "train":
    print(json.dumps({"ready": True}), flush=True)
    start = float(sys.stdin.readline())
    preloaded = os.environ.get("LD_PRELOAD", "") == os.environ["EXPECT_LIB"]
    print(json.dumps({"steps": int(cfg.get("share", 100)) * 10, "seconds": float(sys.argv[2]),
                      "step_ms": 10.05 if preloaded else 10.0, "start": start}))
elif what == "overflow":
    ok = cfg.get("memory_limit") == sys.argv[2]
    print(json.dumps({"refused": ok, "after_ok": ok, "error": "CUDA out of memory"}))
'''


def rows(figures) -> dict:
    return {r["figure"]: r for r in figures["rows"]}


def test_without_a_gpu_every_real_row_is_unmeasured(monkeypatch):
    monkeypatch.setattr("gaia_node.gpu_discovery.discover", lambda nvml=None: NodeGpus())
    figures = vcuda.real_gpu_figures(seconds=1, repeats=1, python=sys.executable, gpu=0)
    assert [r["measured"] for r in figures["rows"]] == ["unmeasured (no GPU)"] * 4
    assert {r["met"] for r in figures["rows"]} == {"-"}
    text = vcuda.render({"real_gpu": figures})
    assert text.count("unmeasured (no GPU)") == 4


@pytest.fixture
def fake_gpu(tmp_path, monkeypatch):
    worker = tmp_path / "worker.py"
    worker.write_text(FAKE_WORKER)
    library = tmp_path / "libvcuda.so"
    library.write_text("")
    monkeypatch.setattr(vcuda, "WORKER", str(worker))
    monkeypatch.setattr(vcuda, "_library", lambda: str(library))
    monkeypatch.setenv("EXPECT_LIB", str(library))
    gpus = NodeGpus(gpus=[types_pb2.Gpu(index=0, model="Fake GPU")])
    monkeypatch.setattr("gaia_node.gpu_discovery.discover", lambda nvml=None: gpus)
    return types.SimpleNamespace(library=str(library))


def test_the_real_gpu_rows_are_measured_from_the_runs(fake_gpu):
    figures = vcuda.real_gpu_figures(seconds=1, repeats=2, python=sys.executable, gpu=0)
    got = rows(figures)
    assert figures["device"] == "Fake GPU" and figures["library"] == fake_gpu.library
    overhead = got["step_overhead_share_100"]
    assert overhead["measured"].startswith("+0.50%") and overhead["met"] is True
    assert overhead["ms_per_step_without"] == [10.0, 10.0] and overhead["ms_per_step_with"] == [10.05, 10.05]
    assert got["split_30_70"]["ratios"] == [300 / 700] * 2 and got["split_30_70"]["met"] is True
    assert got["split_10_90"]["measured"].startswith("0.111 (target 0.111")
    assert got["alloc_beyond_limit"]["met"] is True and "refused" in got["alloc_beyond_limit"]["measured"]
    json.dumps(figures)   # -o json prints it


def test_a_gpu_the_machine_lacks_is_unmeasured(fake_gpu):
    figures = vcuda.real_gpu_figures(seconds=1, repeats=1, python=sys.executable, gpu=3)
    assert {r["measured"] for r in figures["rows"]} == {"unmeasured (no GPU 3: this machine has 1)"}


def test_a_worker_that_dies_fails_its_row_and_not_the_others(fake_gpu, tmp_path, monkeypatch):
    broken = tmp_path / "broken.py"
    broken.write_text(FAKE_WORKER.replace('elif what == "train":', 'elif what == "train" and False:')
                      + 'else:\n    sys.exit("no CUDA for you")\n')
    monkeypatch.setattr(vcuda, "WORKER", str(broken))
    got = rows(vcuda.real_gpu_figures(seconds=1, repeats=1, python=sys.executable, gpu=0))
    assert got["split_30_70"]["measured"].startswith("failed (RuntimeError: a torch worker did not get ready")
    assert "no CUDA for you" in got["split_30_70"]["measured"] and got["split_30_70"]["met"] is False
    assert got["alloc_beyond_limit"]["met"] is True


def test_the_fake_driver_tables_are_printed_whatever_rows_they_have():
    figures = {"overhead": {"launch_ns": {"native_ns": 48.1, "whole_gpu_ns": 63.1}, "alloc_ns": {"error": "x"}},
               "share_accuracy": [{"mode": "hard", "target_pct": 10, "measured_pct": 9.93},
                                  {"mode": "elastic", "target_pct": 10, "measured_pct": 10.01, "partner_pct": 89.9}],
               "real_gpu": {"device": "none", "library": "none", "rows": []}}
    lines = vcuda.render(figures).splitlines()
    assert "launch_ns.whole_gpu_ns:  63.1" in lines and "alloc_ns.error:          x" in lines
    assert lines[lines.index("MODE     TARGET_PCT  MEASURED_PCT  PARTNER_PCT") + 2].split() == \
        ["elastic", "10", "10.01", "89.9"]
