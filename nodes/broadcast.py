#!/usr/bin/env python3
"""broadcast (reference, correct): every message reaches every node.

`topology` is acknowledged but not needed: gossip goes to every peer.
`broadcast{message}` stores locally and is acknowledged (`broadcast_ok`) once
a peer has merged it (`replicate{messages:[message]}` -> `replicate_ok`;
error 0 if none answered in time). Every GOSSIP_PERIOD a node sends every
peer `gossip{messages:[...]}`: the messages new to it since the last round,
and every FULL_EVERY-th round its whole set, which repairs loss, partitions
and a peer's crash-restart. Merge is union.
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD, canon, sort_values

FULL_EVERY = 8
node = Node()
messages = {}  # canonical JSON -> message
fresh = []  # messages new here since the last gossip round
rounds = [0]


def insert(message):
    key = canon(message)
    if key not in messages:
        messages[key] = message
        fresh.append(message)


@node.handler("topology")
def topology(msg):
    node.reply(msg, {"type": "topology_ok"})


@node.handler("broadcast")
def broadcast(msg):
    message = msg["body"]["message"]
    insert(message)
    node.ack_after_replication(msg, {"type": "replicate", "messages": [message]},
                               {"type": "broadcast_ok"})


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "messages": sort_values(messages.values())})


@node.crdt
def merge(body):
    for message in body["messages"]:
        insert(message)


def gossip():
    rounds[0] += 1
    batch = list(messages.values()) if rounds[0] % FULL_EVERY == 0 else fresh
    if batch:
        node.send_to_peers({"type": "gossip", "messages": batch})
    fresh.clear()


node.every(GOSSIP_PERIOD, gossip)
node.run()
