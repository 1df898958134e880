"""Runs Traefik with Go's memmove on the path it takes on Intel Ice Lake and newer, on any x86-64 CPU.

Traefik 3.3.4 to 3.7.x embed wazero v1.8.0, whose amd64 compiler calls Go's ``runtime.memmove``
for wasm ``memory.copy``/``memory.fill`` and assumes register DX survives the call. Since Go 1.24,
memmove clobbers DX on the forward copy it takes for >= 2,048 bytes to a 16-byte-aligned
destination when ``runtime.memmoveBits`` has its "prefer REP MOVS" bit: ``runtime.init`` sets it on
GenuineIntel CPUs with ERMS and FSRM. (With no AVX at all, copies with both ends 8-byte aligned
reach the same code, whatever the vendor.) On other CPUs the crash never shows, so a suite run
there would prove nothing.

So the test starts Traefik under ptrace, stops it right after ``execve`` (before Go's runtime
runs), sets that bit in ``runtime.memmoveBits`` through ``/proc/<pid>/mem``, and detaches: the
process then runs natively, exactly as on an Ice Lake CPU. No file is changed. The byte's address
is found in the binary itself: ``runtime.memmove`` through Go's function table (``.gopclntab``),
then the first ``mov al, [rip+disp32]`` in it, which loads ``memmoveBits``.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import struct
import subprocess
from pathlib import Path
from typing import Any

# runtime.memmoveBits: bit 1 is "AVX", bit 2 "prefer REP MOVS" (Intel with ERMS and FSRM).
REP_MOVS_PREFERRED = 2
PTRACE_TRACEME, PTRACE_DETACH = 0, 17
# How far into runtime.memmove the load of memmoveBits is looked for (it is at +0x74 in Go 1.26).
SEARCH_BYTES = 512


class MemmovePathError(RuntimeError):
    pass


def cpu_can_crash() -> tuple[bool, str]:
    """Whether this CPU takes the clobbering path by itself, and what /proc/cpuinfo says."""
    text = Path("/proc/cpuinfo").read_text()
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", text, re.M)
    flags = re.search(r"^flags\s*:(.*)$", text, re.M)
    have = set(flags.group(1).split()) if flags else set()
    v = vendor.group(1) if vendor else "unknown"
    intel_fast = v == "GenuineIntel" and {"erms", "fsrm"} <= have
    no_avx = "avx" not in have
    shown = " ".join(f for f in ("avx", "erms", "fsrm") if f in have) or "none of avx erms fsrm"
    return intel_fast or no_avx, f"{v}, {shown}"


def _sections(data: bytes) -> dict[str, tuple[int, int, int]]:
    """ELF64 little-endian section name -> (address, file offset, size)."""
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise MemmovePathError("not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, int, int, int]:
        name, _type, _flags, addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, addr, off, size

    strtab_off = header(shstrndx)[2]
    out = {}
    for i in range(shnum):
        name, addr, off, size = header(i)
        end = data.index(b"\0", strtab_off + name)
        out[data[strtab_off + name:end].decode()] = (addr, off, size)
    return out


def _function(data: bytes, sections: dict[str, tuple[int, int, int]], wanted: bytes) -> int:
    """Entry address of a function, from Go's pclntab (Go 1.20+ layout)."""
    if ".gopclntab" not in sections:
        raise MemmovePathError("no .gopclntab section: not a Go binary")
    _, off, _ = sections[".gopclntab"]
    magic, = struct.unpack_from("<I", data, off)
    if magic != 0xFFFFFFF1:
        raise MemmovePathError(f"pclntab magic {magic:#x}: not the Go 1.20+ layout this reads")
    nfunc, _nfiles, text_start, funcname_off, _cu, _filetab, _pctab, functab_off = struct.unpack_from(
        "<QQQQQQQQ", data, off + 8)
    if text_start == 0:
        # Left for the runtime to fill in some builds: functions are offsets from .text.
        text_start = sections[".text"][0]
    for i in range(nfunc):
        entry, func_off = struct.unpack_from("<II", data, off + functab_off + 8 * i)
        name_off, = struct.unpack_from("<i", data, off + functab_off + func_off + 4)
        start = off + funcname_off + name_off
        if data[start:start + len(wanted) + 1] == wanted + b"\0":
            return text_start + entry
    raise MemmovePathError(f"{wanted.decode()} not found in the function table")


@functools.lru_cache(maxsize=None)
def memmove_bits_address(binary: str) -> int:
    """The virtual address of runtime.memmoveBits in this Go binary."""
    data = Path(binary).read_bytes()
    sections = _sections(data)
    entry = _function(data, sections, b"runtime.memmove")
    text_addr, text_off, _ = sections[".text"]
    code_off = text_off + entry - text_addr
    code = data[code_off:code_off + SEARCH_BYTES]
    # 8a 05 <disp32>: mov al, [rip + disp32]; the next instruction starts 6 bytes later.
    at = code.find(b"\x8a\x05")
    if at < 0:
        raise MemmovePathError("no load of memmoveBits in runtime.memmove")
    disp, = struct.unpack_from("<i", code, at + 2)
    return entry + at + 6 + disp


_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long


def _trace_me() -> None:
    # In the child, between fork and exec: the kernel stops it with SIGTRAP once exec is done.
    _libc.ptrace(PTRACE_TRACEME, 0, None, None)


def popen_on_ice_lake_path(argv: list[str], **kwargs: Any) -> "subprocess.Popen[Any]":
    """``subprocess.Popen(argv, **kwargs)`` for a Go binary, with the REP MOVS bit set before
    its runtime starts. The process is the caller's child, detached from tracing before this
    returns: signals, ``wait`` and ``kill`` behave as for any child."""
    address = memmove_bits_address(argv[0])
    proc = subprocess.Popen(argv, preexec_fn=_trace_me, **kwargs)
    _, status = os.waitpid(proc.pid, 0)
    if not os.WIFSTOPPED(status):
        raise MemmovePathError(f"{argv[0]} did not stop after exec (status {status:#x}): is ptrace allowed?")
    try:
        with open(f"/proc/{proc.pid}/mem", "r+b", buffering=0) as mem:
            mem.seek(address)
            old = mem.read(1)[0]
            mem.seek(address)
            mem.write(bytes([old | REP_MOVS_PREFERRED]))
    finally:
        if _libc.ptrace(PTRACE_DETACH, proc.pid, None, None) != 0:
            err = ctypes.get_errno()
            proc.kill()
            raise MemmovePathError(f"ptrace detach failed: {os.strerror(err)}")
    return proc
