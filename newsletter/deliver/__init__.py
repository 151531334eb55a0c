"""Delivering: a campaign, the send rules, the send loop and the providers."""
