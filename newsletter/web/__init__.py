"""The public web side (`newsletter serve`)."""
