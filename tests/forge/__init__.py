"""Tests of the forge: the GitHub emulator and the REST adapter."""
