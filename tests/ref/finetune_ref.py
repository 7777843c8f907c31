"""Reference data for tests/test_finetune.c (run with /usr/bin/python3).

Writes OUT (safetensors via stio): a position-embedding grid resized with
torch.nn.functional.interpolate(mode='bicubic', align_corners=False), as
MAE's util/pos_embed.py interpolate_pos_embed does. (The layer-wise lr
scales are checked in the C test against literal values of MAE's
param_groups_lrd.) Exits 77 when torch is missing.
"""
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit(77)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402


def main():
    out = sys.argv[1]
    g = torch.Generator().manual_seed(0)
    D, gh, gw, nh, nw = 6, 3, 4, 5, 7
    pos = torch.randn(1, gh * gw, D, generator=g)
    grid = pos.reshape(1, gh, gw, D).permute(0, 3, 1, 2)
    new = F.interpolate(grid, size=(nh, nw), mode='bicubic', align_corners=False)
    new = new.permute(0, 2, 3, 1).reshape(nh * nw, D)
    stio.save(out, {'pos_in': pos.reshape(gh * gw, D).contiguous(), 'pos_out': new.contiguous()}, {})


if __name__ == '__main__':
    main()
