"""Soi's training: dataset readers, synthetic phantoms, MONAI training, evaluation, export.

Depends on :mod:`models`, :mod:`inference` and :mod:`store`. Needs the ``train`` extra.
"""

__all__: list[str] = []
