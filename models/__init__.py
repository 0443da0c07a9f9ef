"""Soi's models: architectures, the versioned registry and shipped artifacts.

Depends on nothing else of Soi. The registry arrives with the first model.
"""

__all__: list[str] = []
