"""Candidate Grad-CAM layers of a network (for the GUI's block picker). torch lives here, in
radview.models, never in the GUI."""
from __future__ import annotations


def conv_blocks(module, default: str | None, limit: int = 10) -> tuple[str, ...]:
    """Candidate Grad-CAM layers: the stages of the network that hold convolutions (children of
    the top-level containers), the last `limit` of them, plus the manifest's default."""
    import torch.nn as nn

    def has_conv(m) -> bool:
        return any(isinstance(x, nn.Conv2d) for x in m.modules())

    names: list[str] = []
    for name, child in module.named_children():
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(child) > 1:
            names += [f"{name}.{i}" for i, sub in enumerate(child) if has_conv(sub)]
            if has_conv(child):
                names.append(name)
        elif has_conv(child) or (default and name == default):
            names.append(name)
    names = names[-limit:]
    if default and default not in names:
        names.append(default)
    return tuple(names)
