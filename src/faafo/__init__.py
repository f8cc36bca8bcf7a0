"""faafo: the Fractals app, built as small services that scale out."""

__version__ = "2.0.0.dev0"
