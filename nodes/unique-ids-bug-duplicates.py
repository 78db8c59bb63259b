#!/usr/bin/env python3
"""unique-ids, BUGGY: every node counts from 1 on its own, so two nodes
hand out the same ids (the check `unique-ids` catches it)."""
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node

node = Node()
counter = [0]


@node.handler("generate")
def generate(msg):
    counter[0] += 1
    node.reply(msg, {"type": "generate_ok", "id": counter[0]})


node.run()
