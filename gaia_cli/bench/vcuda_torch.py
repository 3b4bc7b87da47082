"""The PyTorch side of `gaia bench vcuda`: run as a script, in a process of its own, with or
without libvcuda preloaded (the parent sets LD_PRELOAD and GAIA_VCUDA_CONFIG).

  python vcuda_torch.py probe
      {"cuda": bool, "device": name, "torch": version}
  python vcuda_torch.py train SECONDS
      warms up, prints {"ready": true}, reads a wall-clock start time from stdin (so processes
      run side by side measure the same window), waits for it, then counts the training steps
      finished within SECONDS: {"steps", "seconds", "step_ms"}
  python vcuda_torch.py overflow LIMIT_BYTES
      allocates 2 x LIMIT_BYTES on the GPU, which must fail with CUDA's out-of-memory error,
      then a quarter of the limit, which must still work: {"refused", "error", "after_ok"}

Prints one JSON line. Only the standard library and torch: the interpreter running it may be
a different one from Gaia's (`gaia bench vcuda --python`).
"""
import json
import sys
import time


def probe() -> dict:
    try:
        import torch
    except Exception as e:
        return {"cuda": False, "why": f"no torch: {e}"}
    if not torch.cuda.is_available():
        return {"cuda": False, "why": "torch sees no CUDA device", "torch": torch.__version__}
    return {"cuda": True, "device": torch.cuda.get_device_name(0), "torch": torch.__version__}


def _model(torch):
    # big enough matmuls to keep a GPU busy: a share can only show when the device is the limit
    width, depth = 4096, 6
    layers = []
    for _ in range(depth):
        layers += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers).cuda()
    data = torch.randn(2048, width, device="cuda")
    target = torch.randn(2048, width, device="cuda")
    return model, data, target


def train(seconds: float) -> dict:
    import torch
    model, data, target = _model(torch)
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.MSELoss()

    def step():
        optimiser.zero_grad(set_to_none=True)
        loss = loss_fn(model(data), target)
        loss.backward()
        optimiser.step()
        torch.cuda.synchronize()   # a step counts once the GPU has done it

    for _ in range(5):             # warm-up: kernels loaded, allocator grown
        step()
    print(json.dumps({"ready": True}), flush=True)
    start_at = float(sys.stdin.readline())
    while time.time() < start_at:
        time.sleep(0.001)
    steps, began = 0, time.time()
    end = began + seconds
    while time.time() < end:
        step()
        steps += 1
    elapsed = time.time() - began
    return {"steps": steps, "seconds": elapsed, "step_ms": 1000 * elapsed / max(steps, 1)}


def overflow(limit: int) -> dict:
    import torch
    torch.zeros(1, device="cuda")
    refused, error = False, ""
    try:
        big = torch.empty(2 * limit, dtype=torch.uint8, device="cuda")
        big.fill_(1)
        torch.cuda.synchronize()
    except RuntimeError as e:   # torch.cuda.OutOfMemoryError is a RuntimeError
        refused, error = "out of memory" in str(e).lower(), str(e).splitlines()[0][:200]
    try:
        small = torch.ones(max(1, limit // 4), dtype=torch.uint8, device="cuda")
        after_ok = int(small.sum().item()) == small.numel()
    except RuntimeError as e:
        after_ok, error = False, error or str(e).splitlines()[0][:200]
    return {"refused": refused, "error": error, "after_ok": after_ok}


def main(argv) -> int:
    what = argv[1] if len(argv) > 1 else ""
    if what == "probe":
        result = probe()
    elif what == "train" and len(argv) == 3:
        result = train(float(argv[2]))
    elif what == "overflow" and len(argv) == 3:
        result = overflow(int(argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
