"""The local live preview (`newsletter preview`)."""
