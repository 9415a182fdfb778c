#!/usr/bin/env python3
"""Random but valid RV64GC instruction sequences for differential testing.

Writes one assembly body (to be included by prog.S) for a seed: the integer
base, M, A (AMOs and LR/SC), F and D with every static rounding mode and the
dynamic one under every valid frm, operands drawn from zeros, infinities,
quiet and signalling NaNs, subnormals, extremes and non-NaN-boxed singles,
and the compressed forms, with forward branches and jumps (B, J, CB, CJ) that
are taken or not depending on the data.

Conventions shared with prog.S:
  x31 (t6)  base of the 256-byte scratch region; never written by the body
  x2 (sp)   may be pointed into the scratch region before c.*sp forms
  all memory accesses are naturally aligned and inside the scratch region
The body never reads pc-relative values (no AUIPC, no linking jumps), so the
final state does not depend on where the program is loaded.

    gen.py SEED COUNT > body.S
"""
import random
import sys

BASE = 31
SCRATCH = 256

X = [f"x{i}" for i in range(32)]
XW = list(range(1, 31))             # writable integer registers
XC = list(range(8, 16))             # x8..x15, the compressed register set
RM = ["rne", "rtz", "rdn", "rup", "rmm", "dyn"]

DOUBLES = [0x0000000000000000, 0x8000000000000000, 0x7ff0000000000000, 0xfff0000000000000,
           0x7ff8000000000000, 0xfff8000000000000, 0x7ff4000000000000, 0x7ff0000000000001,
           0x0000000000000001, 0x800fffffffffffff, 0x0010000000000000, 0x7fefffffffffffff,
           0x3ff0000000000000, 0xbff8000000000000, 0x4330000000000000, 0x43e0000000000000,
           0xc3e0000000000000, 0x41dfffffffc00000, 0x41f0000000000000, 0x3fe0000000000000,
           0x3ff8000000000000, 0xc004000000000000]
SINGLES = [0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00000, 0x7fa00000,
           0x7f800001, 0x00000001, 0x807fffff, 0x00800000, 0x7f7fffff, 0x3f800000, 0xbfc00000,
           0x4f000000, 0xcf000000, 0x5f000000, 0x3f000000, 0x3fc00000, 0x4b000000]
INTS = [0, 1, 2, 0xffffffffffffffff, 0x8000000000000000, 0x7fffffffffffffff, 0x80000000,
        0x7fffffff, 0xffffffff, 0xffffffff80000000, 0x100000000, 0xfffffffffffffffe, 31, 32, 63, 64]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.out = []
        self.label = 0

    def emit(self, s):
        self.out.append("\t" + s)

    def x(self):
        return X[self.r.choice(XW)]

    def xsrc(self):
        return X[self.r.choice(range(0, 31))]

    def xc(self):
        return X[self.r.choice(XC)]

    def f(self):
        return f"f{self.r.randrange(32)}"

    def fc(self):
        return f"f{self.r.randrange(8, 16)}"

    def imm12(self):
        return self.r.choice([0, 1, -1, 2047, -2048, self.r.randrange(-2048, 2048)])

    def rm(self):
        return self.r.choice(RM)

    def value64(self):
        c = self.r.randrange(4)
        if c == 0:
            return self.r.choice(INTS)
        if c == 1:
            return self.r.choice(DOUBLES)
        if c == 2:
            return 0xffffffff00000000 | self.r.choice(SINGLES)
        return self.r.getrandbits(64)

    # ---- initial state (the same words in both runs) ----

    def init_data(self):
        xs = [self.value64() for _ in range(32)]
        fs = [self.value64() for _ in range(32)]
        mem = [self.value64() for _ in range(SCRATCH // 8)]
        return xs, fs, mem

    # ---- instruction classes ----

    def alu(self):
        op = self.r.choice(["add", "sub", "sll", "slt", "sltu", "xor", "srl", "sra", "or", "and",
                            "addw", "subw", "sllw", "srlw", "sraw",
                            "mul", "mulh", "mulhsu", "mulhu", "div", "divu", "rem", "remu",
                            "mulw", "divw", "divuw", "remw", "remuw"])
        self.emit(f"{op} {self.x()}, {self.xsrc()}, {self.xsrc()}")

    def alui(self):
        op = self.r.choice(["addi", "slti", "sltiu", "xori", "ori", "andi", "slli", "srli", "srai",
                            "addiw", "slliw", "srliw", "sraiw", "lui"])
        if op == "lui":
            self.emit(f"lui {self.x()}, {self.r.randrange(1 << 20)}")
        elif op in ("slli", "srli", "srai"):
            self.emit(f"{op} {self.x()}, {self.xsrc()}, {self.r.randrange(64)}")
        elif op in ("slliw", "srliw", "sraiw"):
            self.emit(f"{op} {self.x()}, {self.xsrc()}, {self.r.randrange(32)}")
        else:
            self.emit(f"{op} {self.x()}, {self.xsrc()}, {self.imm12()}")

    def offset(self, size):
        return self.r.randrange(SCRATCH // size) * size

    def mem(self):
        size, op = self.r.choice([(1, "lb"), (2, "lh"), (4, "lw"), (8, "ld"), (1, "lbu"), (2, "lhu"), (4, "lwu"),
                                  (1, "sb"), (2, "sh"), (4, "sw"), (8, "sd"),
                                  (4, "flw"), (8, "fld"), (4, "fsw"), (8, "fsd")])
        off = self.offset(size)
        if op.startswith("f"):
            self.emit(f"{op} {self.f()}, {off}(x{BASE})")
        elif op.startswith("s"):
            self.emit(f"{op} {self.xsrc()}, {off}(x{BASE})")
        else:
            self.emit(f"{op} {self.x()}, {off}(x{BASE})")

    def amo(self):
        w = self.r.choice(["w", "d"])
        size = 4 if w == "w" else 8
        addr = self.x()
        rd = self.x()
        while rd == addr:
            rd = self.x()
        self.emit(f"addi {addr}, x{BASE}, {self.offset(size)}")
        order = self.r.choice(["", ".aq", ".rl", ".aqrl"])
        rs2 = self.xsrc()
        while rs2 == addr:
            rs2 = self.xsrc()
        if self.r.randrange(4) == 0:
            rd2 = self.x()
            while rd2 == addr:
                rd2 = self.x()
            self.emit(f"lr.{w}{order} {rd}, ({addr})")
            self.emit(f"sc.{w}{order} {rd2}, {rs2}, ({addr})")
        else:
            op = self.r.choice(["amoswap", "amoadd", "amoxor", "amoand", "amoor", "amomin", "amomax", "amominu",
                                "amomaxu"])
            self.emit(f"{op}.{w}{order} {rd}, {rs2}, ({addr})")
        self.unaddress(addr)

    def unaddress(self, reg):
        """Turns a register that holds a scratch address back into an offset (addresses differ between runs)."""
        self.emit(f"sub {reg}, {reg}, x{BASE}")

    def fp(self):
        p = self.r.choice(["s", "d"])
        k = self.r.randrange(9)
        if k == 0:
            op = self.r.choice(["fadd", "fsub", "fmul", "fdiv"])
            self.emit(f"{op}.{p} {self.f()}, {self.f()}, {self.f()}, {self.rm()}")
        elif k == 1:
            self.emit(f"fsqrt.{p} {self.f()}, {self.f()}, {self.rm()}")
        elif k == 2:
            op = self.r.choice(["fmadd", "fmsub", "fnmadd", "fnmsub"])
            self.emit(f"{op}.{p} {self.f()}, {self.f()}, {self.f()}, {self.f()}, {self.rm()}")
        elif k == 3:
            op = self.r.choice(["fmin", "fmax", "fsgnj", "fsgnjn", "fsgnjx"])
            self.emit(f"{op}.{p} {self.f()}, {self.f()}, {self.f()}")
        elif k == 4:
            op = self.r.choice(["feq", "flt", "fle"])
            self.emit(f"{op}.{p} {self.x()}, {self.f()}, {self.f()}")
        elif k == 5:
            self.emit(f"fclass.{p} {self.x()}, {self.f()}")
        elif k == 6:
            t = self.r.choice(["w", "wu", "l", "lu"])
            if self.r.randrange(2):
                self.emit(f"fcvt.{t}.{p} {self.x()}, {self.f()}, {self.rm()}")
            else:
                exact = p == "d" and t in ("w", "wu")      # every 32-bit integer is a double: no rm
                rm = "" if exact else f", {self.rm()}"
                self.emit(f"fcvt.{p}.{t} {self.f()}, {self.xsrc()}{rm}")
        elif k == 7:
            if p == "s":
                self.emit(f"fcvt.s.d {self.f()}, {self.f()}, {self.rm()}")
            else:
                self.emit(f"fcvt.d.s {self.f()}, {self.f()}")
        else:
            op = self.r.choice(["fmv.x.w", "fmv.w.x", "fmv.x.d", "fmv.d.x"])
            if op.startswith("fmv.x"):
                self.emit(f"{op} {self.x()}, {self.f()}")
            else:
                self.emit(f"{op} {self.f()}, {self.xsrc()}")

    def fcsr(self):
        k = self.r.randrange(5)
        if k == 0:
            self.emit(f"fsrmi {self.x()}, {self.r.randrange(5)}")
        elif k == 1:
            self.emit(f"fsflagsi {self.x()}, {self.r.randrange(32)}")
        elif k == 2:
            self.emit(f"frcsr {self.x()}")
        elif k == 3:
            self.emit(f"frflags {self.x()}")
        else:
            # fcsr keeps only bits 7:0; frm must stay valid for the dynamic rounding mode.
            rd = self.x()
            self.emit(f"andi {rd}, {self.xsrc()}, 0x9f")
            self.emit(f"fscsr {rd}")

    def compressed(self):
        k = self.r.randrange(12)
        if k == 0:
            op = self.r.choice(["c.sub", "c.xor", "c.or", "c.and", "c.subw", "c.addw"])
            self.emit(f"{op} {self.xc()}, {self.xc()}")
        elif k == 1:
            op = self.r.choice(["c.srli", "c.srai"])
            self.emit(f"{op} {self.xc()}, {self.r.randrange(1, 64)}")
        elif k == 2:
            self.emit(f"c.andi {self.xc()}, {self.r.randrange(-32, 32)}")
        elif k == 3:
            rd = self.x()
            op = self.r.choice(["c.addi", "c.addiw", "c.li", "c.lui", "c.slli", "c.mv", "c.add"])
            if op == "c.addi":
                self.emit(f"c.addi {rd}, {self.r.choice([v for v in range(-32, 32) if v])}")
            elif op == "c.addiw":
                self.emit(f"c.addiw {rd}, {self.r.randrange(-32, 32)}")
            elif op == "c.li":
                self.emit(f"c.li {rd}, {self.r.randrange(-32, 32)}")
            elif op == "c.lui":
                if rd == "x2":
                    rd = "x5"
                self.emit(f"c.lui {rd}, {self.r.choice(list(range(1, 32)) + list(range(0xfffe0, 0x100000)))}")
            elif op == "c.slli":
                self.emit(f"c.slli {rd}, {self.r.randrange(1, 64)}")
            else:
                src = X[self.r.choice(range(1, 31))]
                self.emit(f"{op} {rd}, {src}")
        elif k in (4, 5):
            # CL/CS with a base in x8..x15 pointed into the scratch region.
            base = self.xc()
            size, op = self.r.choice([(4, "c.lw"), (8, "c.ld"), (4, "c.sw"), (8, "c.sd"), (8, "c.fld"),
                                      (8, "c.fsd")])
            top = 128 if size == 4 else 256
            off = self.r.randrange(top // size) * size
            lo = self.offset(8)
            lo = min(lo, SCRATCH - size - off)
            lo -= lo % 8
            self.emit(f"addi {base}, x{BASE}, {lo}")
            if op in ("c.fld", "c.fsd"):
                self.emit(f"{op} {self.fc()}, {off}({base})")
            elif op in ("c.lw", "c.ld"):
                rd = self.xc()
                while rd == base:
                    rd = self.xc()
                self.emit(f"{op} {rd}, {off}({base})")
            else:
                src = self.xc()
                while src == base:
                    src = self.xc()
                self.emit(f"{op} {src}, {off}({base})")
            self.unaddress(base)
        elif k == 6:
            # CI/CSS through sp.
            size, op = self.r.choice([(4, "c.lwsp"), (8, "c.ldsp"), (4, "c.swsp"), (8, "c.sdsp"), (8, "c.fldsp"),
                                      (8, "c.fsdsp")])
            off = self.r.randrange(SCRATCH // size) * size
            self.emit(f"mv sp, x{BASE}")
            reg = self.f() if "f" in op[2:4] else self.x()
            if op in ("c.lwsp", "c.ldsp") and reg in ("x0", "x2"):
                reg = "x6"
            if op in ("c.swsp", "c.sdsp"):
                reg = self.xsrc()
                while reg == "x2":
                    reg = self.xsrc()
            self.emit(f"{op} {reg}, {off}(sp)")
            self.unaddress("sp")
        elif k == 7:
            self.emit(f"c.addi16sp sp, {self.r.choice([v for v in range(-512, 512, 16) if v])}")
            self.emit(f"c.addi4spn {self.xc()}, sp, {self.r.randrange(1, 256) * 4}")
        else:
            self.branch(compressed=True)

    def skipped(self, n):
        for _ in range(n):
            self.r.choice([self.alu, self.alui, self.compressed_plain])()

    def compressed_plain(self):
        op = self.r.choice(["c.sub", "c.xor", "c.or", "c.and", "c.subw", "c.addw"])
        self.emit(f"{op} {self.xc()}, {self.xc()}")

    def branch(self, compressed=False):
        self.label += 1
        lab = f".Lfwd{self.label}"
        if compressed:
            op = self.r.choice(["c.beqz", "c.bnez", "c.j"])
            if op == "c.j":
                self.emit(f"c.j {lab}")
            else:
                self.emit(f"{op} {self.xc()}, {lab}")
        else:
            op = self.r.choice(["beq", "bne", "blt", "bge", "bltu", "bgeu", "jal"])
            if op == "jal":
                self.emit(f"jal x0, {lab}")
            else:
                self.emit(f"{op} {self.xsrc()}, {self.xsrc()}, {lab}")
        self.skipped(self.r.randrange(1, 4))
        self.out.append(f"{lab}:")

    def body(self, count):
        classes = [(self.alu, 6), (self.alui, 5), (self.mem, 4), (self.amo, 2), (self.fp, 8), (self.fcsr, 1),
                   (self.compressed, 5), (self.branch, 2)]
        funcs = [f for f, w in classes for _ in range(w)]
        for _ in range(count):
            self.r.choice(funcs)()


def main():
    seed = int(sys.argv[1])
    count = int(sys.argv[2])
    g = Gen(seed)
    xs, fs, mem = g.init_data()
    g.body(count)
    out = [f"/* generated by gen.py {seed} {count} */", "\t.option norelax", "\t.section .data", "\t.balign 8",
           "init_x:"]
    out += [f"\t.dword 0x{v:016x}" for v in xs]
    out += ["init_f:"] + [f"\t.dword 0x{v:016x}" for v in fs]
    out += ["\t.balign 64", "scratch:"] + [f"\t.dword 0x{v:016x}" for v in mem]
    out += ["state:", "\t.skip 8 * 65"]
    out += ["\t.text", "body:"] + g.out + ["\tj body_end"]
    print("\n".join(out))


if __name__ == "__main__":
    main()
