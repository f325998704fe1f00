"""Lab: PyTorch's f16 GEMMs at the LLaMA-2-7B projection shapes and the row counts of decode
batches and prefill steps, with f16 and with f32 output, through cuBLAS and cuBLASLt, to read how
far parallm's native matmul (cublasGemmEx, f16 in, f32 out, CUBLAS_COMPUTE_32F) is from what the
same GPU's BLAS reaches. Prints one line per (rows, shape, variant): us, TFLOP/s, GB/s of weights.
Run on the GPU machine:  python3 bench/lab_torch_gemm.py [--rows 256,512,2048]"""
import argparse

import torch

p = argparse.ArgumentParser()
p.add_argument("--rows", default="64,128,256,320,512,2048")
p.add_argument("--shapes", default="4096x4096,12288x4096,22016x4096,4096x11008")
args = p.parse_args()
dev = "cuda"
print("gpu:", torch.cuda.get_device_name(0), "torch", torch.__version__)


def bench(fn, iters=50):
    for _ in range(10):
        fn()
    torch.cuda.synchronize()
    # weights rotate over copies elsewhere; here steady state, as the engine runs a layer's weights once a step
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ts = []
    for _ in range(5):
        s.record()
        for _ in range(iters):
            fn()
        e.record()
        torch.cuda.synchronize()
        ts.append(s.elapsed_time(e) / iters)
    ts.sort()
    return ts[2] * 1e3  # us


shapes = [tuple(map(int, s.split("x"))) for s in args.shapes.split(",")]
libs = ["cublas", "cublaslt"]
for m in map(int, args.rows.split(",")):
    for n, k in shapes:
        # several weight copies past the 50 MB L2, as a model's 32 layers are
        copies = max(1, (256 << 20) // (n * k * 2))
        ws = [torch.randn(n, k, device=dev, dtype=torch.float16) for _ in range(copies)]
        a = torch.randn(m, k, device=dev, dtype=torch.float16)
        for lib in libs:
            torch.backends.cuda.preferred_blas_library(lib)
            it = [0]

            def f16():
                it[0] += 1
                return torch.mm(a, ws[it[0] % copies].t())

            def f32():
                it[0] += 1
                return torch.mm(a, ws[it[0] % copies].t(), out_dtype=torch.float32)

            for name, fn in (("f16 out", f16), ("f32 out", f32)):
                try:
                    us = bench(fn)
                except Exception as ex:  # out_dtype is newer than some torch builds
                    print(f"m={m:<5} {n}x{k:<6} {lib:<9} {name}: {type(ex).__name__} {str(ex)[:80]}")
                    continue
                print(f"m={m:<5} {n}x{k:<6} {lib:<9} {name}: {us:8.1f} us {2 * m * n * k / us / 1e6:7.1f} TFLOP/s {n * k * 2 / us / 1e3:7.0f} GB/s")
        del ws, a
        torch.cuda.empty_cache()
