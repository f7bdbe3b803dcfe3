"""Video: streaming decoding, face tracks and their temporal consistency.

:mod:`~deepfake_lab.video.decode` opens a clip with PyAV (FFmpeg), states what it holds
(:func:`~deepfake_lab.video.decode.probe`), yields RGB frames with their stream index and time
one at a time, never holding the whole video (``iter_frames``, ``iter_evenly_spaced``), reads
the audio track as mono float PCM (``read_audio``), and turns every broken, cut-short or
non-video file into a one-line ``VideoDecodeError`` raised after the good frames (the
container handling and decoding loop behind it are in :mod:`~deepfake_lab.video.demux`);
:mod:`~deepfake_lab.video.tracks` links per-frame face detections into tracks, and
:mod:`~deepfake_lab.video.temporal` measures their landmark jitter and appearance flicker.
:mod:`~deepfake_lab.video.scan` and :mod:`~deepfake_lab.video.detect_video` score videos;
:mod:`~deepfake_lab.video.mouth`, :mod:`~deepfake_lab.video.sync_signals` and
:mod:`~deepfake_lab.video.avsync` read audio-visual sync; :mod:`~deepfake_lab.video.render`
writes generated walks.
"""
