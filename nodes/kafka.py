#!/usr/bin/env python3
"""kafka (reference, correct): Maelstrom's Kafka-style logs, kept in the
harness's linearizable `lin-kv` service, so nodes share one log per key
and keep nothing themselves (a crash loses nothing).

- `send{key,msg}`: takes the next offset of the key (`next/<key>` in
  lin-kv, advanced by cas; a cas whose reply is lost may waste an offset,
  which is legal: offsets may be sparse), writes the message to
  `msg/<key>/<offset>` and answers `send_ok{offset}` only once lin-kv
  acknowledged the write.
- `poll{offsets}`: for each key, reads `next/<key>` and then up to BATCH
  messages from the offset asked, in parallel; a missing message is an
  offset never written (skipped), a read that got no answer ends the batch
  there, so a poll never passes over a message it could not read.
- `commit_offsets` / `list_committed_offsets`: `commit/<key>` in lin-kv,
  only ever raised (cas), read back as they are; a list that cannot read
  every key answers error 11 (definitely nothing happened).
"""
import os, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maelstrom import Node

node = Node()
RPC = 0.1  # seconds per lin-kv request; the harness's latency is a few ms
TRIES = 8
BATCH = 10


def kv(body, done, tries=TRIES):
    """A lin-kv request retried on timeout; done(reply) gets the last reply."""
    def answer(reply):
        if reply.get("type") == "error" and reply.get("code") == 0 and tries > 1:
            return kv(body, done, tries - 1)
        done(reply)
    node.rpc("lin-kv", body, answer, timeout=RPC)


def value_or(reply, default):
    """The value read; `default` if the key does not exist; None if unknown."""
    if reply.get("type") == "read_ok":
        return reply["value"]
    return default if reply.get("code") == 20 else None


def raise_to(key, target, done, tries=TRIES):
    """Raises the integer at `key` to at least `target`; done(ok)."""
    if tries == 0:
        return done(False)

    def on_read(reply):
        current = value_or(reply, -1)
        if current is None:
            return raise_to(key, target, done, tries - 1)
        if current >= target:
            return done(True)
        kv({"type": "cas", "key": key, "from": current, "to": target,
            "create_if_not_exists": True},
           lambda r: done(True) if r.get("type") == "cas_ok"
           else raise_to(key, target, done, tries - 1), tries=1)

    kv({"type": "read", "key": key}, on_read)


def allocate(k, done, tries=TRIES):
    """Takes the next offset of key k; done(offset or None)."""
    if tries == 0:
        return done(None)

    def on_read(reply):
        current = value_or(reply, 0)
        if current is None:
            return allocate(k, done, tries - 1)
        kv({"type": "cas", "key": "next/" + k, "from": current, "to": current + 1,
            "create_if_not_exists": True},
           lambda r: done(current) if r.get("type") == "cas_ok"
           else allocate(k, done, tries - 1), tries=1)

    kv({"type": "read", "key": "next/" + k}, on_read)


@node.handler("send")
def send(msg):
    k, m = msg["body"]["key"], msg["body"]["msg"]

    def on_offset(offset):
        if offset is None:
            return node.error(msg, 11, "could not take an offset")
        kv({"type": "write", "key": "msg/%s/%d" % (k, offset), "value": m},
           lambda r: node.reply(msg, {"type": "send_ok", "offset": offset})
           if r.get("type") == "write_ok"
           else node.error(msg, 0, "the write may or may not have landed"))

    allocate(k, on_offset)


@node.handler("poll")
def poll(msg):
    wanted = msg["body"]["offsets"]
    result, left = {}, [len(wanted)]

    def finish_key(k, pairs):
        if pairs:
            result[k] = pairs
        left[0] -= 1
        if left[0] == 0:
            node.reply(msg, {"type": "poll_ok", "msgs": result})

    def poll_key(k, start):
        def on_next(reply):
            end = value_or(reply, 0)
            if end is None or end <= start:
                return finish_key(k, [])
            offsets = list(range(start, min(end, start + BATCH)))
            got = {}

            def on_msg(o, r):
                got[o] = r
                if len(got) < len(offsets):
                    return
                pairs = []
                for o in offsets:
                    r = got[o]
                    if r.get("type") == "read_ok":
                        pairs.append([o, r["value"]])
                    elif r.get("code") != 20:
                        break  # unknown: never pass over it
                finish_key(k, pairs)

            for o in offsets:
                kv({"type": "read", "key": "msg/%s/%d" % (k, o)},
                   lambda r, o=o: on_msg(o, r))
        kv({"type": "read", "key": "next/" + k}, on_next)

    if not wanted:
        return node.reply(msg, {"type": "poll_ok", "msgs": {}})
    for k, start in wanted.items():
        poll_key(k, start)


@node.handler("commit_offsets")
def commit_offsets(msg):
    offsets = msg["body"]["offsets"]
    state = {"left": len(offsets), "ok": True}

    def done(ok):
        state["ok"] &= ok
        state["left"] -= 1
        if state["left"] == 0:
            if state["ok"]:
                node.reply(msg, {"type": "commit_offsets_ok"})
            else:
                node.error(msg, 0, "some commits may not have landed")

    if not offsets:
        return node.reply(msg, {"type": "commit_offsets_ok"})
    for k, o in offsets.items():
        raise_to("commit/" + k, o, done)


@node.handler("list_committed_offsets")
def list_committed_offsets(msg):
    keys = msg["body"]["keys"]
    result, state = {}, {"left": len(keys), "failed": False}

    def on_read(k, reply):
        v = value_or(reply, -1)
        if v is None:
            state["failed"] = True
        elif v >= 0:
            result[k] = v
        state["left"] -= 1
        if state["left"] == 0:
            if state["failed"]:
                node.error(msg, 11, "lin-kv did not answer")
            else:
                node.reply(msg, {"type": "list_committed_offsets_ok", "offsets": result})

    if not keys:
        return node.reply(msg, {"type": "list_committed_offsets_ok", "offsets": {}})
    for k in keys:
        kv({"type": "read", "key": "commit/" + k}, lambda r, k=k: on_read(k, r))


node.run()
