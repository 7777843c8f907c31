"""Minimal safetensors reader/writer for the PyTorch reference (tests/ref).

Written by hand because the `safetensors` package is not installed on the
test machines. It is not a general-purpose library: whole files are read into
memory, and save() writes tensors in sorted-name order.

Format: u64 little-endian header length N, N bytes of UTF-8 JSON
  {"name": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, ...,
   "__metadata__": {str: str}}
then the data section; offsets are relative to its start, little-endian,
row-major (C order).
"""
import json
import struct

import numpy as np
import torch

# safetensors dtype -> (torch dtype, numpy dtype used to carry the raw bytes)
# BF16 has no numpy type: its bytes travel as int16 and are reinterpreted.
_DTYPES = {
    "F64": (torch.float64, np.float64),
    "F32": (torch.float32, np.float32),
    "F16": (torch.float16, np.float16),
    "BF16": (torch.bfloat16, np.int16),
    "I64": (torch.int64, np.int64),
    "I32": (torch.int32, np.int32),
    "I16": (torch.int16, np.int16),
    "I8": (torch.int8, np.int8),
    "U8": (torch.uint8, np.uint8),
    "BOOL": (torch.bool, np.bool_),
}
_TORCH_TO_ST = {tdt: name for name, (tdt, _) in _DTYPES.items()}


def load(path):
    """Reads a safetensors file -> (dict name -> torch.Tensor, metadata dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} runs past end of file")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    meta = header.pop("__metadata__", None) or {}
    out = {}
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise ValueError(f"{path}: tensor {name}: unsupported dtype {dt}")
        tdt, ndt = _DTYPES[dt]
        shape = [int(s) for s in info["shape"]]
        b, e = (int(v) for v in info["data_offsets"])
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= b <= e <= len(data)) or e - b != count * np.dtype(ndt).itemsize:
            raise ValueError(f"{path}: tensor {name}: bad data_offsets {b},{e} "
                             f"for {dt}{shape}")
        arr = np.frombuffer(data[b:e], dtype=np.dtype(ndt).newbyteorder("<"),
                            count=count).astype(ndt, copy=True).reshape(shape)
        t = torch.from_numpy(arr)
        if dt == "BF16":
            t = t.view(torch.bfloat16)
        out[name] = t
    return out, {str(k): str(v) for k, v in meta.items()}


def save(path, tensors, metadata=None):
    """Writes dict name -> tensor (torch or numpy) and str->str metadata."""
    header = {}
    chunks = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name]
        if isinstance(t, np.ndarray):
            t = torch.from_numpy(np.ascontiguousarray(t))
        t = t.detach().cpu().contiguous()
        if t.dtype not in _TORCH_TO_ST:
            raise ValueError(f"tensor {name}: unsupported dtype {t.dtype}")
        dt = _TORCH_TO_ST[t.dtype]
        raw = (t.view(torch.int16) if dt == "BF16" else t).numpy()
        raw = raw.astype(raw.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape),
                        "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * (-len(hb) % 8)  # pad so the data section is 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)
