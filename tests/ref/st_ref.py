"""Independent safetensors reader/writer for tests/test_safetensors.c.

Usage: st_ref.py IN OUT
  1. Parses IN (written by mim_st_write) with plain struct + json and
     torch.frombuffer, and checks its tensors against the values the C test
     wrote (exit 1 on any mismatch).
  2. Writes OUT by hand with other tensors: every F16 and BF16 bit pattern
     next to torch's own fp32 conversion of it, F64, I32, F32, an I64 scalar
     and metadata. The header is deliberately left unpadded so that the data
     section is unaligned.
Exits 77 when torch is missing. Deliberately shares no code with tests/ref/stio.py or the C implementation.
"""
import json
import math
import struct
import sys

try:
    import torch
except ImportError:  # the C test reports SKIP
    sys.exit(77)

DT = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
      "U8": torch.uint8, "BOOL": torch.bool}
NAME = {v: k for k, v in DT.items()}


def read(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = bytearray(raw[8 + n:])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, en = e["data_offsets"]
        buf = data[b:en]
        t = torch.frombuffer(buf, dtype=DT[e["dtype"]]) if en > b else torch.empty(0, dtype=DT[e["dtype"]])
        out[name] = t.reshape(e["shape"])
    return out, meta, 8 + n, list(header)


def write(path, tensors, meta):
    header, blobs, pos = {"__metadata__": meta}, [], 0
    for name, t in tensors.items():
        b = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": NAME[t.dtype], "shape": list(t.shape), "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    if (8 + len(h)) % 4 == 0:  # keep the data section unaligned
        h += b" "
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + "py: " + what)
    return bool(cond)


def main():
    ts, meta, data_start, order = read(sys.argv[1])
    ok = check(data_start % 8 == 0, "C data section 8-byte aligned")
    ok &= check(meta == {"format": "pt", "step": "1234"}, f"C metadata {meta}")
    ok &= check(order == ["a.weight", "b", "c", "scalar", "h4d", "empty"], f"C tensor order {order}")
    a = torch.tensor([-1.5, 0, 1, 2.25, 1e-30, 3e38], dtype=torch.float32).reshape(2, 3)
    ok &= check(torch.equal(ts["a.weight"], a), "a.weight F32 (2, 3)")
    b = (torch.arange(4, dtype=torch.float32) * 0.5 - 1).to(torch.bfloat16)
    ok &= check(ts["b"].dtype == torch.bfloat16 and torch.equal(ts["b"], b), "b BF16 (4,)")
    c = torch.tensor([-2**63, -1, 2**63 - 1], dtype=torch.int64)
    ok &= check(torch.equal(ts["c"], c), "c I64")
    s = ts["scalar"]
    ok &= check(s.shape == () and s.dtype == torch.float64 and s.item() == math.pi, "scalar F64 shape []")
    h = ts["h4d"]
    hb = torch.tensor([0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3555,
                       0x0400, 0x0000], dtype=torch.int32).to(torch.int16).view(torch.float16).reshape(2, 1, 2, 3)
    ok &= check(h.shape == (2, 1, 2, 3) and torch.equal(h.view(torch.int16), hb.view(torch.int16)), "h4d F16 (2, 1, 2, 3)")
    ok &= check(ts["empty"].shape == (0, 5) and ts["empty"].dtype == torch.uint8, "empty U8 (0, 5)")

    bits = torch.arange(65536, dtype=torch.int32).to(torch.int16).reshape(256, 256)
    f16, bf16 = bits.view(torch.float16), bits.view(torch.bfloat16)
    write(sys.argv[2], {
        "f16_all": f16, "f16_all_as_f32": f16.float(),
        "bf16_all": bf16, "bf16_all_as_f32": bf16.float(),
        "f64": torch.arange(5, dtype=torch.float64) * 0.1 - 3.0,
        "i32": ((torch.arange(6, dtype=torch.int32) - 3) * 1000003).reshape(2, 3),
        "f32": (torch.arange(6, dtype=torch.float32) / 8 - 0.25).reshape(2, 3),
        "scalar": torch.tensor(42, dtype=torch.int64),
    }, {"writer": "st_ref.py"})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
