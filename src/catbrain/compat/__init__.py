"""The private APIs catbrain leans on, quarantined: one module per library, each use pinned by ``tests/test_compat.py``.

A library release that renames or removes one of these fails that test by name, instead of a run
somewhere deep in training.
"""
