"""Per-function costs of a callgrind dump of Traefik (scripts/host_cost.py --keep DIR).

Traefik's release binary has no ELF symbols, so callgrind names functions by
address; Go's own function table (.gopclntab) names them here. Code outside
Go's text (wazero's compiled wasm: the guest and its call trampolines) shows as
the last Go symbol, `go:textfipsend`.

Usage: python3 scripts/callgrind_funcs.py TRAEFIK DUMP REQUESTS [name-substring ...]
(no substring: the 40 functions with the most own instructions)
Costs per request; with cycles and GC assists, inclusive figures move between runs.
"""

import bisect
import collections
import struct
import subprocess
import sys

BIN = sys.argv[1]; DUMP = sys.argv[2]; N = int(sys.argv[3])
data = open(BIN, 'rb').read()
sections = {}
for row in subprocess.run(["objdump", "-h", BIN], capture_output=True, text=True).stdout.splitlines():
    f = row.split()
    if len(f) >= 6 and f[1] in (".gopclntab", ".text"):
        sections[f[1]] = (int(f[3], 16), int(f[5], 16))
text_addr = sections[".text"][0]
off = sections[".gopclntab"][1]
magic, = struct.unpack_from('<I', data, off)
nfunc, nfiles, textStart, fnameOff, cuOff, ftabOff, pctabOff, pclnOff = struct.unpack_from('<QQQQQQQQ', data, off + 8)
entries = []
for i in range(nfunc):
    eoff, foff = struct.unpack_from('<II', data, off + pclnOff + 8 * i)
    fe, noff = struct.unpack_from('<Ii', data, off + pclnOff + foff)
    s = off + fnameOff + noff
    name = data[s:data.index(b'\0', s)].decode(errors='replace')
    entries.append((text_addr + eoff, name))
entries.sort()
addrs = [a for a, _ in entries]
def sym(a):
    i = bisect.bisect_right(addrs, a) - 1
    return entries[i][1] if i >= 0 else '?'
# callgrind dump: self cost per fn, and calls (count, inclusive) per callee
selfc = collections.Counter(); calls = collections.Counter(); incl = collections.Counter()
names = {}
cur = None; pending = None
def fname(tok):
    tok = tok.strip()
    if tok.startswith('('):
        i = tok.index(')'); key = tok[:i+1]; rest = tok[i+1:].strip()
        if rest: names[key] = rest
        return names.get(key, key)
    return tok
for line in open(DUMP, errors='replace'):
    if line.startswith('fn='):
        cur = fname(line[3:]); continue
    if line.startswith('cfn='):
        callee = fname(line[4:]); continue
    if line.startswith('calls='):
        pending = (callee, int(line.split()[0][6:])); continue
    if line and (line[0].isdigit() or line[0] in '+-*'):
        parts = line.split()
        if len(parts) >= 2:
            try: c = int(parts[1])
            except ValueError: continue
            if pending:
                calls[pending[0]] += pending[1]; incl[pending[0]] += c; pending = None
            else:
                selfc[cur] += c
def addr(n):
    try: return int(n.split()[0].split("'")[0], 16) if n.startswith('0x') else None
    except ValueError: return None
agg_self = collections.Counter(); agg_calls = collections.Counter(); agg_incl = collections.Counter()
for n, c in selfc.items():
    a = addr(n); agg_self[sym(a) if a else n] += c
for n, c in calls.items():
    a = addr(n); s = sym(a) if a else n
    agg_calls[s] += c; agg_incl[s] += incl[n]
pats = sys.argv[4:]
for s, c in sorted(agg_incl.items(), key=lambda kv: -kv[1]):
    if any(p in s for p in pats):
        k = agg_calls[s]
        print(f"{k/N:6.2f}/req  incl {c/N:9,.0f}/req  {c/max(k,1):8,.0f}/call  self {agg_self[s]/N:8,.0f}/req  {s}")
if not pats:
    for s, c in sorted(agg_self.items(), key=lambda kv: -kv[1])[:40]:
        print(f"self {c/N:9,.0f}/req calls {agg_calls[s]/N:6.2f}  incl {agg_incl[s]/N:9,.0f}  {s}")
