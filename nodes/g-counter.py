#!/usr/bin/env python3
"""g-counter (reference, correct): a state-based grow-only counter.

State: {replica id: count}. `add{delta}` bumps this replica's slot and is
acknowledged (`add_ok`) once a peer has merged the new slot value
(`replicate{counts}` -> `replicate_ok`; error 0 if no peer answered in time).
`read` returns the sum. Every GOSSIP_PERIOD the full map goes to every peer
as `gossip{counts}`. Merge is the per-slot max (idempotent, commutative,
associative). A restarted node gets a fresh replica id, so its new adds never
hide behind the old slot that peers still hold.
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD, is_int

node = Node()
counts = {}


@node.handler("add")
def add(msg):
    delta = msg["body"]["delta"]
    if not is_int(delta) or delta < 0:
        return node.error(msg, 12, "delta must be a non-negative integer")
    mine = counts[node.replica_id] = counts.get(node.replica_id, 0) + delta
    node.ack_after_replication(msg, {"type": "replicate", "counts": {node.replica_id: mine}},
                               {"type": "add_ok"})


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": sum(counts.values())})


@node.crdt
def merge(body):
    for replica, count in body["counts"].items():
        if is_int(count) and count > counts.get(replica, 0):
            counts[replica] = count


def gossip():
    node.send_to_peers({"type": "gossip", "counts": counts})


node.every(GOSSIP_PERIOD, gossip)
node.run()
