#!/usr/bin/env python3
"""lww-register-bug-arrival-order (BUGGY): the last write to ARRIVE wins.

Same messages as lww-register.py (writes are stamped (clock, replica),
answered `write_ok{ts}`, and gossiped as `gossip{stamp, value}` every
GOSSIP_PERIOD), but the merge ignores the stamp and takes whatever arrives.
Replicas keep overwriting each other with older values: they flip while
gossip circulates and may settle on a write that is not the greatest stamp,
so the latest write is lost.
Must be caught by: data-loss for the LWW register (the final value is not the
write with the greatest (timestamp, replica)) and, while values still
circulate, convergence (replicas disagree).
"""
import os, sys, time
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD

node = Node()
state = {"stamp": None, "value": None, "clock": 0}


@node.handler("write")
def write(msg):
    value = msg["body"]["value"]
    state["clock"] = max(state["clock"] + 1, time.time_ns() // 1000)
    state["stamp"], state["value"] = [state["clock"], node.replica_id], value
    node.reply(msg, {"type": "write_ok", "ts": state["stamp"]})


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": state["value"]})


@node.handler("gossip")
def gossip(msg):
    state["clock"] = max(state["clock"], msg["body"]["stamp"][0])
    # BUG: should keep the greater stamp; takes the latest arrival instead.
    state["stamp"], state["value"] = msg["body"]["stamp"], msg["body"]["value"]


def push():
    if state["stamp"] is None:
        return
    node.send_to_peers({"type": "gossip", "stamp": state["stamp"], "value": state["value"]})


node.every(GOSSIP_PERIOD, push)
node.run()
