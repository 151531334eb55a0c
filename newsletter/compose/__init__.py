"""Composing: an issue file becomes HTML and plain text."""
