"""``deepfake-lab generate``: sample images (or, with ``--video``, a latent walk) from a
trained generator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from deepfake_lab.cli.common import (
    console,
    device_option,
    handle_errors,
    no_progress_option,
    no_watermark_option,
    secret_file_option,
    seed_option,
    stage_progress,
    watermark_strength_option,
)
from deepfake_lab.errors import UserError
from deepfake_lab.safe_text import for_console

#: This module's top-level command(s); :mod:`deepfake_lab.cli.app` adds them to the root.
commands = typer.Typer()

#: The default crf, duplicated from ``video.render.DEFAULT_CRF`` so that ``--help`` does not
#: import PyAV and torch (a test checks they agree).
_DEFAULT_CRF = 18


@commands.command("generate")
@handle_errors
def generate_cmd(
    source: Path = typer.Argument(..., help="Run folder, checkpoint or export folder."),
    num: int | None = typer.Option(None, "--num", help="How many images (default 16)."),
    out: Path = typer.Option(..., "--out", help="Output folder (new or empty)."),
    seed: int = seed_option(0, "Seed of the first image (image i: seed+i)"),
    truncation: float = typer.Option(1.0, "--truncation", help="psi in [0, 1]."),
    grid: bool = typer.Option(False, "--grid", help="Also write grid.png."),
    batch: int = typer.Option(64, "--batch", help="Images per forward pass."),
    device: str = device_option(),
    no_watermark: bool = no_watermark_option(),
    secret_file: Path | None = secret_file_option(
        "Owner secret for the watermark's HMAC code (or $DEEPFAKE_LAB_WATERMARK_SECRET)"
    ),
    strength: float = watermark_strength_option(),
    sign_key: Path | None = typer.Option(None, "--sign-key", help="C2PA signing key (PEM)."),
    sign_cert: Path | None = typer.Option(
        None, "--sign-cert", help="C2PA certificate chain (PEM)."
    ),
    sign_alg: str = typer.Option("es256", "--sign-alg", help="C2PA signing algorithm."),
    style_mix: str | None = typer.Option(
        None,
        "--style-mix",
        help="A,B: one row mixing seed A's coarse styles with seed B's fine ones (stylegan2).",
    ),
    video: bool = typer.Option(
        False, "--video", help="Render a smooth latent walk to OUT/walk.mp4 (+ walk.json)."
    ),
    seconds: float | None = typer.Option(
        None, "--seconds", help="[--video] Length in seconds (default 8)."
    ),
    frames: int | None = typer.Option(
        None, "--frames", help="[--video] Length in frames (instead of --seconds)."
    ),
    fps: float = typer.Option(25.0, "--fps", help="[--video] Frames per second."),
    keyframes: int | None = typer.Option(
        None,
        "--keyframes",
        help="[--video] Faces the walk visits, seeds seed.. (default one per 2 s, >= 2).",
    ),
    loop: bool = typer.Option(False, "--loop", help="[--video] Return to the first face."),
    codec: str = typer.Option(
        "auto", "--codec", help="[--video] auto | h264 | mpeg4 | mjpeg (auto: h264, else mpeg4)."
    ),
    crf: int = typer.Option(
        _DEFAULT_CRF, "--crf", help="[--video] H.264 quality, 0-51, lower is better."
    ),
    size: int | None = typer.Option(
        None, "--size", help="[--video] Frame side in px, even (default: >= 256 px)."
    ),
    face_model: Path | None = typer.Option(
        None,
        "--face-model",
        help="[--video] YuNet ONNX for landmark jitter (without it: flicker only).",
    ),
    no_baseline: bool = typer.Option(
        False, "--no-baseline", help="[--video] Skip the independent-latents comparison."
    ),
    no_progress: bool = no_progress_option(),
) -> None:
    """Generate PNG images of faces of people who do not exist, with a JSON manifest; or,
    with --video, a smooth latent walk as MP4 with its temporal-consistency numbers.

    Every image and video frame carries an invisible watermark and AI-generated metadata
    (read images with ``deepfake-lab verify``); with --sign-key/--sign-cert images also get
    a signed C2PA manifest.
    """
    from deepfake_lab.provenance.marking import ProvenanceOptions

    options = ProvenanceOptions(
        watermark=not no_watermark,
        secret_file=secret_file,
        strength=strength,
        sign_key=sign_key,
        sign_cert=sign_cert,
        sign_algorithm=sign_alg,
    )

    def note(msg: str) -> None:
        console.print(f"[yellow]note:[/] {for_console(msg)}", highlight=False)

    if style_mix is not None:
        _style_mix(source, style_mix, out, truncation, device, options, note, video, num, grid)
        return
    if video:
        if num is not None or grid:
            raise UserError("--num and --grid are for images; with --video use --frames")
        _video(
            source,
            out,
            seed,
            truncation,
            device,
            options,
            note,
            no_progress,
            seconds=seconds,
            frames=frames,
            fps=fps,
            keyframes=keyframes,
            loop=loop,
            codec=codec,
            crf=crf,
            size=size,
            batch=batch,
            face_model=face_model,
            baseline=not no_baseline,
        )
        return
    video_only = {"--seconds": seconds, "--frames": frames, "--keyframes": keyframes}
    video_only |= {"--size": size, "--face-model": face_model}
    given = [k for k, v in video_only.items() if v is not None] + (["--loop"] if loop else [])
    if given:
        raise UserError(f"{', '.join(given)} only apply with --video")

    from deepfake_lab.generate import generate_images

    manifest = generate_images(
        source,
        16 if num is None else num,
        out,
        seed=seed,
        truncation=truncation,
        grid=grid,
        batch=batch,
        device=device,
        provenance=options,
        log=note,
    )
    if no_watermark:
        console.print("[yellow]--no-watermark: images are tagged but not watermarked[/]")
    console.print(
        for_console(
            f"wrote {manifest['num']} images to {out} "
            f"(model {manifest['model']['arch']}, weights "
            f"{manifest['model']['weights_sha256'][:12]})"
        )
    )


def _video(
    source: Path,
    out: Path,
    seed: int,
    truncation: float,
    device: str,
    options: Any,
    note: Any,
    no_progress: bool,
    **kwargs: Any,
) -> None:
    """``generate --video``: a progress bar around ``render_walk`` and a summary."""

    from deepfake_lab.video.render import MANIFEST_NAME, VIDEO_NAME, render_walk

    stages = {"render": "rendering", "measure": "measuring", "baseline": "baseline"}
    with stage_progress(stages, disable=no_progress) as report:
        m = render_walk(
            source,
            out,
            seed=seed,
            truncation=truncation,
            device=device,
            provenance=options,
            log=note,
            progress=report,
            **kwargs,
        )
    v, c, b = m["video"], m["consistency"], m["baseline"]
    quality = ", ".join(f"{k} {q}" for k, q in v["quality"].items())
    console.print(
        for_console(
            f"wrote {out / VIDEO_NAME}: {v['frames']} frames, {v['width']}x{v['height']}, "
            f"{v['fps']:g} fps, {v['encoder']} ({quality}), {m['walk']['keyframes']} "
            f"keyframes; manifest {out / MANIFEST_NAME}"
        ),
        highlight=False,
    )
    share = m["watermark_frames_verified"]
    if share is None:
        console.print("[yellow]--no-watermark: frames are tagged but not watermarked[/]")
    else:
        console.print(f"watermark verified in {share:.0%} of decoded frames", highlight=False)

    def numbers(r: dict[str, Any]) -> str:
        def f(x: float | None) -> str:
            return "n/a" if x is None else f"{x:.4f}"

        text = f"frame flicker {f(r['flicker'])} (high-pass {f(r['flicker_hf'])})"
        main = max(r.get("tracks") or [], key=lambda t: t["frames"], default=None)
        if main is not None and main["flicker"] is not None:
            text += f", face-crop flicker {f(main['flicker'])}"  # what `detect` reports
        jitter = r["landmark_jitter"]
        return text + ("" if jitter is None else f", landmark jitter {f(jitter)} IOD")

    console.print(f"walk:     {numbers(c)}", highlight=False)
    if b is not None:
        console.print(f"baseline: {numbers(b)} (independent latents per frame)", highlight=False)
    if c.get("landmark_jitter_skipped"):
        console.print(f"landmark jitter skipped: {c['landmark_jitter_skipped']}", highlight=False)


def _style_mix(source, text, out, truncation, device, options, note, video, num, grid) -> None:
    from deepfake_lab.generate import style_mix_grid

    if video or num is not None or grid:
        raise UserError("--style-mix makes one grid; leave out --video, --num and --grid")
    try:
        a, b = (int(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--style-mix takes two seeds, A,B (e.g. 3,7); got {text!r}") from None
    m = style_mix_grid(source, (a, b), out, truncation, device, options, log=note)
    console.print(
        f"style mix of seeds {a} and {b} ({len(m['crossovers'])} crossovers): "
        f"{Path(out) / m['grid']}",
        highlight=False,
        markup=False,
    )
