"""Reference trainer: stands in for the separate training repository.

Its export (a SavedModel plus ``export.json``) is the contract that
``deploy/build-model`` consumes; see ``training/README.md``.
"""
