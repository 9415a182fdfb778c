#!/usr/bin/env python3
"""orrery-guest-agent's protocol handling, on the build machine.

Runs the agent built for the build machine with --stdio (requests on stdin,
responses on stdout; guest-shutdown, fsfreeze and exec refused) and checks
what a QGA client relies on: the 0xFF resynchronisation, id echo, QGA's
error answers for malformed requests and parameters, the request size
limit, garbage of every kind (the agent must answer the next sync and never
crash: in a sanitizer build it runs under ASan/UBSan), and the guest-file-*
commands on a temporary directory, including handles across a restart.

    test-agent.py PATH-TO-AGENT
"""
import base64
import json
import os
import random
import select
import subprocess
import sys
import tempfile
import time

AGENT = sys.argv[1]
TIMEOUT = 60.0
REQUEST_MAX = 16 << 20

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests"))
from orrery_tap import Tap  # noqa: E402


class Agent:
    def __init__(self, state_dir):
        self.proc = subprocess.Popen([AGENT, "--stdio", "--state-dir", state_dir],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buf = b""
        self.sync_id = 0

    def send(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
        if not ready:
            raise TimeoutError("no answer from the agent")
        data = os.read(self.proc.stdout.fileno(), 1 << 20)
        if not data:
            raise EOFError(f"the agent exited ({self.proc.wait()})")
        self.buf += data

    def line(self):
        deadline = time.monotonic() + TIMEOUT
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\n", 1)
        return line

    def response(self):
        return json.loads(self.line())

    def call(self, command, **arguments):
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        self.send(json.dumps(req).encode() + b"\n")
        return self.response()

    def resync(self):
        """0xFF + guest-sync-delimited; returns the lines that came before the sentinel."""
        self.sync_id += 1
        self.send(b"\xff" + json.dumps({"execute": "guest-sync-delimited", "arguments": {"id": self.sync_id}}).encode())
        deadline = time.monotonic() + TIMEOUT
        while b"\xff" not in self.buf:
            self._fill(deadline)
        before, self.buf = self.buf.split(b"\xff", 1)
        rsp = json.loads(self.line())
        if rsp != {"return": self.sync_id}:
            raise ValueError(f"sync {self.sync_id} answered {rsp}")
        return [line for line in before.split(b"\n") if line]

    def close(self):
        self.proc.stdin.close()
        return self.proc.wait(TIMEOUT)


def error_of(rsp):
    e = rsp.get("error") or {}
    return e.get("class"), e.get("desc", "")


tap = Tap()
rng = random.Random(20261125)
tmp = tempfile.TemporaryDirectory(prefix="orrery-agent-test-")
state = os.path.join(tmp.name, "state")
agent = Agent(state)

try:
    tap.check(agent.resync() == [], "0xFF + guest-sync-delimited: the answer follows a 0xFF, nothing before it")
    agent.send(b'{"execute":"guest-sync","arguments":{"id":5}}{"execute":"guest-ping","id":[1,{"a":null}]}  ')
    tap.check(agent.response() == {"return": 5} and agent.response() == {"return": {}, "id": [1, {"a": None}]},
              "two requests in one write without newlines; the id is echoed as given")

    cases = [
        (b'[1,2]', "GenericError", "QMP input must be a JSON object"),
        (b'"guest-ping"', "GenericError", "QMP input must be a JSON object"),
        (b'{"arguments":{}}', "GenericError", "QMP input lacks member 'execute'"),
        (b'{"execute":7}', "GenericError", "QMP input member 'execute' must be a string"),
        (b'{"execute":"guest-ping","arguments":[1]}', "GenericError", "QMP input member 'arguments' must be an object"),
        (b'{"execute":"guest-ping","extra":1}', "GenericError", "QMP input member 'extra' is unexpected"),
        (b'{"execute":"guest-nothing"}', "CommandNotFound", "The command guest-nothing has not been found"),
        (b'{"execute":"guest-sync"}', "GenericError", "Parameter 'id' is missing"),
        (b'{"execute":"guest-sync","arguments":{"id":"7"}}', "GenericError",
         "Invalid parameter type for 'id', expected: integer"),
        (b'{"execute":"guest-sync","arguments":{"id":9223372036854775808}}', "GenericError",
         "Invalid parameter type for 'id', expected: integer"),
        (b'{"execute":"guest-sync","arguments":{"id":1.5}}', "GenericError",
         "Invalid parameter type for 'id', expected: integer"),
        (b'{"execute":"guest-ping","arguments":{"x":1}}', "GenericError", "Parameter 'x' is unexpected"),
        (b'{"execute":"guest-shutdown"}', "CommandNotFound", "Command guest-shutdown has been disabled"),
        (b'{"execute":"guest-fsfreeze-freeze"}', "CommandNotFound", "Command guest-fsfreeze-freeze has been disabled"),
        (b'{"execute":"guest-exec","arguments":{"path":"true"}}', "CommandNotFound",
         "Command guest-exec has been disabled"),
    ]
    for req, cls, desc in cases:
        agent.send(req + b"\n")
        c, d = error_of(agent.response())
        tap.check(c == cls and d.startswith(desc), f"{req.decode()} -> {cls}: {desc}", (c, d))
    agent.send(b'{"execute":"guest-nothing","id":"x7"}\n')
    tap.check(agent.response().get("id") == "x7", "errors echo the id too")
    tap.check(agent.call("guest-sync", id=-(2 ** 63)) == {"return": -(2 ** 63)}, "guest-sync with INT64_MIN")

    # Malformed JSON: one error for the garbage, then parsing resumes at the next '{'.
    agent.send(b'garbage}{"execute":"guest-ping"}\n')
    first, second = agent.response(), agent.response()
    tap.check(error_of(first)[0] == "GenericError" and "JSON parse error" in error_of(first)[1]
              and second == {"return": {}}, "garbage gets one JSON parse error; the request after it runs", (first, second))
    agent.send(b'{"execute":"guest-ping","id":"\xc3\x28"}\n')
    tap.check("JSON parse error" in error_of(agent.response())[1], "invalid UTF-8 is a JSON parse error")
    agent.send(b"[" * 5000 + b"\n")
    lines = agent.resync()
    tap.check(len(lines) == 1 and b"JSON parse error" in lines[0], "nesting 5000 deep is one parse error", lines)

    # The size limit.
    agent.send(b'{"execute":"guest-sync","arguments":{"id":"' + b"x" * REQUEST_MAX + b'"}}\n')
    c, d = error_of(agent.response())
    tap.check(c == "GenericError" and "too large" in d, f"a request over 16 MiB is refused ({d})")
    tap.check(agent.call("guest-ping") == {"return": {}}, "the agent answers the next request")
    agent.send(b'{"execute":"guest-sync","arguments":{"id":"' + b"y" * (REQUEST_MAX + 100))
    lines = agent.resync()
    tap.check(len(lines) == 1 and b"too large" in lines[0], "an oversize request cut short by 0xFF: one error, then sync")
    # A large request under the limit is fine.
    blob = base64.b64encode(os.urandom(6 << 20)).decode()
    agent.send(json.dumps({"execute": "guest-ping", "id": blob}).encode() + b"\n")
    tap.check(agent.response().get("id") == blob, "an 8 MiB request is answered, its id echoed whole")

    # Garbage of every kind: random bytes, cut and mangled requests. After each, a sync is answered
    # and everything before it is a JSON error object.
    valid = [json.dumps(r).encode() for r in (
        {"execute": "guest-ping"}, {"execute": "guest-sync", "arguments": {"id": 3}},
        {"execute": "guest-file-read", "arguments": {"handle": 1000, "count": 10}},
        {"execute": "guest-file-open", "arguments": {"path": "/nonexistent", "mode": "r"}},
        {"execute": "guest-info", "id": {"k": [1, 2.5, True, None, "s"]}})]
    bad_lines = []
    for i in range(400):
        kind = i % 4
        if kind == 0:
            junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        elif kind == 1:
            v = rng.choice(valid)
            junk = v[:rng.randrange(len(v))]
        elif kind == 2:
            v = bytearray(rng.choice(valid))
            for _ in range(rng.randrange(1, 6)):
                v[rng.randrange(len(v))] = rng.randrange(256)
            junk = bytes(v)
        else:
            junk = bytes(rng.choice(b'{}[]":,\\ \n\t\x00tfn0123456789.eE+-u') for _ in range(rng.randrange(1, 200)))
        junk = junk.replace(b"\xff", b"")
        agent.send(junk)
        try:
            for line in agent.resync():
                rsp = json.loads(line)
                if not isinstance(rsp, dict) or not ({"return"} <= set(rsp) or {"error"} <= set(rsp)):
                    bad_lines.append(line)
        except (ValueError, TimeoutError, EOFError) as e:
            bad_lines.append(f"{junk!r}: {e}")
            break
    tap.check(not bad_lines and agent.proc.poll() is None,
              "400 kinds of garbage: every answer is a JSON response, and each sync after it is answered", bad_lines[:5])

    # guest-file-*: a round trip of binary data.
    path = os.path.join(tmp.name, "data.bin")
    data = os.urandom(700 * 1024) + bytes(100 * 1024) + b"tail"
    h = agent.call("guest-file-open", path=path, mode="wb+").get("return")
    written = 0
    for off in range(0, len(data), 100000):
        written += agent.call("guest-file-write", handle=h, **{
            "buf-b64": base64.b64encode(data[off:off + 100000]).decode()}).get("return", {}).get("count", 0)
    with open(path, "rb") as f:
        on_disk = f.read()
    tap.check(written == len(data) and on_disk == data, f"guest-file-write: {written} bytes, the file holds them")
    r = agent.call("guest-file-seek", handle=h, offset=0, whence="set")
    back = b""
    while True:
        rr = agent.call("guest-file-read", handle=h, count=65536)["return"]
        back += base64.b64decode(rr["buf-b64"])
        if rr["eof"]:
            break
    tap.check(r == {"return": {"position": 0, "eof": False}} and back == data, "seek to 0 and read it all back")
    r = agent.call("guest-file-seek", handle=h, offset=-4, whence="end")["return"]
    rr = agent.call("guest-file-read", handle=h)["return"]
    tap.check(r["position"] == len(data) - 4 and base64.b64decode(rr["buf-b64"]) == b"tail" and rr["eof"],
              "seek -4 from the end: the last 4 bytes, eof")
    r = agent.call("guest-file-seek", handle=h, offset=2, whence=1)["return"]
    tap.check(r["position"] == len(data) + 2, "seek 2 from the current position (whence 1)")
    c, d = error_of(agent.call("guest-file-seek", handle=h, offset=0, whence="middle"))
    tap.check(c == "GenericError" and "whence" in d, f"an unknown whence is refused ({d})")
    c, d = error_of(agent.call("guest-file-write", handle=h, count=5, **{"buf-b64": "AAAA"}))
    tap.check(c == "GenericError" and "count" in d, f"a write count above the data is refused ({d})")
    r = agent.call("guest-file-write", handle=h, count=2, **{"buf-b64": "AAAA"})
    tap.check(r == {"return": {"count": 2, "eof": False}}, "a write count below the data writes that many")
    for bad in ("A", "AB=C", "====", "AAA=A", "AA\nAA", "AA AA"):
        c, d = error_of(agent.call("guest-file-write", handle=h, **{"buf-b64": bad}))
        tap.check(c == "GenericError" and "Base64" in d, f"invalid base64 {bad!r} is refused ({d})")
    c, d = error_of(agent.call("guest-file-read", handle=h, count=-1))
    tap.check(c == "GenericError" and "'-1'" in d, f"a negative read count is refused ({d})")
    tap.check(agent.call("guest-file-flush", handle=h) == {"return": {}}, "guest-file-flush")
    tap.check(agent.call("guest-file-close", handle=h) == {"return": {}}, "guest-file-close")
    c, d = error_of(agent.call("guest-file-close", handle=h))
    tap.check(c == "GenericError" and str(h) in d, f"the closed handle is gone ({d})")

    c, d = error_of(agent.call("guest-file-open", path=path, mode="rw"))
    tap.check(c == "GenericError" and "invalid file open mode" in d, f"an unknown mode is refused ({d})")
    c, d = error_of(agent.call("guest-file-open", path=path + "\u0000x"))
    tap.check(c == "GenericError" and "NUL" in d, f"a path with a NUL character is refused ({d})")
    c, d = error_of(agent.call("guest-file-open", path=os.path.join(tmp.name, "missing")))
    tap.check(c == "GenericError" and "No such file or directory" in d, f"a missing file ({d})")
    h_append = agent.call("guest-file-open", path=path, mode="a").get("return")
    agent.call("guest-file-write", handle=h_append, **{"buf-b64": base64.b64encode(b"+more").decode()})
    agent.call("guest-file-close", handle=h_append)
    with open(path, "rb") as f:
        # data, 2 bytes skipped by the seek, 2 written there, then the appended 5.
        tap.check(f.read() == data + bytes(4) + b"+more", "mode a appends")

    fifo = os.path.join(tmp.name, "fifo")
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)
    hf = agent.call("guest-file-open", path=fifo).get("return")
    r = agent.call("guest-file-read", handle=hf, count=100)
    tap.check(r == {"return": {"count": 0, "eof": False, "buf-b64": ""}},
              "reading an empty FIFO does not block the agent", r)
    os.write(writer, b"fifo-data")
    r = agent.call("guest-file-read", handle=hf, count=100)["return"]
    tap.check(base64.b64decode(r["buf-b64"]) == b"fifo-data", "then returns what was written to it")
    os.close(writer)

    last = agent.call("guest-file-open", path=path).get("return")
    code = agent.close()
    tap.check(code == 0, f"the agent exits 0 at the end of its input ({code})")

    # Handles are never reused, also by the next agent (init restarts it).
    agent = Agent(state)
    h = agent.call("guest-file-open", path=path).get("return")
    tap.check(isinstance(h, int) and h > last, f"a restarted agent hands out new handles ({last} -> {h})")
    c, d = error_of(agent.call("guest-file-read", handle=last))
    tap.check(c == "GenericError", "the old agent's handles are gone")
    tap.check(agent.close() == 0, "the second agent exits 0 as well")
finally:
    if agent.proc.poll() is None:
        agent.proc.kill()
    tmp.cleanup()
tap.finish()
