"""Video input: streaming frame and audio decoding with PyAV (FFmpeg), one frame at a time.

:mod:`deepfake_lab.video.decode` opens a clip, states what it holds (:func:`probe`), yields RGB
frames with their stream index and time without ever holding the whole video
(:func:`iter_frames`, :func:`iter_evenly_spaced`), reads the audio track as mono float PCM
(:func:`read_audio`), and turns every broken, cut-short or non-video file into a one-line
:class:`VideoDecodeError` that says where decoding stopped, after the good frames were yielded.
"""
