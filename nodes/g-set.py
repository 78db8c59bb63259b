#!/usr/bin/env python3
"""g-set (reference, correct): a state-based grow-only set.

`add{element}` inserts and is acknowledged (`add_ok`) once a peer has merged
it (`replicate{elements:[element]}` -> `replicate_ok`; error 0 if none
answered in time). `read` returns the sorted elements. Every GOSSIP_PERIOD a
node sends every peer `gossip{elements:[...]}`: the elements new to it since
the last round, and every FULL_EVERY-th round the whole set (anti-entropy for
lost deltas and restarted peers). Merge is union; elements may be any JSON.
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD, canon, sort_values

FULL_EVERY = 8
node = Node()
elements = {}  # canonical JSON -> element
fresh = []  # elements new here since the last gossip round
rounds = [0]


def insert(element):
    key = canon(element)
    if key not in elements:
        elements[key] = element
        fresh.append(element)


@node.handler("add")
def add(msg):
    element = msg["body"]["element"]
    insert(element)
    node.ack_after_replication(msg, {"type": "replicate", "elements": [element]}, {"type": "add_ok"})


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": sort_values(elements.values())})


@node.crdt
def merge(body):
    for element in body["elements"]:
        insert(element)


def gossip():
    rounds[0] += 1
    batch = list(elements.values()) if rounds[0] % FULL_EVERY == 0 else fresh
    if batch:
        node.send_to_peers({"type": "gossip", "elements": batch})
    fresh.clear()


node.every(GOSSIP_PERIOD, gossip)
node.run()
