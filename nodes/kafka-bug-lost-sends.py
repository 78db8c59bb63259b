#!/usr/bin/env python3
"""kafka, BUGGY: like kafka.py (offsets taken in lin-kv), but a send is
acknowledged as soon as its offset is taken, and the message is written to
lin-kv fire-and-forget: when that one write is lost on the network, an
acknowledged send is gone (the check `kafka` reports lost sends)."""
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node

node = Node()
RPC = 0.1


def value_or(reply, default):
    if reply.get("type") == "read_ok":
        return reply["value"]
    return default if reply.get("code") == 20 else None


def allocate(k, done, tries=8):
    if tries == 0:
        return done(None)

    def on_read(reply):
        current = value_or(reply, 0)
        if current is None:
            return allocate(k, done, tries - 1)
        node.rpc("lin-kv", {"type": "cas", "key": "next/" + k, "from": current,
                            "to": current + 1, "create_if_not_exists": True},
                 lambda r: done(current) if r.get("type") == "cas_ok"
                 else allocate(k, done, tries - 1), timeout=RPC)

    node.rpc("lin-kv", {"type": "read", "key": "next/" + k}, on_read, timeout=RPC)


@node.handler("send")
def send(msg):
    k, m = msg["body"]["key"], msg["body"]["msg"]

    def on_offset(offset):
        if offset is None:
            return node.error(msg, 11, "could not take an offset")
        # The bug: no wait for write_ok, no retry.
        node.send("lin-kv", {"type": "write", "key": "msg/%s/%d" % (k, offset), "value": m})
        node.reply(msg, {"type": "send_ok", "offset": offset})

    allocate(k, on_offset)


@node.handler("poll")
def poll(msg):
    wanted = msg["body"]["offsets"]
    result, left = {}, [len(wanted)]

    def finish(k, pairs):
        if pairs:
            result[k] = pairs
        left[0] -= 1
        if left[0] == 0:
            node.reply(msg, {"type": "poll_ok", "msgs": result})

    def poll_key(k, start):
        def on_next(reply):
            end = value_or(reply, 0) or 0
            offsets = list(range(start, min(end, start + 10)))
            got = {}

            def on_msg(o, r):
                got[o] = r
                if len(got) == len(offsets):
                    finish(k, [[o, got[o]["value"]] for o in offsets
                               if got[o].get("type") == "read_ok"])

            if not offsets:
                return finish(k, [])
            for o in offsets:
                node.rpc("lin-kv", {"type": "read", "key": "msg/%s/%d" % (k, o)},
                         lambda r, o=o: on_msg(o, r), timeout=RPC)
        node.rpc("lin-kv", {"type": "read", "key": "next/" + k}, on_next, timeout=RPC)

    if not wanted:
        return node.reply(msg, {"type": "poll_ok", "msgs": {}})
    for k, start in wanted.items():
        poll_key(k, start)


@node.handler("commit_offsets")
def commit_offsets(msg):
    node.reply(msg, {"type": "commit_offsets_ok"})


@node.handler("list_committed_offsets")
def list_committed_offsets(msg):
    node.reply(msg, {"type": "list_committed_offsets_ok", "offsets": {}})


node.run()
