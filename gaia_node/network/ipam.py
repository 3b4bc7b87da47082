"""Container addresses: one file per address in use, created with O_EXCL (like CNI host-local).

Several node managers on one host share a bridge and a subnet; the filesystem makes their
allocations atomic without a lock, and /run (tmpfs) forgets them at reboot, along with the
namespaces that used them.
"""
import contextlib
import errno
import ipaddress
import os
import threading


class AddressesExhausted(Exception):
    pass


class Ipam:
    def __init__(self, directory: str, subnet: ipaddress.IPv4Network):
        self.directory = directory
        self.subnet = subnet
        # .0 is the network, .1 the gateway (the bridge), the last the broadcast address.
        self.first, self.last = 2, subnet.num_addresses - 2

    def _path(self, address: str) -> str:
        return os.path.join(self.directory, address)

    def allocate(self, owner: str) -> str:
        """A free address of the subnet, now recorded as `owner`'s. Idempotent per owner
        only through `owned`; callers check that first on recovery."""
        os.makedirs(self.directory, exist_ok=True)
        size = self.last - self.first + 1
        start = self._next_hint()
        for step in range(size):
            index = self.first + (start - self.first + step) % size
            address = str(self.subnet.network_address + index)
            try:
                fd = os.open(self._path(address), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as f:
                f.write(owner)
            self._save_hint(index + 1)
            return address
        raise AddressesExhausted(f"no free address left in {self.subnet}")

    def _next_hint(self) -> int:
        """Round-robin from the last allocation: an address just released is reused last."""
        try:
            with open(os.path.join(self.directory, "next")) as f:
                hint = int(f.read().strip())
        except (OSError, ValueError):
            return self.first
        return hint if self.first <= hint <= self.last else self.first

    def _save_hint(self, index: int):
        """Best effort: the hint only spreads allocations, so failing to save it never fails
        one. The temporary name is per thread: a node starts containers concurrently."""
        tmp = os.path.join(self.directory, f".next.{os.getpid()}.{threading.get_ident()}")
        try:
            with open(tmp, "w") as f:
                f.write(str(index))
            os.replace(tmp, os.path.join(self.directory, "next"))
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def owner(self, address: str) -> str:
        try:
            with open(self._path(address)) as f:
                return f.read()
        except OSError:
            return ""

    def claim(self, owner: str, address: str) -> bool:
        """Re-record `address` for `owner` (recovery after a reboot emptied /run); False when
        someone else holds it."""
        os.makedirs(self.directory, exist_ok=True)
        current = self.owner(address)
        if current:
            return current == owner
        try:
            fd = os.open(self._path(address), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return self.owner(address) == owner
        with os.fdopen(fd, "w") as f:
            f.write(owner)
        return True

    def release(self, owner: str, address: str) -> None:
        """Free `address` if it is still `owner`'s (a stale release never frees another's)."""
        if address and self.owner(address) == owner:
            try:
                os.unlink(self._path(address))
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise

    def owned_by_prefix(self, prefix: str) -> dict:
        """address -> owner for every address whose owner starts with `prefix`."""
        out = {}
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return out
        for name in names:
            try:
                ipaddress.IPv4Address(name)
            except ValueError:
                continue
            owner = self.owner(name)
            if owner.startswith(prefix):
                out[name] = owner
        return out

    @staticmethod
    def host_index(subnet: ipaddress.IPv4Network, address: str) -> int:
        return int(ipaddress.IPv4Address(address)) - int(subnet.network_address)
