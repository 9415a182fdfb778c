"""Scripted QGA peers for the bridge tests: a Unix socket the bridge connects to (--test-socket), answering like
a guest agent would, or like a broken or hostile one would."""
import base64
import json
import os
import socket
import threading
import time


class Conn:
    """One connection from the bridge: requests in (the bridge sends one JSON object a line), bytes out."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.closed = False

    def requests(self):
        """Yields the bridge's requests (dicts); a 0xFF before one is dropped, as a guest agent does."""
        while True:
            while b"\n" not in self.buf:
                try:
                    data = self.sock.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    return
                self.buf += data
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.replace(b"\xff", b"")
            if line.strip():
                yield json.loads(line)

    def send(self, data):
        if isinstance(data, (dict, list)):
            data = json.dumps(data).encode() + b"\n"
        try:
            self.sock.sendall(data)
        except OSError:
            self.closed = True

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Peer:
    """Listens on path; every connection is served by the current behaviour, a function (peer, conn)."""

    def __init__(self, path, behaviour):
        self.path = path
        self.behaviour = behaviour
        self.files = {}     # path -> bytes, the "guest's" files
        self.handles = {}   # handle -> [path, data, position, mode]
        self.next_handle = 1000
        self.log = []       # (command, arguments) of every request seen
        self.conn = None
        self.connections = 0
        self.lock = threading.Lock()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                s, _ = self.srv.accept()
            except OSError:
                return
            c = Conn(s)
            with self.lock:
                self.conn = c
                self.connections += 1
                behaviour = self.behaviour
            threading.Thread(target=self._serve, args=(behaviour, c), daemon=True).start()

    def _serve(self, behaviour, c):
        try:
            behaviour(self, c)
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    def switch(self, behaviour):
        """New connections get behaviour; the current one is closed, so the bridge reconnects."""
        with self.lock:
            self.behaviour = behaviour
            c = self.conn
        if c:
            c.close()

    def commands(self):
        with self.lock:
            return [cmd for cmd, _ in self.log]

    def stop(self):
        self.srv.close()
        if self.conn:
            self.conn.close()

    # ------------------------------------------------------------------
    # A well-behaved agent; behaviours below override single commands.

    def answer(self, c, req, override=None):
        cmd = req.get("execute")
        args = req.get("arguments", {})
        with self.lock:
            self.log.append((cmd, args))
        if override:
            handled = override(self, c, cmd, args)
            if handled:
                return
        if cmd == "guest-sync-delimited":
            c.send(b"\xff" + json.dumps({"return": args["id"]}).encode() + b"\n")
        elif cmd == "guest-sync":
            c.send({"return": args["id"]})
        elif cmd == "guest-ping":
            c.send({"return": {}})
        elif cmd == "guest-get-host-name":
            c.send({"return": {"host-name": "fake"}})
        elif cmd == "guest-get-time":
            c.send({"return": time.time_ns()})
        elif cmd == "guest-fsfreeze-status":
            c.send({"return": "thawed"})
        elif cmd == "guest-shutdown":
            pass  # no answer on success, as QGA
        elif cmd == "guest-file-open":
            h = self.next_handle
            self.next_handle += 1
            data = self.files.get(args["path"], b"") if args.get("mode", "r").startswith("r") else b""
            if args.get("mode", "r").startswith("r") and args["path"] not in self.files:
                c.send({"error": {"class": "GenericError", "desc": "No such file"}})
                return
            self.handles[h] = [args["path"], bytearray(data), 0, args.get("mode", "r")]
            c.send({"return": h})
        elif cmd == "guest-file-write":
            h = self.handles[args["handle"]]
            data = base64.b64decode(args["buf-b64"])
            h[1] += data
            c.send({"return": {"count": len(data), "eof": False}})
        elif cmd == "guest-file-read":
            h = self.handles[args["handle"]]
            chunk = bytes(h[1][h[2]:h[2] + args.get("count", 4096)])
            h[2] += len(chunk)
            c.send({"return": {"count": len(chunk), "buf-b64": base64.b64encode(chunk).decode(),
                               "eof": h[2] >= len(h[1])}})
        elif cmd == "guest-file-seek":
            h = self.handles[args["handle"]]
            base = {"set": 0, "cur": h[2], "end": len(h[1]), 0: 0, 1: h[2], 2: len(h[1])}[args.get("whence", "set")]
            h[2] = max(0, base + args.get("offset", 0))
            c.send({"return": {"position": h[2], "eof": h[2] >= len(h[1])}})
        elif cmd == "guest-file-close":
            h = self.handles.pop(args["handle"], None)
            if h and not h[3].startswith("r"):
                self.files[h[0]] = bytes(h[1])
            c.send({"return": {}})
        else:
            c.send({"error": {"class": "CommandNotFound", "desc": f"The command {cmd} has not been found"}})


def good(peer, c):
    for req in c.requests():
        peer.answer(c, req)


def overriding(fn):
    """A behaviour that answers like good() except where fn(peer, conn, command, args) returns True."""
    def behaviour(peer, c):
        for req in c.requests():
            peer.answer(c, req, fn)
    return behaviour


def silent(peer, c):
    for req in c.requests():
        with peer.lock:
            peer.log.append((req.get("execute"), req.get("arguments", {})))


def flood(chunk_fn, seconds=120):
    """Sends what chunk_fn() returns as fast as the bridge takes it, reading (and ignoring) its requests."""
    def behaviour(peer, c):
        stop = []

        def reader():
            for _ in c.requests():
                pass
            stop.append(1)
        threading.Thread(target=reader, daemon=True).start()
        deadline = time.monotonic() + seconds
        while not stop and not c.closed and time.monotonic() < deadline:
            c.send(chunk_fn())
    return behaviour


def echo(peer, c):
    while True:
        data = c.sock.recv(65536)
        if not data:
            return
        c.send(data)


def endless(announce=None, delay=0.0, count=None):
    """A file that never ends: guest-file-read answers eof:false forever (with a chunk of the size asked for,
    or count), after delay seconds; guest-file-seek to the end announces announce bytes (None: not supported)."""
    def fn(peer, c, cmd, args):
        if cmd == "guest-file-open":
            h = peer.next_handle
            peer.next_handle += 1
            peer.handles[h] = [args["path"], bytearray(), 0, args.get("mode", "r")]
            c.send({"return": h})
            return True
        if cmd == "guest-file-seek":
            if announce is None:
                c.send({"error": {"class": "GenericError", "desc": "Illegal seek"}})
            else:
                c.send({"return": {"position": announce if args.get("whence") == "end" else 0, "eof": False}})
            return True
        if cmd == "guest-file-read":
            if delay:
                time.sleep(delay)
            chunk = b"e" * (count or args.get("count", 4096))
            c.send({"return": {"count": len(chunk), "buf-b64": base64.b64encode(chunk).decode(), "eof": False}})
            return True
    return overriding(fn)


def random_garbage():
    return os.urandom(16384)
