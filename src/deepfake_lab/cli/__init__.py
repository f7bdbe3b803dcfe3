"""The ``deepfake-lab`` command line: thin typer commands over the Python API."""
