"""``python -m deepfake_lab`` runs the CLI."""

from deepfake_lab.cli.app import main

main()
