"""A model of the cgroup v2 filesystem that refuses what the kernel refuses.

This machine's v2 hierarchy has no controllers, so gaia_node/cgroups/v2.py is tested against
this model through the same file operations it uses on the host (read, write, mkdir, rmdir,
exists, subdirs). The rules and errnos are the kernel's (checked against a real v2 mount where
one could be, e.g. EACCES for a missing interface file, ENOENT for enabling a controller the
cgroup is not offered):
- cgroup.controllers of the root lists the available controllers; of any other cgroup, what
  its parent enabled in cgroup.subtree_control. Only those may be enabled ("+memory"; a token
  without +/- or an unknown name is EINVAL, one not offered is ENOENT), and one cannot be
  disabled while a child still enables it (EBUSY).
- A controller's interface files exist in a cgroup only when its parent's subtree_control
  enables it; disabling it there drops them (and their values).
- No internal processes: a non-root cgroup with processes cannot enable controllers for its
  children, and one that enables any cannot take processes (EBUSY both ways).
- rmdir of a cgroup with children or processes is EBUSY; mkdir of an existing one EEXIST.
- Formats: memory.{min,low,high,max} bytes (K/M/G suffixes) or "max", kept in whole pages;
  cpu.weight 1..10000 (ERANGE outside); cpu.max "QUOTA|max [PERIOD]" with 1 ms <= quota and
  1 ms <= period <= 1 s; io.max "MAJ:MIN key=value..." for a known device (ENODEV otherwise);
  pids.max a count or "max"; read-only files refuse writes (EINVAL).
Memory is modelled just enough for elastic memory: a test charges a cgroup anonymous and file
bytes; lowering memory.high or memory.max reclaims file pages at once (as the kernel does
before the write returns), anonymous ones never (no swap); memory.max below what is left
OOM-kills the cgroup's processes.
"""
import errno
import os
import re

PAGE = 4096
KNOWN = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")
CORE = {"cgroup.controllers": "ro", "cgroup.subtree_control": "rw", "cgroup.procs": "rw", "cgroup.stat": "ro",
        "cpu.stat": "ro", "cpu.pressure": "ro", "memory.pressure": "ro", "io.pressure": "ro"}
NON_ROOT_CORE = {"cgroup.events": "ro", "cgroup.type": "rw", "cgroup.freeze": "rw", "cgroup.kill": "w"}
INTERFACE = {
    "memory": {"memory.current": "ro", "memory.min": "rw", "memory.low": "rw", "memory.high": "rw",
               "memory.max": "rw", "memory.stat": "ro", "memory.events": "ro", "memory.oom.group": "rw",
               "memory.reclaim": "w", "memory.peak": "ro", "memory.swap.max": "rw", "memory.swap.current": "ro"},
    "cpu": {"cpu.weight": "rw", "cpu.weight.nice": "rw", "cpu.max": "rw", "cpu.max.burst": "rw", "cpu.idle": "rw"},
    "io": {"io.max": "rw", "io.weight": "rw", "io.stat": "ro"},
    "pids": {"pids.max": "rw", "pids.current": "ro"},
    "cpuset": {"cpuset.cpus": "rw", "cpuset.mems": "rw", "cpuset.cpus.effective": "ro"},
}
DEFAULTS = {"memory.min": "0", "memory.low": "0", "memory.high": "max", "memory.max": "max",
            "memory.oom.group": "0", "memory.swap.max": "max", "cpu.weight": "100", "cpu.weight.nice": "0",
            "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0", "io.weight": "default 100",
            "pids.max": "max", "cpuset.cpus": "", "cpuset.mems": "", "cgroup.type": "domain", "cgroup.freeze": "0"}
BYTES = re.compile(r"(\d+)([kmgKMG]?)")


def _err(code: int, path: str):
    return OSError(code, os.strerror(code), path)


class Cgroup:
    def __init__(self, parent=None):
        self.parent = parent
        self.children = {}
        self.subtree = set()
        self.procs = set()
        self.values = {}
        self.anon = self.file = 0
        self.oom_kills = 0
        self.pressure = 0.0
        self.cpu_usec = 0

    def offered(self, available) -> set:
        return set(available) if self.parent is None else set(self.parent.subtree)

    def files(self) -> dict:
        out = dict(CORE)
        if self.parent is not None:
            out.update(NON_ROOT_CORE)
            for controller in self.parent.subtree:
                out.update(INTERFACE.get(controller, {}))
        return out


class FakeCgroupFS:
    def __init__(self, root: str = "/sys/fs/cgroup", controllers=("cpuset", "cpu", "io", "memory", "hugetlb", "pids"),
                 devices=("8:0", "259:0"), live_pids=None):
        self.root_path = root.rstrip("/")
        self.available = tuple(controllers)
        self.devices = set(devices)
        self.live_pids = live_pids          # None: every positive pid exists
        self.root = Cgroup()
        self.writes = []                    # (path, value) of every accepted write, in order

    # ---- path resolution ----

    def _walk(self, path: str):
        """(cgroup, file name or None) for `path`; raise ENOENT when a directory is missing."""
        path = os.path.normpath(path)
        if path != self.root_path and not path.startswith(self.root_path + "/"):
            raise _err(errno.ENOENT, path)
        parts = [p for p in path[len(self.root_path):].split("/") if p]
        node = self.root
        for i, part in enumerate(parts):
            if part in node.children:
                node = node.children[part]
            elif i == len(parts) - 1:
                return node, part
            else:
                raise _err(errno.ENOENT, path)
        return node, None

    def cgroup(self, path: str) -> Cgroup:
        node, name = self._walk(path)
        if name is not None:
            raise _err(errno.ENOTDIR, path)
        return node

    # ---- the five operations ----

    def exists(self, path: str) -> bool:
        try:
            node, name = self._walk(path)
        except OSError:
            return False
        return name is None or name in node.files()

    def subdirs(self, path: str) -> list:
        return sorted(self.cgroup(path).children)

    def mkdir(self, path: str) -> None:
        node, name = self._walk(path)
        if name is None or name in node.files():
            raise _err(errno.EEXIST, path)
        node.children[name] = Cgroup(node)

    def rmdir(self, path: str) -> None:
        node, name = self._walk(path)
        if name is not None:
            raise _err(errno.ENOTDIR if name in node.files() else errno.ENOENT, path)
        if node.parent is None or node.children or node.procs:
            raise _err(errno.EBUSY, path)
        parent = node.parent
        del parent.children[next(k for k, v in parent.children.items() if v is node)]

    def read(self, path: str) -> str:
        node, name = self._walk(path)
        if name is None:
            raise _err(errno.EISDIR, path)
        mode = node.files().get(name)
        if mode is None:
            raise _err(errno.ENOENT, path)
        if mode == "w":
            raise _err(errno.EINVAL, path)
        return self._show(node, name) + "\n"

    def write(self, path: str, value) -> None:
        node, name = self._walk(path)
        if name is None:
            raise _err(errno.EISDIR, path)
        mode = node.files().get(name)
        if mode is None:
            raise _err(errno.EACCES, path)  # kernfs: no such file, and none can be created
        if mode == "ro":
            raise _err(errno.EINVAL, path)
        text = str(value).strip()
        handler = getattr(self, "_write_" + name.replace(".", "_"), None)
        if handler is not None:
            handler(node, text, path)
        else:
            node.values[name] = text
        self.writes.append((path, text))

    # ---- what a file reads ----

    def _show(self, node: Cgroup, name: str) -> str:
        if name == "cgroup.controllers":
            return " ".join(c for c in self.available if c in node.offered(self.available))
        if name == "cgroup.subtree_control":
            return " ".join(c for c in self.available if c in node.subtree)
        if name == "cgroup.procs":
            return "\n".join(str(p) for p in sorted(self._all_procs(node) if node.parent is None else node.procs))
        if name == "memory.current":
            return str(node.anon + node.file)
        if name == "memory.stat":
            return f"anon {node.anon}\nfile {node.file}\nkernel 0\nshmem 0"
        if name == "memory.events":
            return f"low 0\nhigh 0\nmax 0\noom {node.oom_kills}\noom_kill {node.oom_kills}"
        if name.endswith(".pressure"):
            avg = node.pressure if name == "memory.pressure" else 0.0
            return (f"some avg10={avg:.2f} avg60=0.00 avg300=0.00 total=0\n"
                    f"full avg10=0.00 avg60=0.00 avg300=0.00 total=0")
        if name == "cpu.stat":
            return f"usage_usec {node.cpu_usec}\nuser_usec {node.cpu_usec}\nsystem_usec 0"
        if name == "io.max":
            return "\n".join(f"{dev} " + " ".join(f"{k}={v}" for k, v in limits.items())
                             for dev, limits in sorted(node.values.get("io.max", {}).items()))
        if name == "cgroup.events":
            return f"populated {int(bool(self._all_procs(node)))}\nfrozen 0"
        return str(node.values.get(name, DEFAULTS.get(name, "0")))

    def _all_procs(self, node: Cgroup) -> set:
        out = set(node.procs)
        for child in node.children.values():
            out |= self._all_procs(child)
        return out

    # ---- the kernel's rules on writes ----

    def _write_cgroup_subtree_control(self, node: Cgroup, text: str, path: str):
        enable, disable = set(), set()
        for token in text.split():
            sign, controller = token[0], token[1:]
            if sign not in "+-" or controller not in KNOWN:
                raise _err(errno.EINVAL, path)
            (enable if sign == "+" else disable).add(controller)
            (disable if sign == "+" else enable).discard(controller)  # the last word wins
        enable -= node.subtree
        disable &= node.subtree
        if enable - node.offered(self.available):
            raise _err(errno.ENOENT, path)
        if any(c in child.subtree for child in node.children.values() for c in disable):
            raise _err(errno.EBUSY, path)
        if enable and node.parent is not None and node.procs:
            raise _err(errno.EBUSY, path)  # no internal processes
        node.subtree = (node.subtree | enable) - disable
        for child in node.children.values():  # a disabled controller's files go, values and all
            for controller in disable:
                for name in INTERFACE.get(controller, {}):
                    child.values.pop(name, None)

    def _write_cgroup_procs(self, node: Cgroup, text: str, path: str):
        if not text.isdigit():
            raise _err(errno.EINVAL, path)
        pid = int(text)
        if pid <= 0 or (self.live_pids is not None and pid not in self.live_pids):
            raise _err(errno.ESRCH, path)
        if node.parent is not None and node.subtree:
            raise _err(errno.EBUSY, path)  # no internal processes
        for other in self._every(self.root):
            other.procs.discard(pid)
        node.procs.add(pid)

    def _every(self, node: Cgroup):
        yield node
        for child in node.children.values():
            yield from self._every(child)

    @staticmethod
    def _bytes(text: str, path: str, allow_max=True):
        if allow_max and text == "max":
            return None
        m = BYTES.fullmatch(text)
        if not m:
            raise _err(errno.EINVAL, path)
        value = int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
        return value // PAGE * PAGE

    def _set_bytes(self, node, name, text, path):
        value = self._bytes(text, path)
        node.values[name] = "max" if value is None else str(value)
        return value

    def _write_memory_min(self, node, text, path):
        self._set_bytes(node, "memory.min", text, path)

    def _write_memory_low(self, node, text, path):
        self._set_bytes(node, "memory.low", text, path)

    def _write_memory_swap_max(self, node, text, path):
        self._set_bytes(node, "memory.swap.max", text, path)

    def _write_memory_high(self, node, text, path):
        high = self._set_bytes(node, "memory.high", text, path)
        if high is not None:
            self._reclaim(node, node.anon + node.file - high)

    def _write_memory_max(self, node, text, path):
        limit = self._set_bytes(node, "memory.max", text, path)
        if limit is not None:
            self._reclaim(node, node.anon + node.file - limit)
            if node.anon + node.file > limit:  # what is left cannot be reclaimed: the OOM killer
                node.oom_kills += len(node.procs) or 1
                node.procs.clear()
                node.anon = 0

    def _write_memory_reclaim(self, node, text, path):
        wanted = self._bytes(text, path, allow_max=False)
        if self._reclaim(node, wanted) < wanted:
            raise _err(errno.EAGAIN, path)

    @staticmethod
    def _reclaim(node, wanted: int) -> int:
        freed = max(0, min(wanted, node.file))
        node.file -= freed
        return freed

    def _write_memory_oom_group(self, node, text, path):
        if text not in ("0", "1"):
            raise _err(errno.EINVAL, path)
        node.values["memory.oom.group"] = text

    def _write_cpu_weight(self, node, text, path):
        if not text.isdigit():
            raise _err(errno.EINVAL, path)
        if not 1 <= int(text) <= 10_000:
            raise _err(errno.ERANGE, path)
        node.values["cpu.weight"] = text

    def _write_cpu_max(self, node, text, path):
        fields = text.split()
        if not 1 <= len(fields) <= 2:
            raise _err(errno.EINVAL, path)
        period = fields[1] if len(fields) == 2 else node.values.get("cpu.max", DEFAULTS["cpu.max"]).split()[1]
        quota = fields[0]
        if not period.isdigit() or not 1_000 <= int(period) <= 1_000_000:
            raise _err(errno.EINVAL, path)
        if quota != "max" and (not quota.isdigit() or int(quota) < 1_000):
            raise _err(errno.EINVAL, path)
        node.values["cpu.max"] = f"{quota} {period}"

    def _write_pids_max(self, node, text, path):
        if text != "max" and not text.isdigit():
            raise _err(errno.EINVAL, path)
        node.values["pids.max"] = text

    def _write_io_max(self, node, text, path):
        fields = text.split()
        if not fields or not re.fullmatch(r"\d+:\d+", fields[0]):
            raise _err(errno.EINVAL, path)
        if fields[0] not in self.devices:
            raise _err(errno.ENODEV, path)
        limits = node.values.setdefault("io.max", {}).setdefault(
            fields[0], {"rbps": "max", "wbps": "max", "riops": "max", "wiops": "max"})
        for field in fields[1:]:
            key, _, value = field.partition("=")
            if key not in limits or not (value == "max" or value.isdigit()):
                raise _err(errno.EINVAL, path)
            limits[key] = value

    # ---- what tests do to the model (the kernel's side) ----

    def charge(self, path: str, anon: int = None, file: int = None):
        node = self.cgroup(path)
        node.anon = node.anon if anon is None else anon
        node.file = node.file if file is None else file

    def set_pressure(self, path: str, some_avg10: float):
        self.cgroup(path).pressure = some_avg10

    def add_cpu_time(self, path: str, usec: int):
        self.cgroup(path).cpu_usec += usec
