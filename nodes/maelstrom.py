#!/usr/bin/env python3
"""A tiny Maelstrom node library (Python 3 stdlib only).

One JSON message per line on stdin/stdout, logs on stderr. Handlers,
RPC callbacks and timers all run under one lock (`node.lock`), so node code
needs no locking of its own; stdout writes are serialised and flushed.

    node = Node()
    @node.handler("read")
    def read(msg): node.reply(msg, {"type": "read_ok", "value": 1})
    node.every(GOSSIP_PERIOD, gossip)
    node.run()
"""
import heapq, json, os, random, sys, threading, time, traceback

# Gossip period and RPC timeout, overridable from the environment.
GOSSIP_PERIOD = float(os.environ.get("CONVERGE_GOSSIP_MS", "150")) / 1000
RPC_TIMEOUT = float(os.environ.get("CONVERGE_RPC_TIMEOUT_MS", "800")) / 1000


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def canon(value):
    """A hashable, canonical key for any JSON value (sets of elements)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def sort_values(values):
    """Sorts JSON values: numbers first (numerically), then the rest by text."""
    def key(v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return (0, v, "")
        return (1, 0, canon(v))
    return sorted(values, key=key)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def replica_order(replica):
    """Sort key of a replica id "n3@<start us>": node number, then start."""
    node, _, start = replica.partition("@")
    num = int(node[1:]) if node[1:].isdigit() else -1
    return (num, node, int(start) if start.isdigit() else 0)


class Node:
    def __init__(self):
        self.node_id = None
        self.node_ids = []
        # Unique per process start ("n3@<start time in us>"): a node restarted
        # empty after a crash must not reuse the dots / slots of its past life.
        self.replica_id = None
        self.lock = threading.RLock()
        self._out = threading.Lock()
        # msg_ids start at the process start time in us, so a reply meant for
        # a previous life of this node never matches a pending rpc() of this one.
        self._next_id = time.time_ns() // 1000
        self._handlers = {}
        self._callbacks = {}  # msg_id -> callback of a pending rpc()
        self._deadlines = []  # heap of (deadline, msg_id) of rpc() calls
        self._timers = []  # (period, fn) for every()
        self._later, self._seq = [], 0  # heap of (when, seq, fn) for after()
        self._started = False

    # -- sending ------------------------------------------------------------
    def send(self, dest, body):
        """Sends body to dest; gives it a fresh msg_id unless it has one."""
        self.send_all([dest], body)

    def send_to_peers(self, body):
        """Sends body to every other node (serialised once: states can be big)."""
        self.send_all(self.peers(), body)

    def send_all(self, dests, body):
        with self._out:
            text = json.dumps(body, separators=(",", ":"))
            lines = []
            for dest in dests:
                if "msg_id" in body:
                    b = text
                else:  # fresh msg_id, spliced in front of the other fields
                    self._next_id += 1
                    b = '{"msg_id":%d,%s' % (self._next_id, text[1:]) if text != "{}" \
                        else '{"msg_id":%d}' % self._next_id
                lines.append('{"src":%s,"dest":%s,"body":%s}\n' % (
                    json.dumps(self.node_id), json.dumps(dest), b))
            try:
                sys.stdout.write("".join(lines))
                sys.stdout.flush()
            except (BrokenPipeError, ValueError):
                os._exit(0)

    def reply(self, req, body):
        body = dict(body)
        if is_int(req["body"].get("msg_id")):
            body["in_reply_to"] = req["body"]["msg_id"]
        self.send(req["src"], body)

    def error(self, req, code, text):
        self.reply(req, {"type": "error", "code": code, "text": text})

    def rpc(self, dest, body, callback, timeout=RPC_TIMEOUT):
        """Sends a request; callback(reply_body) runs once, with the reply or,
        after `timeout` seconds, with an error body of code 0 (timeout)."""
        with self._out:
            self._next_id += 1
            msg_id = self._next_id
        with self.lock:
            self._callbacks[msg_id] = callback
            heapq.heappush(self._deadlines, (time.monotonic() + timeout, msg_id))
        self.send(dest, dict(body, msg_id=msg_id))
        return msg_id

    def after(self, delay, fn):
        """Runs fn (under the node lock) once, `delay` seconds from now."""
        with self.lock:
            self._seq += 1
            heapq.heappush(self._later, (time.monotonic() + delay, self._seq, fn))

    def replicate(self, body, done, retry=0.25):
        """Sends body (a state or delta of the CRDT, type `replicate`) to every
        peer, again every `retry` s, and calls done(True) on the first
        `replicate_ok`, or done(False) if none came within RPC_TIMEOUT.
        Acknowledging a client only once a peer holds the update means a node
        killed and restarted empty loses no acknowledged update."""
        peers, deadline = self.peers(), time.monotonic() + RPC_TIMEOUT
        finished = []

        def finish(ok):
            if not finished:
                finished.append(ok)
                done(ok)

        def answer(reply):
            if reply.get("type") == "replicate_ok":
                finish(True)

        def attempt():
            if finished:
                return
            left = deadline - time.monotonic()
            if left <= 0:
                return finish(False)
            for peer in peers:
                self.rpc(peer, body, answer, timeout=left)
            self.after(min(retry, left), attempt)

        if not peers:
            return finish(True)
        attempt()

    def crdt(self, merge):
        """Registers merge(body) for peer state: periodic `gossip` (no reply)
        and `replicate` (answered `replicate_ok` once merged)."""
        self.handler("gossip")(lambda msg: merge(msg["body"]))

        def replicate(msg):
            merge(msg["body"])
            self.reply(msg, {"type": "replicate_ok"})
        self.handler("replicate")(replicate)

    def ack_after_replication(self, req, body, ok_reply):
        """Replicates body, then answers req with ok_reply, or with error 0
        (indefinite: the update is kept here and gossip may still spread it)
        if no peer acknowledged in time."""
        def done(ok):
            if ok:
                self.reply(req, ok_reply)
            else:
                self.error(req, 0, "no peer acknowledged the update in time; kept locally")
        self.replicate(body, done)

    def peers(self):
        return [n for n in self.node_ids if n != self.node_id]

    # -- registration -------------------------------------------------------
    def handler(self, kind):
        def register(fn):
            self._handlers[kind] = fn
            return fn
        return register

    def every(self, period, fn):
        """Runs fn every `period` seconds (+-20% jitter) once init is done."""
        self._timers.append((period, fn))

    # -- running ------------------------------------------------------------
    def _timer_loop(self, period, fn):
        while True:
            time.sleep(period * random.uniform(0.8, 1.2))
            with self.lock:
                try:
                    fn()
                except Exception:
                    log("timer failed:", traceback.format_exc())

    def _reaper(self):  # RPC timeouts and after() calls, every 20 ms
        while True:
            time.sleep(0.02)
            now = time.monotonic()
            with self.lock:
                due = []
                while self._deadlines and self._deadlines[0][0] <= now:
                    i = heapq.heappop(self._deadlines)[1]
                    if i in self._callbacks:  # else answered already
                        cb = self._callbacks.pop(i)
                        due.append(lambda cb=cb, i=i: cb(
                            {"type": "error", "code": 0, "text": "timed out", "in_reply_to": i}))
                while self._later and self._later[0][0] <= now:
                    due.append(heapq.heappop(self._later)[2])
                for fn in due:
                    try:
                        fn()
                    except Exception:
                        log("timeout / after() callback failed:", traceback.format_exc())

    def _init(self, msg):
        body = msg["body"]
        self.node_id = body["node_id"]
        self.node_ids = list(body["node_ids"])
        if self.replica_id is None:  # "n3@<start time in microseconds>"
            self.replica_id = "%s@%d" % (self.node_id, time.time_ns() // 1000)
        self.reply(msg, {"type": "init_ok"})
        if not self._started:
            self._started = True
            for period, fn in self._timers:
                threading.Thread(target=self._timer_loop, args=(period, fn), daemon=True).start()
        log("init: %s (replica %s) of %s" % (self.node_id, self.replica_id, self.node_ids))

    def _dispatch(self, line):
        try:
            msg = json.loads(line)
            assert isinstance(msg, dict) and isinstance(msg.get("body"), dict)
            assert isinstance(msg.get("src"), str)
        except (ValueError, AssertionError):
            log("malformed message, ignored:", line[:200])
            return
        body = msg["body"]
        kind = body.get("type")
        try:
            if "in_reply_to" in body:  # a reply: run its callback, never answer
                callback = self._callbacks.pop(body["in_reply_to"], None)
                if callback:
                    callback(body)
                else:
                    log("unexpected reply, ignored:", line[:200])
            elif kind == "error" or (isinstance(kind, str) and kind.endswith("_ok")):
                log("stray reply, ignored:", line[:200])
            elif kind == "init":
                self._init(msg)
            elif self.node_id is None:
                log("message before init, ignored:", line[:200])
            elif kind in self._handlers:
                self._handlers[kind](msg)
            else:
                self.error(msg, 10, "unsupported message type %r" % (kind,))
        except Exception as e:
            malformed = isinstance(e, (KeyError, TypeError, ValueError, AttributeError))
            log("malformed request" if malformed else "handler crashed", line[:200],
                traceback.format_exc())
            # Answer requests only: never a reply, never before we have a name.
            if self.node_id is not None and "in_reply_to" not in body:
                self.error(msg, 12 if malformed else 13, "%s: %r" % (
                    "malformed request" if malformed else "crash", e))

    def run(self):
        threading.Thread(target=self._reaper, daemon=True).start()
        for raw in sys.stdin.buffer:
            line = raw.decode("utf-8", "replace").strip()
            if line:
                with self.lock:
                    self._dispatch(line)
        log("stdin closed, exiting")
