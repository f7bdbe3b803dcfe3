"""Video: streaming decoding, face tracks and their temporal consistency.

:mod:`~deepfake_lab.video.decode` opens a clip with PyAV (FFmpeg), states what it holds
(:func:`~deepfake_lab.video.decode.probe`), yields RGB frames with their stream index and time
one at a time, never holding the whole video (``iter_frames``, ``iter_evenly_spaced``), reads
the audio track as mono float PCM (``read_audio``), and turns every broken, cut-short or
non-video file into a one-line ``VideoDecodeError`` raised after the good frames;
:mod:`~deepfake_lab.video.tracks` links per-frame face detections into tracks, and
:mod:`~deepfake_lab.video.temporal` measures their landmark jitter and appearance flicker.
"""
