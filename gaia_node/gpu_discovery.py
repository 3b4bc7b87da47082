"""The node's GPUs: declared in node.yaml, else discovered through NVML (nvidia-ml-py).

Discovery reads each GPU's model, memory, uuid and device minor number, and the link between
every pair: the PCIe level NVML's nvmlDeviceGetTopologyCommonAncestor reports (same board or
one switch: PIX, several switches: PXB, one host bridge: PHB, one NUMA node: NODE, across
sockets: SYS), made NV where the two GPUs share an NVLink (directly, or through the same
NVSwitch). The scheduler wants a tree (gaia_master/sfair/gpu_topology.py: each GPU's
`link_path` "SYS:0/PHB:1/PXB:0/PIX:1", two GPUs costing the level of their deepest shared
ancestor), so `link_paths` turns the pair matrix into one.

A matrix need not be a tree: a DGX-1's hybrid cube mesh links GPU 0 by NVLink to 1, 2, 3 and
4, yet 1 and 4 only meet across the sockets. The tree is built by complete linkage, level by
level from the cheapest: two groups merge at a level only when every pair across them is
linked at that level or better. So the tree never claims a better link than the hardware has
(0 and 4 above cost SYS in the tree though NVLink joins them); it may claim a worse one.

Declared `gpus:` in node.yaml win over discovery (an operator can describe what NVML cannot,
or hide GPUs); no driver, no pynvml, or any NVML error while listing them means no GPUs, never
a failed start.
"""
import dataclasses
import logging
from typing import Optional, Sequence

from gaia_common.pb import types_pb2
from gaia_node import gpus as declared_gpus

log = logging.getLogger("gaia.node.gpus")

LEVELS = declared_gpus.LEVELS                      # NV, PIX, PXB, PHB, NODE, SYS: cheapest first
RANK = {name: i for i, name in enumerate(LEVELS)}
# nvmlGpuTopologyLevel_t -> our level. INTERNAL (0): two GPUs on one board, behind its own switch.
NVML_LEVELS = {0: "PIX", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}
NVLINK_MAX_LINKS = 18          # NVML_NVLINK_MAX_LINKS of recent drivers; older ones stop sooner


@dataclasses.dataclass
class NodeGpus:
    """What the node knows of its GPUs: the messages it reports, and the device minor of each
    (/dev/nvidia<minor>, what a container is given), by GPU index."""
    gpus: list = dataclasses.field(default_factory=list)       # types_pb2.Gpu, index 0..
    minors: dict = dataclasses.field(default_factory=dict)     # index -> device minor number
    source: str = ""            # "declared" | "nvml" | "" (none)
    error: str = ""             # why discovery found none, when it tried

    def __bool__(self) -> bool:
        return bool(self.gpus)

    def minor(self, index: int) -> int:
        return self.minors.get(index, index)


def node_gpus(cfg, nvml=None) -> NodeGpus:
    """The node's GPUs: node.yaml's `gpus:` when given (ConfigError on a bad entry), else NVML's."""
    if getattr(cfg, "gpus", None):
        found = declared_gpus.declared(cfg.gpus)
        return NodeGpus(gpus=found, minors={g.index: g.index for g in found}, source="declared")
    return discover(nvml)


def sharing_available(found: NodeGpus) -> bool:
    """NodeInfo.gpu_sharing: the node has GPUs and libvcuda is built (or builds) here."""
    if not found:
        return False
    try:
        from gaia_node import vcuda
        return bool(vcuda.available())
    except Exception as e:  # the package or its build is missing: sharing is off, the node runs
        log.warning("GPU sharing unavailable: libvcuda cannot be loaded: %s", e)
        return False


# ---- the tree ----

def link_paths(matrix: Sequence[Sequence[str]]) -> list:
    """Per GPU, its path in a link tree built from `matrix` [G][G] of level names (the diagonal
    is ignored; NV4 and the like count as NV): "SYS:0/PHB:1/PXB:0/NV:0". Two GPUs share the
    ancestors of the cheapest group that holds both and whose pairs are all linked at that
    level or better. Ids number sibling groups by their lowest GPU."""
    g = len(matrix)
    cost = [[0 if a == b else _rank(matrix[a][b], a, b) for b in range(g)] for a in range(g)]
    for a in range(g):
        for b in range(a):
            if cost[a][b] != cost[b][a]:
                raise ValueError(f"link matrix is not symmetric at GPUs {b} and {a}: "
                                 f"{matrix[b][a]} vs {matrix[a][b]}")
    # groups[level] = the partition of the GPUs at that level, finer levels nested in coarser
    groups = []
    clusters = [frozenset([i]) for i in range(g)]
    for level in range(len(LEVELS)):
        clusters = _merge(clusters, cost, level)
        groups.append({i: c for c in clusters for i in c})
    paths = [[] for _ in range(g)]
    for i in range(g):
        steps = []
        for level in reversed(range(len(LEVELS))):          # coarse to fine
            here = groups[level][i]
            finer = groups[level - 1][i] if level else None
            # one step per distinct group: the finest level of a run of equal groups, so two
            # GPUs meet at the cheapest level that holds them; singletons share nothing
            if level == len(LEVELS) - 1 or (len(here) > 1 and here != finer):
                steps.append((level, here))
        paths[i] = steps
    return [_render(paths, i) for i in range(g)]


def _rank(name: str, a: int, b: int) -> int:
    token = str(name).strip().upper()
    if token.startswith("NV") and token[2:].isdigit():
        token = "NV"
    if token not in RANK:
        raise ValueError(f"link between GPUs {a} and {b}: {name!r} is not one of {', '.join(LEVELS)}")
    return RANK[token]


def _merge(clusters: list, cost, level: int) -> list:
    """Complete linkage at one level: merge groups whose every cross pair costs <= level,
    preferring the merge that leaves the most groups still mergeable with the result (so a
    DGX-1 quad forms rather than a cross-socket pair), then the lowest GPUs."""
    clusters = list(clusters)

    def joinable(x, y):
        return all(cost[a][b] <= level for a in x for b in y)

    while True:
        best = None
        for i in range(len(clusters)):
            for j in range(i + 1, len(clusters)):
                if not joinable(clusters[i], clusters[j]):
                    continue
                union = clusters[i] | clusters[j]
                room = sum(joinable(union, c) for k, c in enumerate(clusters) if k not in (i, j))
                key = (-room, sorted(union))
                if best is None or key < best[0]:
                    best = (key, i, j)
        if best is None:
            return sorted(clusters, key=min)
        _, i, j = best
        merged = clusters[i] | clusters[j]
        clusters = [c for k, c in enumerate(clusters) if k not in (i, j)] + [merged]


def _render(paths: list, i: int) -> str:
    out = []
    for depth, (level, group) in enumerate(paths[i]):
        parent = tuple(paths[i][:depth])
        # siblings: the distinct groups any GPU has right below the same ancestors
        siblings = sorted({p[depth][1] for p in paths if len(p) > depth and tuple(p[:depth]) == parent}, key=min)
        out.append(f"{LEVELS[level]}:{siblings.index(group)}")
    return "/".join(out)


# ---- NVML ----

def discover(nvml=None) -> NodeGpus:
    """GPUs through NVML (`nvml`: the pynvml module, or a stand-in with its functions)."""
    if nvml is None:
        try:
            import pynvml as nvml
        except Exception as e:  # nvidia-ml-py not installed: no GPUs
            return NodeGpus(error=f"pynvml cannot be imported: {e}")
    try:
        nvml.nvmlInit()
    except Exception as e:  # no driver (NVMLError_LibraryNotFound, DriverNotLoaded...): no GPUs
        log.debug("no NVML: %s", e)
        return NodeGpus(error=f"NVML: {e}")
    try:
        return _read(nvml)
    except Exception as e:  # half a list would mislead the scheduler: report none
        log.warning("NVML failed while listing the GPUs; reporting none: %s", e)
        return NodeGpus(error=f"NVML: {e}")
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass


def _read(nvml) -> NodeGpus:
    count = nvml.nvmlDeviceGetCount()
    handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    gpus, minors, buses = [], {}, []
    for i, h in enumerate(handles):
        gpus.append(types_pb2.Gpu(index=i, model=_text(nvml.nvmlDeviceGetName(h)),
                                  memory_bytes=int(nvml.nvmlDeviceGetMemoryInfo(h).total),
                                  uuid=_text(nvml.nvmlDeviceGetUUID(h))))
        minors[i] = _optional(lambda: int(nvml.nvmlDeviceGetMinorNumber(h)), i)
        buses.append(_optional(lambda: bus_id(nvml.nvmlDeviceGetPciInfo(h).busId), None))
    matrix = link_matrix(nvml, handles, buses)
    for gpu, path in zip(gpus, link_paths(matrix)):
        gpu.link_path = path
    log.info("NVML: %d GPU(s): %s", count, ", ".join(f"{g.index}={g.model} {g.link_path}" for g in gpus) or "none")
    return NodeGpus(gpus=gpus, minors=minors, source="nvml")


def link_matrix(nvml, handles: list, buses: list) -> list:
    """[G][G] level names: NV where an NVLink (or a shared NVSwitch) joins two GPUs, else the
    PCIe common ancestor; SYS where NVML cannot say (never a better link than known)."""
    g = len(handles)
    ends = [_nvlink_ends(nvml, h) for h in handles]
    gpu_buses = {b for b in buses if b is not None}
    matrix = [["SYS"] * g for _ in range(g)]
    for a in range(g):
        matrix[a][a] = "NV"
        for b in range(a + 1, g):
            level = _optional(lambda: NVML_LEVELS.get(int(nvml.nvmlDeviceGetTopologyCommonAncestor(
                handles[a], handles[b])), "SYS"), "SYS")
            direct = buses[b] in ends[a] or buses[a] in ends[b]
            switch = (ends[a] & ends[b]) - gpu_buses        # both reach one NVSwitch
            if (direct and buses[a] is not None and buses[b] is not None) or switch:
                level = "NV"
            matrix[a][b] = matrix[b][a] = level
    return matrix


def _nvlink_ends(nvml, handle) -> set:
    """PCI bus ids at the far end of each active NVLink of one GPU (none without NVLink)."""
    ends = set()
    enabled = getattr(nvml, "NVML_FEATURE_ENABLED", 1)
    limit = getattr(nvml, "NVML_NVLINK_MAX_LINKS", NVLINK_MAX_LINKS)
    for link in range(limit):
        try:
            if nvml.nvmlDeviceGetNvLinkState(handle, link) != enabled:
                continue
            ends.add(bus_id(nvml.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId))
        except Exception:  # NotSupported (no NVLink), InvalidArgument (past this GPU's last link)
            continue
    return ends


def bus_id(raw) -> Optional[tuple]:
    """A PCI address ("00000000:07:00.0", bytes or str, 4- or 8-digit domain) as a comparable
    (domain, bus, device, function); None when unreadable."""
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    try:
        domain, bus, rest = text.strip().lower().split(":")
        device, function = rest.split(".")
        return int(domain, 16), int(bus, 16), int(device, 16), int(function, 16)
    except ValueError:
        return None


def _text(value) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _optional(read, default):
    try:
        return read()
    except Exception:  # one unreadable detail falls back to the conservative default
        return default
