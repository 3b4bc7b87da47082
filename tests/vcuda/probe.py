"""Runs tests/vcuda/progs/vcuda_probe (the scriptable driver client) under libvcuda and the fake driver,
and writes vcuda.conf files, for the memory and hook tests."""
import json
import subprocess
from pathlib import Path

from tests.vcuda.build import built, run_env

MiB = 1 << 20
GiB = 1 << 30
FAKE_TOTAL = 16 * GiB  # fake_cuda.c's device size


def config(tmp_path: Path, limit=None, name="vcuda.conf", region="region", **keys) -> Path:
    """A vcuda.conf with memory_limit and this container's region file (under tmp_path)."""
    lines = []
    if limit is not None:
        lines.append(f"memory_limit={limit}")
    if region:
        lines.append(f"region={tmp_path / region}")
    lines += [f"{k}={v}" for k, v in keys.items()]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def command(*cmds, mode="dlsym", conf=None, preload=True, prog=None, options=(), **env):
    """argv and environment for one probe run."""
    rig = built()
    name = prog or ("vcuda_probe_direct" if mode == "direct" else "vcuda_probe")
    argv = [str(rig.prog(name)), "--mode", mode, *options, *map(str, cmds)]
    return argv, run_env(rig, conf, preload=preload, **env)


def parse(stdout: str) -> list:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def run(*cmds, timeout=60, check=True, **kw) -> list:
    """Runs the probe to completion; its JSON lines. check: exit status 0 and no "error" line."""
    argv, env = command(*cmds, **kw)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    out = parse(proc.stdout)
    if check:
        assert proc.returncode == 0, f"{argv} exited {proc.returncode}: {proc.stdout}{proc.stderr}"
        assert not [x for x in out if "error" in x], proc.stdout
    return out


def start(*cmds, **kw) -> subprocess.Popen:
    """Starts the probe; read its lines from .stdout."""
    argv, env = command(*cmds, **kw)
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def used(info: dict) -> int:
    """The container's use as cuMemGetInfo reports it."""
    return info["total"] - info["free"]
