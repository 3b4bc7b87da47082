"""Summaries benchmarks report: medians and tail percentiles (these machines are noisy)."""
import numpy as np


def percentiles(samples) -> dict:
    if not len(samples):
        return {"n": 0, "p50": None, "p99": None, "max": None}
    a = np.asarray(samples, dtype=float)
    return {"n": int(a.size), "p50": round(float(np.percentile(a, 50)), 3),
            "p99": round(float(np.percentile(a, 99)), 3), "max": round(float(a.max()), 3)}
