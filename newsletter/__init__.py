"""newsletter: compose, render, check and send a monthly email newsletter."""

__version__ = "0.1.0"
