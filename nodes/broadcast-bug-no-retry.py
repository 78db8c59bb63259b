#!/usr/bin/env python3
"""broadcast-bug-no-retry (BUGGY): floods each message once along the topology.

A new message (from a client's `broadcast`, or a peer's `forward{message}`)
is stored and sent once as `forward{message}` to every topology neighbour
but the sender (all peers until a `topology` arrives). No acknowledgement,
no retry, no anti-entropy: one lost or partitioned hop and the nodes behind
it never see the message.
Must be caught by: convergence (replicas' reads differ) and data-loss
(set-full: an acknowledged broadcast is lost on some node) under loss or
partitions.
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, canon, sort_values

node = Node()
messages = {}
neighbours = []


@node.handler("topology")
def topology(msg):
    neighbours[:] = msg["body"]["topology"].get(node.node_id, [])
    node.reply(msg, {"type": "topology_ok"})


def receive(message, sender):
    if canon(message) in messages:
        return
    messages[canon(message)] = message
    for peer in neighbours or node.peers():  # BUG: once, no retry
        if peer != sender:
            node.send(peer, {"type": "forward", "message": message})


@node.handler("broadcast")
def broadcast(msg):
    receive(msg["body"]["message"], msg["src"])
    node.reply(msg, {"type": "broadcast_ok"})


@node.handler("forward")
def forward(msg):
    receive(msg["body"]["message"], msg["src"])


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "messages": sort_values(messages.values())})


node.run()
