"""``deepfake-lab serve``: an HTTP API and a page for people who check media.

:mod:`.app` builds the FastAPI application (``create_app``); :mod:`.limits` checks uploads
(size, type by content); :mod:`.jobs` runs video scans in a bounded queue; :mod:`.models`
holds the detectors loaded once at start. The page (``static/``) is plain HTML, CSS and
JavaScript served by the package: no build step, nothing fetched from elsewhere.
"""
