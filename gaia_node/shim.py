"""The monitor of one container's process: `python -m gaia_node.shim <container_dir>`.

Like containerd's shim it detaches from the node manager (new session, then a fork whose
parent exits at once), so containers outlive node-manager restarts and upgrades. It starts
the command from launch.json in its own process group, inside the container's cgroups,
records the child's pid, identity and real start time, waits for it, and records how it ended; all in
state.json, which only the shim writes. The node manager reads that file and signals the
child's process group itself.

Only the standard library and psutil: the shim is on every container's start path.
"""
import os
import signal
import subprocess
import sys
import time

import psutil

from gaia_node import procs, state

# Exit code recorded when the command cannot be executed at all (as a shell reports it).
CANNOT_EXECUTE = 127


def main(argv) -> int:
    if len(argv) != 2:
        print("usage: python -m gaia_node.shim <container_dir>", file=sys.stderr)
        return 2
    directory = argv[1]
    launch = state.read_json(os.path.join(directory, state.LAUNCH))
    if launch is None:
        print(f"{directory}: no readable {state.LAUNCH}", file=sys.stderr)
        return 2
    if os.fork() > 0:
        os._exit(0)  # the node manager reaps this parent at once; the monitor is re-parented
    Monitor(directory, launch).run()
    return 0


class Monitor:
    def __init__(self, directory: str, launch: dict):
        self.directory = directory
        self.launch = launch
        self.child = None
        self.record = {"shim": procs.identity(os.getpid())}

    def save(self, **changes):
        self.record.update(changes)
        state.write_json_atomic(os.path.join(self.directory, state.SHIM_STATE), self.record)

    def run(self):
        self.save()
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, self._forward)
        signal.signal(signal.SIGINT, self._forward)
        try:
            self.child = self._spawn()
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            command = self.launch["command"][0] if self.launch.get("command") else ""
            self.save(exit_code=CANNOT_EXECUTE, finished_at=time.time(),
                      error=f"could not start {command!r}: {e}")
            return
        # Both read before wait(): the child cannot be reaped, so its pid is still its own.
        self.save(pid=self.child.pid, child=procs.identity(self.child.pid),
                  started_at=psutil.Process(self.child.pid).create_time())
        returncode = self.child.wait()
        if returncode < 0:  # killed by a signal: report it the way shells do
            self.save(exit_code=128 - returncode, signal=-returncode, finished_at=time.time())
        else:
            self.save(exit_code=returncode, signal=0, finished_at=time.time())

    def _spawn(self) -> subprocess.Popen:
        procs_files = list(self.launch.get("cgroup_procs") or [])

        def join_cgroups():
            # Runs in the child between fork and exec: the command starts inside its limits.
            for path in procs_files:
                with open(path, "w") as f:
                    f.write(str(os.getpid()))

        with open(os.path.join(self.directory, state.STDOUT), "ab") as out, \
                open(os.path.join(self.directory, state.STDERR), "ab") as err:
            return subprocess.Popen(self.launch["command"], env=self.launch["env"], cwd=self.launch["cwd"],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, close_fds=True,
                                    start_new_session=True, preexec_fn=join_cgroups if procs_files else None)

    def _forward(self, signum, _frame):
        """A signal to the shim is meant for the container: pass it to the child's group."""
        if self.child and self.child.returncode is None:
            try:
                os.killpg(self.child.pid, signum)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    sys.exit(main(sys.argv))
