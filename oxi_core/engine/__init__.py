"""The loop: ingest, reap, observe, dispatch; and the daemon that repeats it."""
