#!/usr/bin/env python3
"""g-set-bug-fire-and-forget (BUGGY): each add is forwarded once, no anti-entropy.

`add{element}` stores locally and sends `forward{element}` once to every
peer. Nothing is retried or gossiped, so a message lost to the network (or
sent while a peer is partitioned, paused past the loss, or crashed) leaves
that peer without the element forever.
Must be caught by: convergence (replicas disagree) and data-loss (Jepsen
set-full: an acknowledged add is lost / never read on some replica).
"""
import os, sys
sys.dont_write_bytecode = True  # keep __pycache__ out of the repository
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node, canon, sort_values

node = Node()
elements = {}


@node.handler("add")
def add(msg):
    element = msg["body"]["element"]
    elements[canon(element)] = element
    for peer in node.peers():  # BUG: sent once, never retried
        node.send(peer, {"type": "forward", "element": element})
    node.reply(msg, {"type": "add_ok"})


@node.handler("forward")
def forward(msg):
    element = msg["body"]["element"]
    elements[canon(element)] = element


@node.handler("read")
def read(msg):
    node.reply(msg, {"type": "read_ok", "value": sort_values(elements.values())})


node.run()
