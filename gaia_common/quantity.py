"""Parse human quantities ("500m" cpu, "512Mi" bytes, "100Mbit" bandwidth) into integers."""
import re

_BYTES = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}
_BITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
_NUMBER = r"(\d+(?:\.\d+)?)"


class QuantityError(ValueError):
    pass


def cpu_millis(value) -> int:
    """'2' or 2 -> 2000, '500m' -> 500, '0.5' -> 500."""
    text = str(value).strip().lower()
    m = re.fullmatch(_NUMBER + r"(m?)", text)
    if not m:
        raise QuantityError(f"{value!r} is not a cpu amount (e.g. 2, 0.5, 500m)")
    number = float(m.group(1))
    return int(round(number if m.group(2) else number * 1000))


def byte_count(value) -> int:
    """'512Mi' -> 536870912, '1G' -> 10**9, '1GB' -> 10**9, 1024 -> 1024."""
    text = str(value).strip().lower()
    m = re.fullmatch(_NUMBER + r"\s*([kmgt]i?)?b?", text)
    if not m:
        raise QuantityError(f"{value!r} is not a size (e.g. 512Mi, 2Gi, 1G, 1048576)")
    return int(round(float(m.group(1)) * _BYTES[m.group(2) or ""]))


def bits_per_second(value) -> int:
    """'100Mbit' / '100mbps' / '100M' -> 100_000_000 bits per second."""
    text = str(value).strip().lower()
    m = re.fullmatch(_NUMBER + r"\s*([kmg])?(bit|bps|b/s)?", text)
    if not m:
        raise QuantityError(f"{value!r} is not a bandwidth (e.g. 100Mbit, 1Gbit)")
    return int(round(float(m.group(1)) * _BITS[m.group(2) or ""]))


def format_bytes(n: int) -> str:
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if n >= size and n % (size // 1024 or 1) == 0 or n >= size * 10:
            return f"{n / size:.4g}{unit}"
    return str(n)


def format_cpu(millis: int) -> str:
    return f"{millis / 1000:g}" if millis % 1000 == 0 else f"{millis}m"
