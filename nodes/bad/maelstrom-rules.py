#!/usr/bin/env python3
"""A g-counter whose nodes use every liberty Maelstrom's network allows, or
break one rule Maelstrom enforces, for the harness's protocol tests. The
first argument picks the mode:

  lenient         n0 holds the counter; every other node forwards each
                  client request to n0 unchanged, under the client's `src`,
                  and n0 answers the client directly, twice. Every node also
                  sends its peers bodies with no `type` and with `null`
                  `msg_id` / `in_reply_to`, and the services a request with
                  a null `msg_id`. Maelstrom accepts all of it: valid.
  unknown-dest    also sends a message to n99
  unknown-src     also sends a message claiming src n99
  no-in-reply-to  also sends the client a message without `in_reply_to`
  reply-no-type   answers every 4th request without `type`
"""
import json
import sys

mode = sys.argv[1] if len(sys.argv) > 1 else "lenient"
node_id, node_ids = None, []
total = 0
seen = 0


def write(src, dest, body):
    sys.stdout.write(json.dumps({"src": src, "dest": dest, "body": body}) + "\n")
    sys.stdout.flush()


def answer(msg):
    global total
    body = msg["body"]
    reply = {"in_reply_to": body["msg_id"]}
    if body["type"] == "add":
        total += body["delta"]
        reply["type"] = "add_ok"
    else:
        reply["type"] = "read_ok"
        reply["value"] = total
    if mode == "reply-no-type" and seen % 4 == 0:
        del reply["type"]
    write(node_id, msg["src"], reply)
    if mode == "lenient":
        write(node_id, msg["src"], reply)  # a second reply: ignored


for line in sys.stdin:
    msg = json.loads(line)
    body = msg["body"]
    kind = body.get("type")
    if kind == "init":
        node_id, node_ids = body["node_id"], body["node_ids"]
        write(node_id, msg["src"], {"type": "init_ok", "in_reply_to": body["msg_id"]})
        continue
    if not msg["src"].startswith("c") or kind not in ("add", "read"):
        continue  # peer chatter and service replies: ignored
    seen += 1
    for peer in node_ids:
        if peer != node_id:
            write(node_id, peer, {"msg_id": None, "in_reply_to": None})
            write(node_id, peer, {"type": "chatter", "msg_id": "x", "n": seen})
    write(node_id, "lin-kv", {"type": "read", "key": [1, "a"], "msg_id": None})
    if mode == "unknown-dest":
        write(node_id, "n99", {"type": "chatter"})
    if mode == "unknown-src":
        write("n99", node_ids[0], {"type": "chatter"})
    if mode == "no-in-reply-to":
        write(node_id, msg["src"], {"type": "read_ok", "value": total})
    if mode == "lenient" and node_id != node_ids[0]:
        write(msg["src"], node_ids[0], body)  # forwarded as the client
        continue
    answer(msg)
