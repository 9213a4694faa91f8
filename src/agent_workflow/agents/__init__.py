"""Coding agents behind one protocol."""
