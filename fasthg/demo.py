"""``python -m fasthg.demo``: a quick look at the network until training lands (``make train`` runs it).

Builds the reference 2-stack PoseNet and fasthg's fused one with the same weights, runs both on a
random batch of NHWC images and prints the output shape and their largest difference.
"""
import time

import torch

import fasthg


def main():
    torch.manual_seed(0)
    reference = fasthg.reference.PoseNet(2, 64, 16).eval()
    fused = fasthg.PoseNet(2, 64, 16).eval()
    fused.load_state_dict(reference.state_dict())
    images = torch.rand(2, 128, 128, 3)
    with torch.no_grad():
        start = time.perf_counter()
        expected = reference(images)
        out = fused(images)
    print(f"PoseNet(nstack=2, inp_dim=64, oup_dim=16) on images {tuple(images.shape)} -> heatmaps {tuple(out.shape)}")
    print(f"fused vs reference: max |difference| {float((out - expected).abs().max()):.2e} "
          f"({time.perf_counter() - start:.2f} s for both, backend {fasthg.get_backend()!r})")


if __name__ == "__main__":
    main()
