"""A small hand-written D-Bus client, for what libdbus will not do.

The hostile-client tests need messages libdbus refuses to build (fd
indices past the fds carried, calls without an interface, no-reply
flags); the bus benchmark needs signals timestamped the moment they
arrive, with nothing between the socket and the clock. Both use this one
client: EXTERNAL authentication, fd passing, little-endian messages whose
header fields it writes and parses itself, and no marshalling of bodies
beyond what string() gives (callers pack their own bodies with struct).
"""
import os
import socket
import struct
import time

METHOD_CALL, METHOD_RETURN, ERROR, SIGNAL = 1, 2, 3, 4
NO_REPLY_EXPECTED = 0x1


def pad(b, n):
    """b with NULs up to the next multiple of n."""
    return b + b"\0" * (-len(b) % n)


def string(s):
    """A marshalled D-Bus string (at a 4-aligned offset)."""
    return struct.pack("<I", len(s.encode())) + s.encode() + b"\0"


def first_string(fields, body):
    """The body's first argument if the signature starts with a string, else ''."""
    if fields.get(8, "")[:1] in ("s", "o") and len(body) >= 4:
        return body[4:4 + struct.unpack_from("<I", body)[0]].decode()
    return ""


class RawBus:
    def __init__(self, address, timeout=None):
        kv = dict(p.split("=", 1) for p in address.split(":", 1)[1].split(","))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(kv["path"] if "path" in kv else "\0" + kv["abstract"])
        self.sock.settimeout(timeout)
        self.sock.sendall(b"\0AUTH EXTERNAL " + str(os.getuid()).encode().hex().encode() + b"\r\n")
        if not self._line().startswith(b"OK"):
            raise RuntimeError("raw client: authentication refused")
        self.sock.sendall(b"NEGOTIATE_UNIX_FD\r\n")
        if not self._line().startswith(b"AGREE_UNIX_FD"):
            raise RuntimeError("raw client: no fd passing")
        self.sock.sendall(b"BEGIN\r\n")
        self.buf = b""
        self.serial = 0
        self.t_recv = None      # time.monotonic() when the last chunk arrived
        self.on_signal = None   # called as on_signal(fields, body, t_recv) by call() and pump()
        error, fields, body = self.call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                        "Hello")
        if error:
            raise RuntimeError(f"raw client: Hello failed: {error}")
        self.unique = first_string(fields, body)

    def _line(self):
        data = b""
        while not data.endswith(b"\r\n"):
            c = self.sock.recv(1)
            if not c:
                raise EOFError("raw client: the bus hung up")
            data += c
        return data

    def send(self, dest, path, iface, member, sig="", body=b"", fds=(), flags=0):
        """Sends a method call (iface and dest may be None); returns its serial."""
        self.serial += 1
        fields = [(1, "o", path)] + ([(2, "s", iface)] if iface else []) + [(3, "s", member)] + \
                 ([(6, "s", dest)] if dest else []) + ([(8, "g", sig)] if sig else []) + \
                 ([(9, "u", len(fds))] if fds else [])
        hf = b""
        for code, t, val in fields:
            hf = pad(hf, 8) + bytes([code, 1]) + t.encode() + b"\0"
            if t in "os":
                hf = pad(hf, 4) + string(val)
            elif t == "g":
                hf += bytes([len(val)]) + val.encode() + b"\0"
            else:
                hf = pad(hf, 4) + struct.pack("<I", val)
        msg = pad(struct.pack("<cBBBIII", b"l", METHOD_CALL, flags, 1, len(body), self.serial, len(hf)) + hf, 8) + body
        if fds:
            socket.send_fds(self.sock, [msg], list(fds))
        else:
            self.sock.sendall(msg)
        return self.serial

    def message(self):
        """The next message as (type, header fields by code, body); fds received are closed."""
        while True:
            if len(self.buf) >= 16:
                body_len, _, flen = struct.unpack_from("<III", self.buf, 4)
                hlen = 16 + flen + (-(16 + flen) % 8)
                if len(self.buf) >= hlen + body_len:
                    msg, self.buf = self.buf[:hlen + body_len], self.buf[hlen + body_len:]
                    return msg[1], self._fields(msg, flen), msg[hlen:]
            data, fds, _, _ = socket.recv_fds(self.sock, 1 << 20, 16)
            self.t_recv = time.monotonic()
            for fd in fds:
                os.close(fd)
            if not data:
                raise EOFError("raw client: the bus hung up")
            self.buf += data

    @staticmethod
    def _fields(msg, flen):
        pos, fields = 16, {}
        while pos < 16 + flen:
            pos += -pos % 8
            code, slen = msg[pos], msg[pos + 1]
            t = msg[pos + 2:pos + 2 + slen].decode()
            pos += 3 + slen
            if t in "os":
                pos += -pos % 4
                n = struct.unpack_from("<I", msg, pos)[0]
                fields[code] = msg[pos + 4:pos + 4 + n].decode()
                pos += 5 + n
            elif t == "g":
                fields[code] = msg[pos + 1:pos + 1 + msg[pos]].decode()
                pos += 2 + msg[pos]
            else:
                pos += -pos % 4
                fields[code] = struct.unpack_from("<I", msg, pos)[0]
                pos += 4
        return fields

    def call(self, *args, **kw):
        """Sends a call and waits for its answer: (error name or None, fields, body). Signals go to on_signal."""
        serial = self.send(*args, **kw)
        while True:
            mtype, fields, body = self.message()
            if mtype == SIGNAL and self.on_signal:
                self.on_signal(fields, body, self.t_recv)
            elif mtype in (METHOD_RETURN, ERROR) and fields.get(5) == serial:
                return (fields.get(4) if mtype == ERROR else None), fields, body

    def call_ok(self, *args, **kw):
        """call() for a caller that expects success: the reply's body, or RuntimeError naming the error."""
        error, _, body = self.call(*args, **kw)
        if error:
            raise RuntimeError(f"{args[3]}: {error}")
        return body

    def pump(self):
        """Reads and dispatches signals until the connection closes."""
        try:
            while True:
                mtype, fields, body = self.message()
                if mtype == SIGNAL and self.on_signal:
                    self.on_signal(fields, body, self.t_recv)
        except (EOFError, OSError):
            pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
