"""Human quantities: cpu, bytes and bandwidth in the units the spec documents."""
import pytest

from gaia_common import quantity as q


@pytest.mark.parametrize("text,millis", [
    ("2", 2000), (2, 2000), ("0.5", 500), (0.25, 250), ("500m", 500), ("1500m", 1500),
    ("1.5", 1500), (" 100m ", 100), ("0", 0),
])
def test_cpu(text, millis):
    assert q.cpu_millis(text) == millis


@pytest.mark.parametrize("text", ["", "abc", "-1", "1e3", "5k", "2 cores", "1.5.2", "m"])
def test_cpu_rejects(text):
    with pytest.raises(q.QuantityError) as info:
        q.cpu_millis(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("text,n", [
    (1024, 1024), ("1024", 1024), ("1Ki", 1024), ("512Mi", 512 * 2**20), ("2Gi", 2 * 2**30),
    ("1Ti", 2**40), ("1k", 1000), ("1K", 1000), ("1M", 10**6), ("1G", 10**9), ("1GB", 10**9),
    ("1gib", 2**30), ("1.5Gi", 3 * 2**29), ("10 Mi", 10 * 2**20), ("0", 0), ("7b", 7),
])
def test_bytes(text, n):
    assert q.byte_count(text) == n


@pytest.mark.parametrize("text", ["", "lots", "-1Gi", "1Pi", "1Mx", "Gi", "1 2"])
def test_bytes_rejects(text):
    with pytest.raises(q.QuantityError):
        q.byte_count(text)


@pytest.mark.parametrize("text,bps", [
    ("100Mbit", 10**8), ("100mbps", 10**8), ("100M", 10**8), ("1Gbit", 10**9), ("1g", 10**9),
    ("64kbit", 64000), ("10 Mbit", 10**7), (500, 500), ("500b/s", 500), ("1.5Gbit", 15 * 10**8),
])
def test_bandwidth(text, bps):
    assert q.bits_per_second(text) == bps


@pytest.mark.parametrize("text", ["", "fast", "-1Mbit", "1Tbit", "1Mibit"])
def test_bandwidth_rejects(text):
    with pytest.raises(q.QuantityError):
        q.bits_per_second(text)


def test_quantity_error_is_value_error():
    assert issubclass(q.QuantityError, ValueError)


@pytest.mark.parametrize("n,text", [
    (0, "0"), (1000, "1000"), (1024, "1Ki"), (512 * 2**20, "512Mi"), (2**30, "1Gi"), (5 * 2**40, "5Ti"),
])
def test_format_bytes(n, text):
    assert q.format_bytes(n) == text


@pytest.mark.parametrize("millis,text", [(0, "0"), (100, "100m"), (1500, "1500m"), (2000, "2")])
def test_format_cpu(millis, text):
    assert q.format_cpu(millis) == text


@pytest.mark.parametrize("millis", [0, 1, 100, 999, 1000, 1500, 64000])
def test_cpu_format_round_trip(millis):
    assert q.cpu_millis(q.format_cpu(millis)) == millis


@pytest.mark.parametrize("n", [0, 1024, 512 * 2**20, 3 * 2**30, 2**40])
def test_bytes_format_round_trip(n):
    assert q.byte_count(q.format_bytes(n)) == n
