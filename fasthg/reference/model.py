"""The stacked hourglass network in plain PyTorch: the oracle every fused module is tested against.

Parameter names, shapes and the order of modules are those of princeton-vl's
``pytorch_stacked_hourglass`` (``models/layers.py`` and ``models/posenet.py``), so a state_dict
saved by either loads into the other. Written for clarity, not speed.
"""
from typing import Any

import torch
from torch import nn


class Conv(nn.Module):
    """Convolution with bias ('same' padding), optionally followed by BatchNorm and ReLU."""

    def __init__(self, inp_dim, out_dim, kernel_size=3, stride=1, bn=False, relu=True):
        super().__init__()
        self.inp_dim = inp_dim
        self.conv = nn.Conv2d(inp_dim, out_dim, kernel_size, stride, padding=(kernel_size - 1) // 2, bias=True)
        self.relu = nn.ReLU() if relu else None
        self.bn = nn.BatchNorm2d(out_dim) if bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.relu is not None:
            x = self.relu(x)
        return x


class Pool(nn.Module):
    """2x2 max-pooling (princeton's name for it)."""

    def __init__(self, kernel_size: int = 2, stride: int = 2) -> None:
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class Residual(nn.Module):
    """Pre-activation bottleneck: conv3(relu(bn3(conv2(relu(bn2(conv1(relu(bn1(x))))))))) + skip(x).

    conv1 is 1x1 (inp_dim -> out_dim/2), conv2 3x3, conv3 1x1 (-> out_dim). ``skip_layer`` is a 1x1
    conv used only when inp_dim != out_dim; it exists either way so state_dicts match princeton's.
    """

    def __init__(self, inp_dim: int, out_dim: int) -> None:
        super().__init__()
        mid = int(out_dim / 2)
        self.relu = nn.ReLU()
        self.bn1 = nn.BatchNorm2d(inp_dim)
        self.conv1 = Conv(inp_dim, mid, 1, relu=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = Conv(mid, mid, 3, relu=False)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = Conv(mid, out_dim, 1, relu=False)
        self.skip_layer = Conv(inp_dim, out_dim, 1, relu=False)
        self.need_skip = inp_dim != out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.skip_layer(x) if self.need_skip else x
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + residual


class Hourglass(nn.Module):
    """One hourglass of depth ``n``: up1(x) + upsample(low3(low2(low1(pool(x))))), recursing in low2.

    As in princeton's code, ``increase`` widens only the outermost level: the recursive call gets
    ``nf`` features and no increase.
    """

    residual_class = Residual  # what a subclass swaps to build the same network from other blocks
    pool_class = Pool

    def __init__(self, n: int, f: int, bn: bool | None = None, increase: int = 0) -> None:
        super().__init__()
        nf = f + increase
        self.up1 = self.residual_class(f, f)
        self.pool1 = self.pool_class(2, 2)
        self.low1 = self.residual_class(f, nf)
        self.n = n
        self.low2 = type(self)(n - 1, nf, bn=bn) if n > 1 else self.residual_class(nf, nf)
        self.low3 = self.residual_class(nf, f)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up1 = self.up1(x)
        low3 = self.low3(self.low2(self.low1(self.pool1(x))))
        return up1 + self.up2(low3)


class Merge(nn.Module):
    """1x1 conv that maps predictions or features back into the next stack's input."""

    def __init__(self, x_dim, y_dim):
        super().__init__()
        self.conv = Conv(x_dim, y_dim, 1, relu=False, bn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class StackedHourglass(nn.Module):
    """``nstack`` hourglasses with intermediate supervision; NCHW input (N, 3, H, W).

    Returns heatmaps of every stack, (N, nstack, oup_dim, H/4, W/4). H and W must be multiples
    of 64: the stem divides by 4 and each hourglass halves four more times.
    """

    residual_class = Residual  # what a subclass swaps to build the same network from other blocks
    hourglass_class = Hourglass
    pool_class = Pool

    def __init__(self, nstack: int = 8, inp_dim: int = 256, oup_dim: int = 16, bn: bool = False, increase: int = 0) -> None:
        super().__init__()
        self.nstack = nstack
        self.pre = nn.Sequential(
            Conv(3, 64, 7, 2, bn=True, relu=True),
            self.residual_class(64, 128),
            self.pool_class(2, 2),
            self.residual_class(128, 128),
            self.residual_class(128, inp_dim),
        )
        self.hgs = nn.ModuleList([nn.Sequential(self.hourglass_class(4, inp_dim, bn, increase)) for _ in range(nstack)])
        self.features = nn.ModuleList([
            nn.Sequential(self.residual_class(inp_dim, inp_dim), Conv(inp_dim, inp_dim, 1, bn=True, relu=True))
            for _ in range(nstack)
        ])
        self.outs = nn.ModuleList([Conv(inp_dim, oup_dim, 1, relu=False, bn=False) for _ in range(nstack)])
        self.merge_features = nn.ModuleList([Merge(inp_dim, inp_dim) for _ in range(nstack - 1)])
        self.merge_preds = nn.ModuleList([Merge(oup_dim, inp_dim) for _ in range(nstack - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        stack_preds = []
        for i in range(self.nstack):
            h = self.features[i][0](self.hgs[i](x))  # the features Residual
            preds, x = self.head(i, h, x)
            stack_preds.append(preds)
        return torch.stack(stack_preds, 1)

    def head(self, i, h, x):
        """Stack ``i``'s head on ``h``, the output of its features Residual: (preds, the next stack's x).

        feature = relu(bn(conv(h))) (``features[i][1]``), preds = outs[i](feature), and the next
        stack's input x + merge_preds[i](preds) + merge_features[i](feature); None after the last stack.
        """
        feature = self.features[i][1](h)
        preds = self.outs[i](feature)
        if i == self.nstack - 1:
            return preds, None
        return preds, x + self.merge_preds[i](preds) + self.merge_features[i](feature)


class PoseNet(StackedHourglass):
    """princeton-vl's PoseNet: the same network taking NHWC images (N, H, W, 3) with values in [0, 1]."""

    def __init__(self, nstack: int, inp_dim: int, oup_dim: int, bn: bool = False, increase: int = 0, **kwargs: Any) -> None:
        super().__init__(nstack, inp_dim, oup_dim, bn=bn, increase=increase)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        return super().forward(imgs.permute(0, 3, 1, 2))
