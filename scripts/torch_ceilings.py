"""Ceilings of this GPU as PyTorch reaches them, for the op benchmark's peer column.

Runs on the GPU machine (torch is there): a large device-to-device copy (bytes read + written)
f16/bf16 matmuls at the 7B prefill shapes and at 8192^3, and the decode shapes (1-16 rows of the
7B projections, the weight's bytes against the copy rate), timed with CUDA events on random data
(never zeros), median of repeats. Prints and writes JSON:

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
    # decode: the weights at 1-16 rows through cuBLAS (a @ w^T), as the op benchmark
    # times its own: many launches back to back over 8 copies of the weight (past L2), the
    # weight's bytes per launch against the copy rate above. The launches are replayed from a
    # CUDA graph: issued from Python one by one, a 4096 x 4096 launch (~8 us of GPU work) waits
    # on the host (a first run read 32% of copy that way).
    for nn, k in ((4096, 4096), (11008, 4096), (4096, 11008)):
        ws = [torch.randn(nn, k, device=dev, dtype=torch.float16) for _ in range(8)]
        for m in (1, 2, 4, 8, 16):
            a = torch.randn(m, k, device=dev, dtype=torch.float16)
            outs = [torch.empty(m, nn, device=dev, dtype=torch.float16) for _ in range(8)]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):  # warm-up outside the capture, as CUDA graphs need
                for i in range(8):
                    torch.matmul(a, ws[i].t(), out=outs[i])
            torch.cuda.current_stream().wait_stream(side)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                for i in range(200):
                    torch.matmul(a, ws[i % 8].t(), out=outs[i % 8])
            us = bench(g.replay, reps=5, warmup=1) * 1e3 / 200
            gbps = nn * k * 2 / (us * 1e3)
            res[f"decode_f16_{m}x{nn}x{k}_us"] = round(us, 2)
            res[f"decode_f16_{m}x{nn}x{k}_of_copy"] = round(gbps / res["copyGBps"], 3)
        del ws
    print(json.dumps(res, indent=2))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
