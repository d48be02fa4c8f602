"""The version of xpnn, at the bottom of the house so that any module may read it."""

__version__ = "0.1.0"
