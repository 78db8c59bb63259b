#!/usr/bin/env python3
"""broadcast-bug-duplicates (BUGGY): appends every receipt to a list.

Floods new messages along the topology (`forward{message}`, all peers until
a `topology` arrives) and runs full-state anti-entropy `gossip{messages}`
every GOSSIP_PERIOD, so nothing is lost. But the list that `read` returns is
appended to on EVERY client `broadcast` and peer `forward` receipt, before the
"seen it already?" check, so a message that arrives twice (two neighbours
forwarding it, or a duplicated packet) shows up twice in reads.
Must be caught by: data-loss / set-full's "no duplicates in any read".
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, GOSSIP_PERIOD, canon, sort_values

node = Node()
seen = {}  # canonical -> message (dedup for forwarding and gossip)
log = []  # what reads return
neighbours = []


@node.handler("topology")
def topology(msg):
    neighbours[:] = msg["body"]["topology"].get(node.node_id, [])
    node.reply(msg, {"type": "topology_ok"})


def receive(message, sender):
    log.append(message)  # BUG: appended before the dedup check
    if canon(message) in seen:
        return
    seen[canon(message)] = message
    for peer in neighbours or node.peers():
        if peer != sender:
            node.send(peer, {"type": "forward", "message": message})


@node.handler("broadcast")
def broadcast(msg):
    receive(msg["body"]["message"], msg["src"])
    node.reply(msg, {"type": "broadcast_ok"})


@node.handler("forward")
def forward(msg):
    receive(msg["body"]["message"], msg["src"])


@node.handler("gossip")
def gossip(msg):
    for message in msg["body"]["messages"]:
        if canon(message) not in seen:
            seen[canon(message)] = message
            log.append(message)


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "messages": sort_values(log)})


def push():
    node.send_to_peers({"type": "gossip", "messages": list(seen.values())})


node.every(GOSSIP_PERIOD, push)
node.run()
