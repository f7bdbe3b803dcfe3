"""Face datasets: from folders of photos and videos to aligned crops, and the labelled
sets detectors train on.

* ``prepare`` / ``prepare_video`` / ``prepare_run``: ``data prepare`` (detect, align, crop,
  manifest; bad files rejected with a reason, re-runs resume).
* ``layouts`` / ``video_layouts``: CelebA, FFHQ, FaceForensics++, VoxCeleb or any tree.
* ``decode``: safe image decoding (pixel limits, EXIF orientation, colour profiles).
* ``dataset``: GAN training images; ``detection``: real/fake detector sets and manifests.
* ``resolution``: native-size checks (a resize history must not be a label).
* ``sbi`` / ``pseudo``: self-blended pseudo-fakes; ``zoo*``: the generator zoo.
* ``procedural*``: the built-in drawn faces of the demo (no real person).
"""
