"""GPU model: a request that asks for GPU runs only on nodes whose card is allowed by both
the request and its pool (pools may restrict card types per business)."""
import numpy as np

from gaia_master.sfair.framework import FilterResult
from gaia_master.sfair.model import GPU_DIMS


class GpuModel:
    name = "gpu-model"

    def applies(self, eq) -> bool:
        return bool(eq.gpu_models) and bool(eq.shape[list(GPU_DIMS)].any())

    def filter(self, nodes, eq) -> FilterResult:
        codes, values = nodes.gpu_model_codes()
        wanted = [values[m] for m in eq.gpu_models if m in values]
        mask = np.isin(codes, wanted) if wanted else np.zeros(len(nodes), dtype=bool)
        return FilterResult(self.name, mask, f"GPU model not in {','.join(eq.gpu_models)}")
