#!/usr/bin/env python3
"""unique-ids (reference, correct): `generate` -> `generate_ok{id}`.

An id is this process's replica id ("n3@<start time in us>": unique per
node and per restart) and a counter, so ids stay unique with no messages
between nodes: under partitions, and after a crash restarts a node empty.
"""
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node

node = Node()
counter = [0]


@node.handler("generate")
def generate(msg):
    counter[0] += 1
    node.reply(msg, {"type": "generate_ok", "id": "%s/%d" % (node.replica_id, counter[0])})


node.run()
