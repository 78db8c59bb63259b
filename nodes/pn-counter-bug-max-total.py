#!/usr/bin/env python3
"""pn-counter-bug-max-total (BUGGY): one signed total per replica, merged by max.

Each replica keeps a single signed total for itself (instead of separate P
and N slots) and gossip `gossip{totals}` merges per slot by max. A decrement
lowers the total, so the peers' older, higher copy wins every merge, and it
even comes back to overwrite the decrementing node's own slot: decrements
are lost, the replicas converge on a too-high value.
Must be caught by: data-loss (final value above the acknowledged sum plus any
subset of indefinite deltas).
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD, is_int

node = Node()
totals = {}


@node.handler("add")
def add(msg):
    delta = msg["body"]["delta"]
    if not is_int(delta):
        return node.error(msg, 12, "delta must be an integer")
    totals[node.replica_id] = totals.get(node.replica_id, 0) + delta
    node.reply(msg, {"type": "add_ok"})


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": sum(totals.values())})


@node.handler("gossip")
def gossip(msg):
    for replica, total in msg["body"]["totals"].items():
        if replica not in totals or total > totals[replica]:  # BUG: max of a non-monotonic value
            totals[replica] = total


def push():
    node.send_to_peers({"type": "gossip", "totals": totals})


node.every(GOSSIP_PERIOD, push)
node.run()
