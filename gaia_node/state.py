"""The node's local state on disk: one directory per container under <state_dir>/containers/.

  container.json   the node manager's record (spec, status, driver handle); written by the node
  launch.json      what the shim runs; written by the node before the shim starts
  state.json       pids, start time and exit of the process; written only by the shim
  stdout, stderr   the process's output
  work/            the default working directory

Only the standard library here: the shim imports it.

The records hold secrets (an AM's etcd password is in its env; launch.json repeats the env):
files are written 0600 and directories made 0700, readable by the node manager's user only
(the container's processes run as that user; a docker container sees only what is mounted).
"""
import json
import os
import re

RECORD = "container.json"
LAUNCH = "launch.json"
SHIM_STATE = "state.json"
STDOUT = "stdout"
STDERR = "stderr"
WORKDIR = "work"

# Container ids name directories and cgroups: keep them to one safe path segment.
CONTAINER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


FILE_MODE = 0o600
DIR_MODE = 0o700


def write_json_atomic(path: str, doc: dict) -> None:
    """Write then rename, so a reader (or a crash) never sees half a file; 0600 from the start."""
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)     # an old tmp left by a crash keeps its mode otherwise
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: str):
    """The document at `path`, or None when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def private_dir(path: str) -> str:
    """Make `path` (and missing parents) a directory only its owner can enter."""
    os.makedirs(path, mode=DIR_MODE, exist_ok=True)
    os.chmod(path, DIR_MODE)     # makedirs leaves an existing one, and the umask, as they were
    return path


def valid_container_id(container_id: str) -> bool:
    return bool(CONTAINER_ID.match(container_id or "")) and ".." not in container_id


class ContainerDirs:
    def __init__(self, state_dir: str):
        self.root = os.path.join(os.path.abspath(state_dir), "containers")

    def path(self, container_id: str, name: str = "") -> str:
        if not valid_container_id(container_id):
            raise ValueError(f"invalid container id {container_id!r}")
        return os.path.join(self.root, container_id, name) if name else os.path.join(self.root, container_id)

    def create(self, container_id: str) -> str:
        private_dir(self.root)
        return private_dir(self.path(container_id))

    def ids(self) -> list:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if valid_container_id(n) and os.path.isdir(os.path.join(self.root, n)))

    def remove(self, container_id: str) -> None:
        import shutil  # here, not at the top: the shim imports this module on every start
        shutil.rmtree(self.path(container_id), ignore_errors=True)
