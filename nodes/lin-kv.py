#!/usr/bin/env python3
"""lin-kv (reference, correct): a linearizable key-value store on the `lin-kv` service.

Client `read{key}`, `write{key,value}`, `cas{key,from,to}` are answered
`read_ok{value}` / `write_ok` / `cas_ok`, or error 20 (no such key), 22
(cas: current value is not `from`), 0 (no answer from the service within
RPC_TIMEOUT: indefinite). The node keeps no state, so a crash loses nothing.

The network may duplicate, delay and reorder requests to the service, so a
plain proxy is not enough (a duplicated write applied late, or a cas
answered "22" by its own duplicate). Instead every stored value is wrapped
as {"v": value, "t": unique token, "h": [tokens it replaced, newest first]}
and every update is a service `cas` from the exact wrapped value just read:
 - a copy of the cas applies at most once: the value it expects is gone for
   good after any change (tokens are unique);
 - after a failed or unanswered cas the node reads again; if its token is
   the current one or in "h", the update took effect; otherwise it did not
   and never will, and the node decides again (retrying with the same token).
Reads are single service reads; requests whose answer was lost are resent.
"""
import itertools, os, sys, time
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, RPC_TIMEOUT

SERVICE, HISTORY, RESEND = "lin-kv", 32, 0.25
node = Node()
serial = itertools.count(1)


def wrapped(stored):
    if isinstance(stored, dict) and "t" in stored:
        return stored
    return {"v": stored, "t": None, "h": []}  # written by someone else


def handle(msg):
    body = msg["body"]
    kind, key = body["type"], body["key"]
    new_value = body["value"] if kind == "write" else body["to"] if kind == "cas" else None
    expected = body["from"] if kind == "cas" else None
    token = "%s/%d" % (node.replica_id, next(serial))
    deadline = time.monotonic() + RPC_TIMEOUT

    def call(request, then):  # resends while unanswered, until the deadline
        left = deadline - time.monotonic()
        if left <= 0:
            return node.error(msg, 0, "the %s service did not answer in time" % SERVICE)
        node.rpc(SERVICE, request,
                 lambda r: call(request, then) if r.get("code") == 0 else then(r),
                 timeout=min(left, RESEND))

    def decide(reply):
        if reply.get("type") == "read_ok":
            current = wrapped(reply["value"])
        elif reply.get("code") == 20:
            current = None
        else:
            return node.reply(msg, {k: v for k, v in reply.items() if k not in ("msg_id", "in_reply_to")})
        if current and (current["t"] == token or token in current["h"]):
            return node.reply(msg, {"type": kind + "_ok"})  # our update took effect
        if kind == "read":
            if current is None:
                return node.error(msg, 20, "key does not exist")
            return node.reply(msg, {"type": "read_ok", "value": current["v"]})
        if kind == "cas" and current is None:
            return node.error(msg, 20, "key does not exist")
        if kind == "cas" and current["v"] != expected:
            return node.error(msg, 22, "expected %r, found %r" % (expected, current["v"]))
        history = ([current["t"]] + current["h"])[:HISTORY] if current else []
        request = {"type": "cas", "key": key, "from": reply.get("value"),
                   "to": {"v": new_value, "t": token, "h": history}}
        if current is None:
            request["create_if_not_exists"] = True
        call(request, lambda r: node.reply(msg, {"type": kind + "_ok"}) if r.get("type") == "cas_ok"
             else call({"type": "read", "key": key}, decide))

    call({"type": "read", "key": key}, decide)


if __name__ == "__main__":  # the buggy variants import this file and change one thing
    for kind in ("read", "write", "cas"):
        node.handler(kind)(handle)
    node.run()
