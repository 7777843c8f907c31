"""Reference data for tests/test_finetune.c (run with /usr/bin/python3).

Writes OUT (safetensors via stio): a position-embedding grid resized with
torch.nn.functional.interpolate(mode='bicubic', align_corners=False), as
MAE's util/pos_embed.py interpolate_pos_embed does, and the layer-wise lr
scales of MAE's util/lr_decay.py (param_groups_lrd) for a depth-4 ViT.
Exits 77 when torch is missing.
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


def layer_id_for_vit(name, num_layers):
    # MAE util/lr_decay.py
    if name in ['cls_token', 'pos_embed']:
        return 0
    elif name.startswith('patch_embed'):
        return 0
    elif name.startswith('blocks'):
        return int(name.split('.')[1]) + 1
    else:
        return num_layers


def main():
    out = sys.argv[1]
    g = torch.Generator().manual_seed(0)
    D, gh, gw, nh, nw = 6, 3, 4, 5, 7
    pos = torch.randn(1, gh * gw, D, generator=g)
    grid = pos.reshape(1, gh, gw, D).permute(0, 3, 1, 2)
    new = F.interpolate(grid, size=(nh, nw), mode='bicubic', align_corners=False)
    new = new.permute(0, 2, 3, 1).reshape(nh * nw, D)
    depth = 4
    names = ['cls_token', 'pos_embed', 'patch_embed.proj.weight', 'patch_embed.proj.bias']
    for i in range(depth):
        names += [f'blocks.{i}.norm1.weight', f'blocks.{i}.attn.qkv.weight', f'blocks.{i}.mlp.fc2.bias']
    names += ['norm.weight', 'fc_norm.weight', 'fc_norm.bias', 'head.weight', 'head.bias']
    decay = 0.75
    num_layers = depth + 1
    scales = [decay ** (num_layers - layer_id_for_vit(n, num_layers)) for n in names]
    stio.save(out, {'pos_in': pos.reshape(gh * gw, D).contiguous(), 'pos_out': new.contiguous(),
                    'lr_scales': torch.tensor(scales, dtype=torch.float32)},
              {'names': ','.join(names)})


if __name__ == '__main__':
    main()
