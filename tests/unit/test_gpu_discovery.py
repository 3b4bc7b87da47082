"""GPU discovery: NVML's pair matrix made into the link tree the scheduler chooses GPU sets from.

The topology tests build the tree from sample 8-GPU matrices and check what
gaia_master/sfair/gpu_topology.py then picks; the NVML tests run discovery against a fake
pynvml module (the functions it calls, answering from a described machine).
"""
import itertools
import types

import numpy as np
import pytest

from gaia_master.sfair import gpu_topology as topo
from gaia_node import gpu_discovery
from gaia_node.gpu_discovery import NodeGpus, discover, link_paths, node_gpus

GiB = 1 << 30


def matrix(g: int, links: dict, default="SYS") -> list:
    """[g][g] level names from {(a, b): level}."""
    out = [[default] * g for _ in range(g)]
    for (a, b), level in links.items():
        out[a][b] = out[b][a] = level
    return out


def dgx1() -> list:
    """A DGX-1 (V100): two fully NVLinked quads, a hybrid cube mesh across them (0-4, 1-5,
    2-6, 3-7), everything else across the sockets."""
    links = {}
    for quad in ((0, 1, 2, 3), (4, 5, 6, 7)):
        for a, b in itertools.combinations(quad, 2):
            links[(a, b)] = "NV2" if (a + b) % 2 else "NV1"
    for a in range(4):
        links[(a, a + 4)] = "NV2"
    return matrix(8, links)


def mixed() -> list:
    """Every PCIe level and an NVLink pair, as a tree would have them (so the tree is exact):
    socket 0: 0-1 NVLink (one switch), 2 on that switch, 3 behind another switch of the same
    PCIe tree; socket 1: 4-5 and 6-7 on two switches of one host bridge."""
    links = {(0, 1): "NV1", (0, 2): "PIX", (1, 2): "PIX", (4, 5): "PIX", (6, 7): "PIX"}
    for a in (0, 1, 2):
        links[(a, 3)] = "PXB"
    for a, b in itertools.product((4, 5), (6, 7)):
        links[(a, b)] = "PHB"
    return matrix(8, links)


def node_of(paths, memory=16 * GiB) -> topo.NodeGpus:
    return topo.NodeGpus([topo.Gpu(i, "V100", memory, p) for i, p in enumerate(paths)])


def costs(m) -> np.ndarray:
    rank = {name: topo.LEVEL_COST[name] for name in topo.LEVELS}
    out = np.array([[0 if a == b else rank["NV" if m[a][b].startswith("NV") else m[a][b]]
                     for b in range(len(m))] for a in range(len(m))])
    return out


# ---- the tree ----

def test_dgx1_forms_its_two_nvlink_quads():
    paths = link_paths(dgx1())
    assert paths[:4] == ["SYS:0/NV:0"] * 4 and paths[4:] == ["SYS:0/NV:1"] * 4
    node = node_of(paths)
    assert topo.choose_whole(node, 4) == (0, 1, 2, 3)
    assert topo.choose_whole(node, 8) == tuple(range(8))
    assert topo.choose_whole(node, 3) == (0, 1, 2)     # an NVLinked triple, not one across sockets
    topo.hold(node, 100, 0, [(0, 1, 2, 3)])
    assert topo.choose_whole(node, 4) == (4, 5, 6, 7)
    assert topo.choose_whole(node, 2) == (4, 5)
    assert topo.choose_whole(node, 5) is None


def test_quads_are_found_whatever_the_numbering():
    # the same machine numbered so each GPU's cube-mesh partner is its neighbour (0-1, 2-3...):
    # merging the lowest linked pair first would pair across the sockets and lose both quads
    order = [0, 4, 1, 5, 2, 6, 3, 7]          # new index -> DGX-1 index
    m = dgx1()
    renumbered = [[m[order[a]][order[b]] for b in range(8)] for a in range(8)]
    paths = link_paths(renumbered)
    assert [paths[i] for i in (0, 2, 4, 6)] == ["SYS:0/NV:0"] * 4
    assert [paths[i] for i in (1, 3, 5, 7)] == ["SYS:0/NV:1"] * 4
    assert topo.choose_whole(node_of(paths), 4) == (0, 2, 4, 6)


def test_the_tree_never_claims_a_better_link_than_the_matrix():
    # the cube mesh's cross links (0-4...) cannot all sit in a tree: they count as SYS there
    for m in (dgx1(), mixed()):
        tree = topo.link_costs(tuple(link_paths(m)))
        assert (tree >= costs(m)).all()
    tree = topo.link_costs(tuple(link_paths(dgx1())))
    assert tree[0, 4] == topo.LEVEL_COST["SYS"] and tree[0, 3] == topo.LEVEL_COST["NV"]


def test_a_matrix_that_is_a_tree_is_kept_exactly():
    m = mixed()
    paths = link_paths(m)
    assert paths == ["SYS:0/PXB:0/PIX:0/NV:0", "SYS:0/PXB:0/PIX:0/NV:0", "SYS:0/PXB:0/PIX:0", "SYS:0/PXB:0",
                     "SYS:0/PHB:1/PIX:0", "SYS:0/PHB:1/PIX:0", "SYS:0/PHB:1/PIX:1", "SYS:0/PHB:1/PIX:1"]
    assert (topo.link_costs(tuple(paths)) == costs(m)).all()


def test_sets_chosen_on_the_mixed_machine():
    node = node_of(link_paths(mixed()))
    assert topo.choose_whole(node, 2) == (0, 1)          # the only NVLinked pair
    assert topo.choose_whole(node, 3) == (0, 1, 2)       # one switch
    assert topo.choose_whole(node, 4) == (0, 1, 2, 3)    # PXB beats PHB
    # a fraction goes where it breaks up the least: GPU 3, alone behind its switch
    assert topo.choose_fraction(node, 30) == 3
    topo.hold(node, 30, 4 * GiB, [(3,)])
    assert topo.choose_fraction(node, 50, 8 * GiB) == 3   # packed onto the partly used GPU
    topo.hold(node, 50, 8 * GiB, [(3,)])
    assert topo.choose_fraction(node, 30) != 3            # 80 used: 30 no longer fits there
    assert topo.choose_whole(node, 4) == (4, 5, 6, 7)     # 3 is taken: the other socket


def test_bad_matrices_name_the_pair():
    m = mixed()
    m[2][5] = "PIX"
    with pytest.raises(ValueError, match="not symmetric at GPUs 2 and 5"):
        link_paths(m)
    with pytest.raises(ValueError, match="GPUs 0 and 1: 'QPI'"):
        link_paths([["X", "QPI"], ["QPI", "X"]])


def test_single_and_no_gpu():
    assert link_paths([["X"]]) == ["SYS:0"]
    assert link_paths([]) == []


# ---- NVML ----

class FakeNvml:
    """The pynvml functions discovery calls. `ancestors` [G][G] of NVML topology values;
    `nvlinks` {gpu: [remote bus ids]} of its active links."""
    NVML_FEATURE_ENABLED = 1
    NVML_NVLINK_MAX_LINKS = 6

    class Error(Exception):
        pass

    def __init__(self, names, ancestors, nvlinks=None, memory=80 * GiB, minors=None, fail=None):
        self.names, self.ancestors, self.nvlinks = names, ancestors, nvlinks or {}
        self.memory, self.minors, self.fail = memory, minors, fail or {}
        self.shut = False

    def _maybe_fail(self, name):
        if name in self.fail:
            raise self.Error(self.fail[name])

    def bus(self, i):
        return f"00000000:{0x10 + i:02X}:00.0"

    def nvmlInit(self):
        self._maybe_fail("init")

    def nvmlShutdown(self):
        self.shut = True

    def nvmlDeviceGetCount(self):
        return len(self.names)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        self._maybe_fail("name")
        return self.names[h].encode()     # older pynvml: bytes

    def nvmlDeviceGetMemoryInfo(self, h):
        return types.SimpleNamespace(total=self.memory, used=0, free=self.memory)

    def nvmlDeviceGetUUID(self, h):
        return f"GPU-{h:08x}"

    def nvmlDeviceGetMinorNumber(self, h):
        if self.minors is None:
            raise self.Error("not supported")
        return self.minors[h]

    def nvmlDeviceGetPciInfo(self, h):
        return types.SimpleNamespace(busId=self.bus(h).encode())

    def nvmlDeviceGetTopologyCommonAncestor(self, a, b):
        return self.ancestors[a][b]

    def nvmlDeviceGetNvLinkState(self, h, link):
        if h not in self.nvlinks:
            raise self.Error("NVLink not supported")
        if link >= len(self.nvlinks[h]):
            raise self.Error("invalid argument")
        return 1

    def nvmlDeviceGetNvLinkRemotePciInfo(self, h, link):
        return types.SimpleNamespace(busId=self.nvlinks[h][link])


SINGLE, MULTIPLE, HOSTBRIDGE, NODE, SYSTEM = 10, 20, 30, 40, 50


def pcie_box():
    """4 GPUs: 0-1 on one switch, 2-3 on another, both switches under one host bridge."""
    a = [[0] * 4 for _ in range(4)]
    for x, y in itertools.permutations(range(4), 2):
        a[x][y] = SINGLE if x // 2 == y // 2 else HOSTBRIDGE
    return a


def test_discovery_reads_models_memory_uuids_minors_and_the_pcie_tree():
    nvml = FakeNvml(["NVIDIA A100-SXM4-80GB"] * 4, pcie_box(), minors=[0, 1, 3, 2])
    found = discover(nvml)
    assert found.source == "nvml" and nvml.shut
    assert [g.index for g in found.gpus] == [0, 1, 2, 3]
    assert found.gpus[0].model == "NVIDIA A100-SXM4-80GB" and found.gpus[3].memory_bytes == 80 * GiB
    assert found.gpus[2].uuid == "GPU-00000002" and found.minor(2) == 3
    assert [g.link_path for g in found.gpus] == ["SYS:0/PHB:0/PIX:0"] * 2 + ["SYS:0/PHB:0/PIX:1"] * 2


def test_nvlink_pairs_and_nvswitches_make_nv_links():
    nvml = FakeNvml(["H100"] * 4, pcie_box())
    nvml.nvlinks = {0: [nvml.bus(2)], 2: [nvml.bus(0)]}       # a bridge across the two switches
    paths = [g.link_path for g in discover(nvml).gpus]
    assert topo.link_costs(tuple(paths))[0, 2] == topo.LEVEL_COST["NV"]
    assert topo.link_costs(tuple(paths))[0, 1] == topo.LEVEL_COST["PHB"]  # a tree: 0 went with 2
    switch = "00000000:C0:00.0"                                           # not a GPU: an NVSwitch
    nvml.nvlinks = {i: [switch, "00000000:C1:00.0"] for i in range(4)}
    paths = [g.link_path for g in discover(nvml).gpus]
    assert set(paths) == {"SYS:0/NV:0"}


def test_no_driver_no_pynvml_or_a_failure_mean_no_gpus(monkeypatch):
    found = discover(FakeNvml(["A100"], [[0]], fail={"init": "Driver Not Loaded"}))
    assert not found and found.gpus == [] and "Driver Not Loaded" in found.error
    failing = FakeNvml(["A100", "A100"], pcie_box(), fail={"name": "GPU is lost"})
    found = discover(failing)
    assert not found and "GPU is lost" in found.error and failing.shut
    monkeypatch.setitem(__import__("sys").modules, "pynvml", None)   # import fails
    found = discover()
    assert not found and "pynvml" in found.error


def test_minor_numbers_default_to_the_index():
    found = discover(FakeNvml(["T4"] * 2, [[0, SYSTEM], [SYSTEM, 0]]))
    assert found.minor(1) == 1 and [g.link_path for g in found.gpus] == ["SYS:0", "SYS:0"]


def test_declared_gpus_win_over_nvml():
    nvml = FakeNvml(["H100"] * 8, [[SYSTEM] * 8 for _ in range(8)])
    cfg = types.SimpleNamespace(gpus=[{"model": "A100", "memory": "40Gi", "link_path": "SYS:0/PIX:0"}])
    found = node_gpus(cfg, nvml)
    assert found.source == "declared" and [g.model for g in found.gpus] == ["A100"]
    found = node_gpus(types.SimpleNamespace(gpus=[]), nvml)
    assert found.source == "nvml" and len(found.gpus) == 8


def test_sharing_needs_gpus_and_the_library(monkeypatch):
    vcuda = types.SimpleNamespace(available=lambda: True)
    monkeypatch.setitem(__import__("sys").modules, "gaia_node.vcuda", vcuda)
    monkeypatch.setattr("gaia_node.vcuda", vcuda, raising=False)
    gpus = NodeGpus(gpus=discover(FakeNvml(["A100"], [[0]])).gpus)
    assert gpu_discovery.sharing_available(gpus)
    assert not gpu_discovery.sharing_available(NodeGpus())
    vcuda.available = lambda: False
    assert not gpu_discovery.sharing_available(gpus)
