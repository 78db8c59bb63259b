#!/usr/bin/env python3
"""lin-kv-bug-local-reads (BUGGY): reads served from a local cache.

lin-kv.py (loaded from it) plus a "read cache": every value this node learns
(its own write_ok / cas_ok, or a read it did through the `lin-kv` service) is
cached, and a read of a cached key is answered from the cache without asking
the service. It misses writes made through other nodes: stale reads.
Must be caught by: the linearizability checker (a read returns a value that
was overwritten by a write that completed before the read began).
"""
import importlib.util, os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("lin_kv", os.path.join(here, "lin-kv.py"))
lin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(lin)
from maelstrom import canon

node, cache = lin.node, {}  # canonical key -> last value this node saw
send_reply = node.reply


def reply(req, body):  # remember what each answered request showed us
    b, key = req["body"], canon(req["body"].get("key"))
    kind = body.get("type")
    if kind == "read_ok":
        cache[key] = body["value"]
    elif kind == "write_ok":
        cache[key] = b["value"]
    elif kind == "cas_ok":
        cache[key] = b["to"]
    send_reply(req, body)


def handle(msg):
    key = canon(msg["body"]["key"])
    if msg["body"]["type"] == "read" and key in cache:  # BUG: the cache may be stale
        return send_reply(msg, {"type": "read_ok", "value": cache[key]})
    lin.handle(msg)


node.reply = reply
for kind in ("read", "write", "cas"):
    node.handler(kind)(handle)
node.run()
