#!/usr/bin/env python3
"""lin-kv-bug-lww-backend (BUGGY): lin-kv.py on the `lww-kv` service instead of `lin-kv`.

Exactly lin-kv.py (loaded from it) with one change: the backend. `lww-kv` is
last-write-wins per key and its reads may return a stale version, so a read
can miss a write that completed before it began.
Must be caught by: the linearizability checker (stale read).
"""
import importlib.util, os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("lin_kv", os.path.join(here, "lin-kv.py"))
lin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lin)

lin.SERVICE = "lww-kv"  # BUG: should be "lin-kv"
for kind in ("read", "write", "cas"):
    lin.node.handler(kind)(lin.handle)
lin.node.run()
