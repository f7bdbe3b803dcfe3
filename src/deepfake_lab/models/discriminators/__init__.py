"""discriminators."""
