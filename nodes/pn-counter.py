#!/usr/bin/env python3
"""pn-counter (reference, correct): two grow-only counters, P and N.

`add{delta}` adds delta to this replica's P slot when positive, -delta to its
N slot when negative, and is acknowledged once a peer has merged the new slot
(`replicate{p, n}` -> `replicate_ok`; error 0 if none answered in time).
`read` returns sum(P) - sum(N). Full-state `gossip{p, n}` every
GOSSIP_PERIOD to every peer; merge is the per-slot max of each map. Fresh
replica id per process start (see g-counter.py).
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD, is_int

node = Node()
p, n = {}, {}


@node.handler("add")
def add(msg):
    delta = msg["body"]["delta"]
    if not is_int(delta):
        return node.error(msg, 12, "delta must be an integer")
    side = p if delta >= 0 else n
    side[node.replica_id] = side.get(node.replica_id, 0) + abs(delta)
    me = node.replica_id
    node.ack_after_replication(msg, {"type": "replicate", "p": {me: p.get(me, 0)}, "n": {me: n.get(me, 0)}},
                               {"type": "add_ok"})


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": sum(p.values()) - sum(n.values())})


def merge_map(mine, theirs):
    for replica, count in theirs.items():
        if is_int(count) and count > mine.get(replica, 0):
            mine[replica] = count


@node.crdt
def merge(body):
    merge_map(p, body["p"])
    merge_map(n, body["n"])


def gossip():
    node.send_to_peers({"type": "gossip", "p": p, "n": n})


node.every(GOSSIP_PERIOD, gossip)
node.run()
