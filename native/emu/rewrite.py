#!/usr/bin/env python3
"""Turns a CUDA kernel file into C++ for the CPU emulator (emu.h): each launch
`kernel<T><<<grid, block, smem, stream>>>(args)` becomes `::emu::launch(kernel<T>, ::emu::Cfg(grid,
block, smem, stream))(args)`, and `extern __shared__ ... name[];` a pointer to the launch's
dynamic shared memory. Usage: rewrite.py IN.cu OUT.cpp"""
import re
import sys

src = open(sys.argv[1]).read()
launch = re.compile(r"([A-Za-z_][\w:]*(?:<[^<>;]*>)?)<<<(.*?)>>>")
out, n = launch.subn(r"::emu::launch(\1, ::emu::Cfg(\2))", src)
out, m = re.subn(r"extern __shared__ (?:__align__\(\d+\) )?char (\w+)\[\];", r"char* \1 = ::emu::dynamic_smem();", out)
if "<<<" in out or "extern __shared__" in out:
    sys.exit(f"rewrite.py: {sys.argv[1]}: a launch or shared declaration it does not understand")
open(sys.argv[2], "w").write(f'#line 1 "{sys.argv[1]}"\n' + out)
