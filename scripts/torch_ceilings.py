"""Ceilings of this GPU as PyTorch reaches them, for the op benchmark's peer column.

Runs on the GPU machine (torch is there): a large device-to-device copy (bytes read + written)
and f16/bf16 matmuls at the 7B prefill shapes and at 8192^3, timed with CUDA events on random
data (never zeros), median of repeats. Prints and writes JSON:

    python3 scripts/torch_ceilings.py --out torch-ceilings.json
"""
import argparse
import json

import torch


def bench(fn, reps=20, warmup=3):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="torch-ceilings.json")
    args = ap.parse_args()
    dev = torch.device("cuda")
    res = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}

    n = 256 * 2**20  # 1 GiB of f32
    x = torch.randn(n, device=dev)
    y = torch.empty_like(x)
    ms = bench(lambda: y.copy_(x))
    res["copyGBps"] = round(2 * n * 4 / (ms * 1e6), 1)
    del x, y

    for dt in (torch.float16, torch.bfloat16):
        name = str(dt).split(".")[-1]
        for m, nn, k in ((8192, 8192, 8192), (2048, 4096, 4096), (2048, 11008, 4096), (2048, 4096, 11008)):
            a = torch.randn(m, k, device=dev, dtype=dt)
            w = torch.randn(nn, k, device=dev, dtype=dt)
            ms = bench(lambda: a @ w.t())
            res[f"matmul_{name}_{m}x{nn}x{k}_tflops"] = round(2 * m * nn * k / (ms * 1e9), 1)
    print(json.dumps(res, indent=2))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
