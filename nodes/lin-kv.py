#!/usr/bin/env python3
"""lin-kv (reference, correct): a linearizable key-value store by proxy.

Every client `read{key}`, `write{key,value}` and `cas{key,from,to}` is sent
once (never retried: a retried write could take effect twice) to the
harness's `lin-kv` service, and the service's answer is relayed to the client
(`read_ok{value}`, `write_ok`, `cas_ok`, or the service's error, e.g. 20 or
22). If the service does not answer within RPC_TIMEOUT the client gets error
0 (timeout, indefinite). The node keeps no state, so a crash loses nothing.
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node

SERVICE = "lin-kv"
FIELDS = {"read": ("key",), "write": ("key", "value"), "cas": ("key", "from", "to")}
node = Node()


def proxy(msg):
    body = msg["body"]
    request = {"type": body["type"]}
    for field in FIELDS[body["type"]]:
        request[field] = body[field]  # KeyError -> error 12 (malformed)
    if "create_if_not_exists" in body:
        request["create_if_not_exists"] = body["create_if_not_exists"]

    def relay(answer):
        answer = {k: v for k, v in answer.items() if k not in ("msg_id", "in_reply_to")}
        node.reply(msg, answer)

    node.rpc(SERVICE, request, relay)


for kind in FIELDS:
    node.handler(kind)(proxy)
node.run()
