#!/usr/bin/env python3
"""g-counter-bug-sum-merge (BUGGY): merges replica state by ADDING counts.

Each `add{delta}` bumps this replica's slot and pushes the slot's new total to
every peer as `gossip{replica, count}`; the receiver does
counts[replica] += count instead of taking the max. Slot totals are
cumulative, so every push after the first one re-counts the earlier
increments (a duplicated packet counts them once more); a lost push is simply
missing. The values settle (pushes stop with the adds) but are too high.
Must be caught by: data-loss (a read, the final one included, above the
acknowledged plus indefinite deltas); often convergence too.
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, is_int

node = Node()
counts = {}


@node.handler("add")
def add(msg):
    delta = msg["body"]["delta"]
    if not is_int(delta) or delta < 0:
        return node.error(msg, 12, "delta must be a non-negative integer")
    mine = counts[node.replica_id] = counts.get(node.replica_id, 0) + delta
    node.send_to_peers({"type": "gossip", "replica": node.replica_id, "count": mine})
    node.reply(msg, {"type": "add_ok"})


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": sum(counts.values())})


@node.handler("gossip")
def gossip(msg):
    replica, count = msg["body"]["replica"], msg["body"]["count"]
    counts[replica] = counts.get(replica, 0) + count  # BUG: should be max


node.run()
