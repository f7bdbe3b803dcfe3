"""Benchmark: the watermark's robustness, false positives, visual cost, effect on generator
metrics, and speed; and invisible-watermark (dwtDctSvd) on the same images for comparison.

    python bench/watermark.py --gan runs/arch-compare/00001-fastgan64 \
        --real ../shared/data/ffhq-128 --real ../shared/data/portraits-cc0-256 \
        --weights ../shared/models/resnet56-4bfd9763.th --num 500

- Images: ``--num`` samples of the generator (seeds 0..num-1) at its own size; the 128 and
  256 px sets are the same samples Lanczos-upscaled (our trained generators are 64 px; the
  upscaled faces are smoother than native ones, so treat those rows as an optimistic case).
- Each is marked with the generator's payload, edited, and read with ``extract`` (crop
  search on): detection rate = payload decoded exactly; bit accuracy = raw bits before
  error correction that match (of the decode that succeeded, else the direct read).
- False positives: ``extract`` on every unmarked real photo (``--real``) and on the unmarked
  generated images; the decision rule is the code's (BCH + magic), not tuned here.
- Visual cost: PSNR and SSIM (scikit-image) of marked vs unmarked; FD-R56 of marked and
  unmarked 64 px samples against the first ``--real`` folder (needs ``--weights``).
- Speed: images/s of ``embed`` and ``extract`` (direct read; with the crop search) at 128 px.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageEnhance

from deepfake_lab.models.generators.loading import load_generator
from deepfake_lab.models.latents import latents_for_seeds
from deepfake_lab.pixels import to_uint8
from deepfake_lab.provenance import watermark as wm


def _codec(a: np.ndarray, fmt: str, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, fmt, quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _resize(a: np.ndarray, f: float) -> np.ndarray:
    h, w = a.shape[:2]
    interp = cv2.INTER_AREA if f < 1 else cv2.INTER_CUBIC
    return cv2.resize(a, (round(w * f), round(h * f)), interpolation=interp)


def _crop(a: np.ndarray, i: int, keep: float = 0.9) -> np.ndarray:
    """Keep 90 % of each side at a random (seeded) position: 19 % of the area is lost."""
    rng = np.random.default_rng(i)
    h, w = a.shape[:2]
    ch, cw = round(h * keep), round(w * keep)
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    return a[y0 : y0 + ch, x0 : x0 + cw]


def _bright(a: np.ndarray, f: float) -> np.ndarray:
    return np.asarray(ImageEnhance.Brightness(Image.fromarray(a)).enhance(f))


EDITS = {
    "none": lambda a, i: a,
    "jpeg90": lambda a, i: _codec(a, "JPEG", 90),
    "jpeg75": lambda a, i: _codec(a, "JPEG", 75),
    "jpeg50": lambda a, i: _codec(a, "JPEG", 50),
    "resize0.5": lambda a, i: _resize(a, 0.5),
    "resize2": lambda a, i: _resize(a, 2.0),
    "crop10": _crop,
    "bright-20%": lambda a, i: _bright(a, 0.8),
    "bright+20%": lambda a, i: _bright(a, 1.2),
    "webp": lambda a, i: _codec(a, "WEBP", 80),
}


def sample(run: str, num: int) -> tuple[np.ndarray, str]:
    """``num`` uint8 (N, H, W, 3) samples of a generator and its weights' sha256."""
    loaded = load_generator(run, device="cpu")
    G = loaded.model
    out = []
    with torch.no_grad():
        for start in range(0, num, 64):
            seeds = list(range(start, min(num, start + 64)))
            out.append(to_uint8(G(latents_for_seeds(seeds, G.z_dim)).clamp(-1, 1)))
    return np.concatenate(out), loaded.identity["weights_sha256"]


def robustness(images: np.ndarray, payload: wm.Payload) -> tuple[dict, dict]:
    from skimage.metrics import structural_similarity

    truth = wm.coded_bits(payload)
    rows = {k: {"found": 0, "bit_acc": []} for k in EDITS}
    psnr, ssim = [], []
    for i, img in enumerate(images):
        marked = wm.embed(img, payload)
        psnr.append(cv2.PSNR(marked, img))
        ssim.append(structural_similarity(marked, img, channel_axis=2, data_range=255))
        for name, edit in EDITS.items():
            r = wm.extract(edit(marked, i))
            rows[name]["found"] += int(r.found and r.payload == payload)
            if r.bits is not None:
                rows[name]["bit_acc"].append(float(np.mean(r.bits == truth)))
    n = len(images)
    table = {
        k: {"detect": v["found"] / n, "bit_acc": float(np.mean(v["bit_acc"]))}
        for k, v in rows.items()
    }
    cost = {
        "psnr_mean": float(np.mean(psnr)),
        "psnr_min": float(np.min(psnr)),
        "ssim_mean": float(np.mean(ssim)),
        "ssim_min": float(np.min(ssim)),
    }
    return table, cost


def invisible_watermark(images: np.ndarray) -> dict:
    """invisible-watermark's dwtDctSvd with a random 64-bit payload (no error correction:
    the library has none), same edits; it refuses images under 256x256."""
    try:
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except ImportError:
        return {"skipped": "pip install --no-deps invisible-watermark; pip install PyWavelets"}
    rng = np.random.default_rng(0)
    res: dict = {}
    for name in ("none", "jpeg75", "jpeg50", "resize0.5", "crop10", "bright+20%"):
        exact, acc, refused = 0, [], 0
        for i, img in enumerate(images):
            bits = rng.integers(0, 2, 64).tolist()
            enc = WatermarkEncoder()
            enc.set_watermark("bits", bits)
            try:
                marked = enc.encode(cv2.cvtColor(img, cv2.COLOR_RGB2BGR), "dwtDctSvd")
            except Exception as exc:  # the library's own refusal (image too small)
                return {"refused": str(exc)}
            edited = EDITS[name](cv2.cvtColor(marked, cv2.COLOR_BGR2RGB), i)
            try:
                got = WatermarkDecoder("bits", 64).decode(
                    cv2.cvtColor(edited, cv2.COLOR_RGB2BGR), "dwtDctSvd"
                )
            except Exception:  # the decoder refuses images under 256 px (after a resize/crop)
                refused += 1
                continue
            hit = np.array(got) == np.array(bits)
            exact += int(hit.all())
            acc.append(float(hit.mean()))
        res[name] = {
            "exact": exact / len(images),
            "bit_acc": float(np.mean(acc)) if acc else None,
            "refused": refused / len(images),
        }
    return res


def false_positives(folders: list[str], unmarked: np.ndarray) -> dict:
    out = {}
    for folder in folders:
        files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".png", ".jpg"))
        hits = sum(wm.extract(np.asarray(Image.open(f).convert("RGB"))).found for f in files)
        out[Path(folder).name] = {"images": len(files), "hits": hits}
    hits = sum(wm.extract(img).found for img in unmarked)
    out["unmarked generated"] = {"images": len(unmarked), "hits": hits}
    out["bound_per_image"] = wm.false_positive_bound()
    return out


def fd_effect(images: np.ndarray, payload: wm.Payload, ref: str, weights: str) -> dict:
    from deepfake_lab.evaluation.evaluate import evaluate_gan

    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, marked in (("unmarked", False), ("marked", True)):
            folder = Path(tmp) / name
            folder.mkdir()
            for i, img in enumerate(images):
                Image.fromarray(wm.embed(img, payload) if marked else img).save(
                    folder / f"{i:05d}.png"
                )
            r = evaluate_gan(
                folder, ref, metrics="fid,kid", weights=weights, num=len(images), device="cpu"
            )
            res[name] = {"fd_r56": r["fid"], "kid": r["kid_mean"]}
    return res


def speed(images: np.ndarray, payload: wm.Payload, repeats: int = 5) -> dict:
    imgs = [cv2.resize(a, (128, 128), interpolation=cv2.INTER_LANCZOS4) for a in images[:32]]
    marked = [wm.embed(a, payload) for a in imgs]
    cropped = [_crop(m, i) for i, m in enumerate(marked[:8])]
    jobs = {
        "embed": (lambda: [wm.embed(a, payload) for a in imgs], len(imgs)),
        "extract (direct)": (lambda: [wm.extract(m, search=False) for m in marked], len(imgs)),
        "extract (crop search)": (lambda: [wm.extract(c) for c in cropped], len(cropped)),
    }
    out = {}
    for name, (job, n) in jobs.items():
        job()  # warm-up
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            job()
            times.append(time.perf_counter() - t)
        out[name] = n / statistics.median(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gan", required=True, help="generator run, checkpoint or export")
    ap.add_argument("--num", type=int, default=500)
    ap.add_argument("--real", action="append", default=[], help="unmarked real photos")
    ap.add_argument("--weights", help="resnet56 weights for the FD-R56 effect")
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--out", default="runs/watermark-bench.json")
    ap.add_argument("--only-speed", action="store_true", help="just the speed section")
    args = ap.parse_args()
    samples, sha = sample(args.gan, args.num)
    payload = wm.make_payload(sha)
    if args.only_speed:
        sp = speed(samples, payload)
        print(f"speed at 128 px (images/s, {torch.get_num_threads()} threads): {json.dumps(sp)}")
        return
    report: dict = {"num": args.num, "generator_size": int(samples.shape[1]), "sizes": {}}
    for size in map(int, args.sizes.split(",")):
        imgs = np.stack(
            [
                img
                if img.shape[0] == size
                else cv2.resize(img, (size, size), interpolation=cv2.INTER_LANCZOS4)
                for img in samples
            ]
        )
        t0 = time.perf_counter()
        table, cost = robustness(imgs, payload)
        report["sizes"][size] = {"edits": table, "cost": cost}
        print(f"\n{size} px ({time.perf_counter() - t0:.0f} s): {json.dumps(cost)}")
        print(f"  {'edit':<12} {'detect':>7} {'bit acc':>8}")
        for k, v in table.items():
            print(f"  {k:<12} {v['detect']:7.3f} {v['bit_acc']:8.4f}")
        if size >= 256:
            iw = invisible_watermark(imgs)
            report["sizes"][size]["invisible_watermark_dwtDctSvd"] = iw
            print(f"  invisible-watermark dwtDctSvd: {json.dumps(iw)}")
        elif size == min(map(int, args.sizes.split(","))):
            report["sizes"][size]["invisible_watermark_dwtDctSvd"] = invisible_watermark(imgs[:1])
    if args.real:
        fp = false_positives(args.real, samples)
        report["false_positives"] = fp
        print(f"\nfalse positives: {json.dumps(fp)}")
        if args.weights:
            fd = fd_effect(samples, payload, args.real[0], args.weights)
            report["fd_r56"] = fd
            print(f"FD-R56 vs {args.real[0]}: {json.dumps(fd)}")
    sp = speed(samples, payload)
    report["speed_images_per_s_128px"] = sp
    print(f"speed at 128 px (images/s, {torch.get_num_threads()} threads): {json.dumps(sp)}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
