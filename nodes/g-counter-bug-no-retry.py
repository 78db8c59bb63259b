#!/usr/bin/env python3
"""g-counter-bug-no-retry (BUGGY): each increment is sent once, as a delta.

`add{delta}` adds to the local total and sends `delta{delta}` once to every
peer, which adds it to its own total. No acknowledgement, no retry, no
anti-entropy: a lost message is an increment that peer never sees (and a
duplicated one is counted twice); a crashed node restarts at 0 for good.
Must be caught by: convergence (replicas disagree after quiescence) and
data-loss (final reads miss acknowledged increments) under loss/partition.
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, is_int

node = Node()
total = [0]


@node.handler("add")
def add(msg):
    delta = msg["body"]["delta"]
    if not is_int(delta) or delta < 0:
        return node.error(msg, 12, "delta must be a non-negative integer")
    total[0] += delta
    for peer in node.peers():  # BUG: fire and forget
        node.send(peer, {"type": "delta", "delta": delta})
    node.reply(msg, {"type": "add_ok"})


@node.handler("delta")
def delta(msg):
    total[0] += msg["body"]["delta"]


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": total[0]})


node.run()
