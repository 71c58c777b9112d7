"""Golden-case conformance runner: `python -m sadtalker.conformance DIR [DIR ...]`."""
