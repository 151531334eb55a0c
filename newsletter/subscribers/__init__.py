"""The list: subscriber lifecycle rules and imports from other tools."""
