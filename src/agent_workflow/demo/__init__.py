"""The offline demo: the whole lifecycle against the emulator, with real faults."""
