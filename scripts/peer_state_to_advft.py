"""Renames a state_dict of the peers' PreActResNet-18 (../shared/peer/peer_bench_defs.py: one flat
`layers.N` list, `sc` shortcuts, `fc` head) to the reference PreActResNet names that advft loads
(`layerS.J`, `shortcut.0`, `linear`), so that advft fine-tunes from the very weights the peer
fine-tunes from: the Fashion-MNIST comparison then differs only in the fine-tune itself.

    python3 scripts/peer_state_to_advft.py PEER_STATE.pt OUT.pt

The peer normalizes nothing: run advft on it with --mean 0 --std 1.
"""
import re
import sys

import torch

BLOCKS_PER_STAGE = [2, 2, 2, 2]  # PreActResNet-18


def advft_name(name):
    match = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
    if match:
        index, rest = int(match.group(1)), match.group(2)
        for stage, blocks in enumerate(BLOCKS_PER_STAGE):
            if index < blocks:
                rest = re.sub(r"^sc\.", "shortcut.0.", rest)
                return f"layer{stage + 1}.{index}.{rest}"
            index -= blocks
        raise SystemExit(f"peer_state_to_advft: {name}: more blocks than PreActResNet-18 has")
    return re.sub(r"^fc\.", "linear.", name)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    source, target = sys.argv[1], sys.argv[2]
    state = torch.load(source, map_location="cpu")
    renamed = {advft_name(name): tensor.contiguous() for name, tensor in state.items()}
    torch.save(renamed, target)
    print(f"peer_state_to_advft: {len(renamed)} tensors of {source} saved as {target}")


if __name__ == "__main__":
    main()
