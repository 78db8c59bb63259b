#!/usr/bin/env python3
"""lin-kv-bug-local-reads (BUGGY): reads served from a local cache.

Writes and cas go to the `lin-kv` service as in lin-kv.py, and every value
this node learns (from its own write_ok / cas_ok, or a read it proxied) is
cached. A read of a cached key is answered from the cache without asking the
service, so it misses writes made through other nodes: stale reads.
Must be caught by: the linearizability checker (a read returns a value that
was overwritten by a write that completed before the read began).
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, canon

FIELDS = {"read": ("key",), "write": ("key", "value"), "cas": ("key", "from", "to")}
node = Node()
cache = {}  # canonical key -> last value this node saw


def proxy(msg):
    body = msg["body"]
    kind, key = body["type"], canon(body["key"])
    if kind == "read" and key in cache:  # BUG: the cache may be stale
        return node.reply(msg, {"type": "read_ok", "value": cache[key]})
    request = {"type": kind}
    for field in FIELDS[kind]:
        request[field] = body[field]
    if "create_if_not_exists" in body:
        request["create_if_not_exists"] = body["create_if_not_exists"]

    def relay(answer):
        if answer.get("type") == "read_ok":
            cache[key] = answer["value"]
        elif answer.get("type") == "write_ok":
            cache[key] = body["value"]
        elif answer.get("type") == "cas_ok":
            cache[key] = body["to"]
        answer = {k: v for k, v in answer.items() if k not in ("msg_id", "in_reply_to")}
        node.reply(msg, answer)

    node.rpc("lin-kv", request, relay)


for kind in FIELDS:
    node.handler(kind)(proxy)
node.run()
