"""``deepfake-lab eval ...``: measuring trained models."""

from __future__ import annotations

from pathlib import Path

import typer

from deepfake_lab.cli.common import (
    console,
    device_option,
    err_console,
    face_detector_option,
    face_model_option,
    fake_option,
    handle_errors,
    json_option,
    manifest_option,
    manifest_outside_option,
    no_progress_option,
    old_face_detector_option,
    pick_face_detector,
    real_option,
    seed_option,
    stage_progress,
)
from deepfake_lab.errors import without_path
from deepfake_lab.safe_text import for_console, for_records

eval_app = typer.Typer(help="Evaluate models.", no_args_is_help=True)


@eval_app.command("gan")
@handle_errors
def eval_gan_cmd(
    source: Path = typer.Argument(
        ..., help="Run folder, checkpoint, export folder, or a folder of generated images."
    ),
    ref: Path = typer.Option(..., "--ref", help="Folder of real images to compare with."),
    metrics: str = typer.Option(
        "fid,kid,pr", "--metrics", help="Comma-separated: fid, kid, is, pr, dc."
    ),
    features: str = typer.Option(
        "resnet56-cifar", "--features", help="Feature space (a registered extractor)."
    ),
    weights: Path = typer.Option(
        None,
        "--weights",
        help="Weights file of the feature space (torchscript: a module file, whose code runs; "
        "see --trust-torchscript).",
    ),
    trust_torchscript: bool = typer.Option(
        False,
        "--trust-torchscript",
        help="Allow --features torchscript to load --weights. Loading a TorchScript or .pt2 "
        "file RUNS ITS CODE with your permissions (it can read, write or delete files): only "
        "for files you would run as programs.",
    ),
    num: int = typer.Option(
        10000, "--num", help="Images to sample (a folder: at most this many of its images)."
    ),
    batch: int = typer.Option(64, "--batch", help="Images per forward pass."),
    device: str = device_option(),
    seed: int = seed_option(0, "Seed of the first sample (image i: seed+i)"),
    size: int = typer.Option(
        None,
        "--size",
        help="Image size in px for both sets (default: the generator's; for a folder of "
        "images, the reference images' own).",
    ),
    cache_dir: Path = typer.Option(
        None, "--cache-dir", help="Reference-statistics cache (default ~/.cache/deepfake-lab)."
    ),
    json_out: Path = json_option("Also write the results to this file"),
    no_progress: bool = no_progress_option(),
) -> None:
    """Score generated faces against real ones: FD (FID), KID, IS, precision/recall, ...

    --features torchscript runs the code of the --weights file, and only with
    --trust-torchscript."""
    import warnings

    from rich.table import Table

    from deepfake_lab.evaluation.evaluate import evaluate_gan, metric_rows
    from deepfake_lab.io import atomic_write_json
    from deepfake_lab.metrics.features.torchscript import TrustedCodeWarning

    stages = {"fake": "generated images", "real": "reference images"}
    with warnings.catch_warnings(), stage_progress(stages, disable=no_progress) as report:
        show = warnings.showwarning

        def say(message, category, *args, **kwargs):  # type: ignore[no-untyped-def]
            # When the file is loaded, as one line of ours, not Python's two-line warning.
            if issubclass(category, TrustedCodeWarning):
                err_console.print(f"[bold yellow]warning:[/] {message}", highlight=False)
            else:
                show(message, category, *args, **kwargs)

        warnings.showwarning = say
        warnings.simplefilter("always", TrustedCodeWarning)
        result = evaluate_gan(
            source,
            ref,
            metrics=metrics,
            features=features,
            weights=weights,
            num=num,
            batch=batch,
            device=device,
            seed=seed,
            cache_dir=cache_dir,
            progress=report,
            size=size,
            trust_torchscript=trust_torchscript,
        )
    console.print(
        f"feature space {result['feature_space']} ({result['label']}): "
        f"{result['num_fake']} generated vs {result['num_real']} reference images",
        highlight=False,
    )
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metric_rows(result):
        table.add_row(name, value)
    console.print(table)
    if result.get("ref_cache"):
        hit = "reused" if result["ref_cache"]["hit"] else "computed and cached"
        console.print(
            f"reference statistics {hit}: {result['ref_cache']['path']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if json_out is not None:
        atomic_write_json(json_out, for_records(result))  # undecodable names as \xNN
        console.print(f"wrote {json_out}", highlight=False, markup=False)


@eval_app.command("detector")
@handle_errors
def eval_detector_cmd(
    source: Path = typer.Argument(
        ..., help="Detector run folder, checkpoint or export, or a released detector (meso4:DF)."
    ),
    real: list[Path] = real_option(what="Folder of real images (repeatable)"),
    fake: list[Path] = fake_option(),
    manifest: Path = manifest_option(),
    manifest_outside: bool = manifest_outside_option(),
    videos: list[Path] = typer.Option(
        [], "--videos", help="FaceForensics++ / VoxCeleb tree: videos labelled by their path."
    ),
    json_path: Path = json_option("Write the results as JSON here"),
    out: Path = typer.Option(None, "--out", help="Folder for ROC/PR/reliability PNGs."),
    no_robustness: bool = typer.Option(False, "--no-robustness", help="Skip the sweep."),
    attacks: bool = typer.Option(
        False, "--attacks", help="Also white-box FGSM and PGD at epsilon 1, 2, 4 / 255."
    ),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Resamples for 95% intervals."),
    batch: int = typer.Option(128, "--batch", help="Images per forward pass."),
    device: str = device_option(),
    aggregate: str = typer.Option(
        "mean", "--aggregate", help="Videos: mean | max-face | topk (face scores -> video)."
    ),
    topk: int = typer.Option(5, "--topk", help="Videos: k of --aggregate topk."),
    frames: int = typer.Option(
        32, "--frames", help="Videos: evenly spaced frames per video (0: use --stride)."
    ),
    stride: int = typer.Option(1, "--stride", help="Videos with --frames 0: every Nth frame."),
    max_frames: int = typer.Option(None, "--max-frames", help="Videos with --frames 0: cap."),
    face_detector: str = face_detector_option("Videos: face detector, "),
    old_detector: str | None = old_face_detector_option(),
    face_model: Path = face_model_option("Videos: YuNet ONNX file"),
) -> None:
    """Measure a detector: ROC-AUC, AP, EER, accuracy/precision/recall/F1, ECE, robustness
    (and white-box attacks with --attacks). Videos among --real/--fake (files, or found in
    the folders) are scored per video: faces found, tracked, scored and aggregated."""
    from rich.progress import Progress

    from deepfake_lab.errors import UserError

    face_detector = pick_face_detector(face_detector, old_detector)
    from deepfake_lab.evaluation.detector_eval import VideoOptions, evaluate_detector

    if frames < 0 or stride < 1 or (max_frames is not None and max_frames < 1):
        raise UserError("--frames must be 0 or more, --stride and --max-frames 1 or more")
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("videos", total=None, visible=False)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, visible=True)

        video = VideoOptions(
            aggregate, topk, frames or None, stride, max_frames, face_detector, face_model, report
        )
        r = evaluate_detector(
            source,
            real,
            fake,
            manifest,
            json_path,
            out,
            robustness=not no_robustness,
            attacks=attacks,
            n_boot=bootstrap,
            batch=batch,
            device=device,
            video=video,
            videos_from=videos,
            manifest_outside=manifest_outside,
        )
    if "roc_auc" in r:
        _print_image_metrics(r)
    for note in r.get("notes", []):
        console.print(f"[yellow]note:[/] {for_console(note)}", highlight=False)
    if "videos" in r:
        _print_video_metrics(r["videos"])
    if json_path:
        console.print(f"wrote {json_path}", highlight=False, markup=False)


def _print_image_metrics(r: dict) -> None:
    from rich.table import Table

    from deepfake_lab.evaluation.detector_eval import POINT_KEYS

    table = Table(
        title=f"{r['model']['name']} on {r['n_real']} real + {r['n_fake']} fake "
        f"(threshold {r['threshold']:.3f}{'' if r['calibrated'] else ', uncalibrated'})"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("95% interval", justify="right")
    for k in POINT_KEYS:
        v = r.get(k)
        lo, hi = r.get("intervals", {}).get(k, (None, None))
        ci = f"{lo:.4f} - {hi:.4f}" if lo is not None else ""
        table.add_row(k, "n/a" if v is None else f"{v:.4f}", ci)
    console.print(table)
    u = r.get("uncertain")
    if u:
        why = ", ".join(f"{n} {reason}" for reason, n in u["reasons"].items()) or "none"
        acc = u["accuracy_decided"]
        console.print(
            f"uncertain: {100 * u['share']:.1f}% of images ({why}); accuracy on the rest "
            + ("n/a" if acc is None else f"{acc:.4f}"),
            highlight=False,
        )
    if r.get("robustness"):
        rob = Table(title="robustness (ROC-AUC / detection rate)")
        rob.add_column("perturbation")
        rob.add_column("ROC-AUC", justify="right")
        rob.add_column("recall", justify="right")
        for name, m in r["robustness"].items():
            auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
            rob.add_row(name, auc, f"{m['recall']:.4f}")
        console.print(rob)
    if r.get("attacks"):
        a = r["attacks"]
        adv = Table(title=f"white-box attacks (PGD {a['pgd_steps']} steps; epsilon in /255)")
        adv.add_column("attack")
        adv.add_column("ROC-AUC", justify="right")
        adv.add_column("accuracy", justify="right")
        adv.add_column("detection rate", justify="right")
        rows = [("clean", a["clean"])]
        names = ("fgsm", "pgd", "noise")  # noise: the random-sign control, same budget
        rows += [(f"{name} {k}/255", m) for name in names for k, m in a[name].items()]
        for name, m in rows:
            auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
            adv.add_row(name, auc, f"{m['accuracy']:.4f}", f"{m['detection_rate']:.4f}")
        console.print(adv)


def _print_video_metrics(v: dict) -> None:
    from rich.table import Table

    from deepfake_lab.evaluation.detector_eval import POINT_KEYS

    m, f = v["video"], v["frame"]
    table = Table(
        title=f"{m['n_real']} real + {m['n_fake']} fake videos ({v['aggregation']} of the face "
        f"scores; {f['n']} faces; threshold {v['threshold']:.3f})"
    )
    for col in ("metric", "per video", "95% interval", "per face"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for k in POINT_KEYS:
        lo, hi = m.get("intervals", {}).get(k, (None, None))
        table.add_row(
            k,
            "n/a" if m.get(k) is None else f"{m[k]:.4f}",
            f"{lo:.4f} - {hi:.4f}" if lo is not None else "",
            "n/a" if f.get(k) is None else f"{f[k]:.4f}",
        )
    console.print(table)
    agg = ", ".join(
        f"{a} {x['roc_auc']:.4f}" for a, x in v["aggregations"].items() if x["roc_auc"] is not None
    )
    console.print(f"video ROC-AUC by aggregation: {agg}", highlight=False)
    for note in m.get("notes", []):
        console.print(f"[yellow]note:[/] {for_console(note)}", highlight=False)
    for e in v["excluded"]:
        detail = without_path(e["detail"], e["path"])
        console.print(
            f"[yellow]left out:[/] {for_console(e['path'])}: {for_console(detail)}",
            highlight=False,
        )


def _add_commands() -> None:
    # The cross-source and resistance tables have their own modules; they join this group.
    from deepfake_lab.cli import eval_cross, eval_resistance

    eval_app.add_typer(eval_cross.commands)
    eval_app.add_typer(eval_resistance.commands)


_add_commands()
