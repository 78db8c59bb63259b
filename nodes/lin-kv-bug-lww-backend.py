#!/usr/bin/env python3
"""lin-kv-bug-lww-backend (BUGGY): proxies to `lww-kv` instead of `lin-kv`.

Identical to lin-kv.py except for the backend. `lww-kv` is last-write-wins
per key and its reads may return a stale version, and its cas may compare
against a stale version too, so reads can miss acknowledged writes.
Must be caught by: the linearizability checker (stale read after a completed
write, or a cas that succeeds against a value that was already overwritten).
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node

SERVICE = "lww-kv"  # BUG: should be "lin-kv"
FIELDS = {"read": ("key",), "write": ("key", "value"), "cas": ("key", "from", "to")}
node = Node()


def proxy(msg):
    body = msg["body"]
    request = {"type": body["type"]}
    for field in FIELDS[body["type"]]:
        request[field] = body[field]
    if "create_if_not_exists" in body:
        request["create_if_not_exists"] = body["create_if_not_exists"]

    def relay(answer):
        answer = {k: v for k, v in answer.items() if k not in ("msg_id", "in_reply_to")}
        node.reply(msg, answer)

    node.rpc(SERVICE, request, relay)


for kind in FIELDS:
    node.handler(kind)(proxy)
node.run()
