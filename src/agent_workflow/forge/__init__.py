"""Forges (GitHub and its twins) behind one protocol."""
