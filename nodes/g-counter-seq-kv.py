#!/usr/bin/env python3
"""g-counter-seq-kv (reference, correct): the Fly.io "Gossip Glomers" style
counter, kept in the harness's `seq-kv` service instead of in the node.

Each node owns the key named after itself and is its only writer. An `add`
reads the key and `cas`es it from that value to value + delta (creating it
if missing); adds on one node run one at a time, so after a lost reply the
node can tell by reading again whether its cas took effect (deltas are
positive: the value only grows, so a stale duplicate of an old cas can never
match again; a read equal to one of the add's cas targets means that cas
took effect). A `read` sums every node's key. seq-kv may serve stale values
to other nodes, so reads lag but never go back; the node keeps no state, so
a crash loses nothing.
"""
import collections, os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node

node = Node()
queue = collections.deque()  # pending add requests, handled one at a time
TRIES = 8
RPC = 0.1  # seconds; the harness's latency is a few ms, so a lost message costs little


def value_of(reply):
    if reply.get("type") == "read_ok":
        return reply["value"]
    return 0 if reply.get("code") == 20 else None


def start_next():
    if queue:
        add_step(queue[0], TRIES, [])


def finish(msg, body):
    queue.popleft()
    node.reply(msg, body)
    start_next()


def add_step(msg, tries, targets):
    """Reads the key: done if any cas this add sent took effect (the value
    equals one of its targets), else cas from what is there now. Only this
    node writes its key and adds run one at a time, so a value equal to a
    target can only come from that target's cas."""
    if tries == 0:
        return finish(msg, {"type": "error", "code": 0, "text": "seq-kv did not answer"})
    delta = msg["body"]["delta"]

    def on_read(reply):
        current = value_of(reply)
        if current is None:
            return add_step(msg, tries - 1, targets)
        if current in targets:
            return finish(msg, {"type": "add_ok"})
        target = current + delta
        node.rpc("seq-kv", {"type": "cas", "key": node.node_id, "from": current, "to": target,
                            "create_if_not_exists": True},
                 lambda r: finish(msg, {"type": "add_ok"}) if r.get("type") == "cas_ok"
                 else add_step(msg, tries - 1, targets + [target]),
                 timeout=RPC)

    node.rpc("seq-kv", {"type": "read", "key": node.node_id}, on_read, timeout=RPC)


@node.handler("add")
def add(msg):
    queue.append(msg)
    if len(queue) == 1:
        start_next()


@node.handler("read")
def read(msg):
    ids = list(node.node_ids)
    totals, state = {}, {"answered": False}

    def collect(who, reply):
        if state["answered"]:
            return
        v = value_of(reply)
        if v is None:
            state["answered"] = True
            return node.error(msg, 0, "seq-kv did not answer for %s" % who)
        totals[who] = v
        if len(totals) == len(ids):
            state["answered"] = True
            node.reply(msg, {"type": "read_ok", "value": sum(totals.values())})

    for who in ids:
        node.rpc("seq-kv", {"type": "read", "key": who}, lambda r, who=who: collect(who, r),
                 timeout=RPC)


node.run()
