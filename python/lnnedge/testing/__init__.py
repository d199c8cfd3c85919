"""Real parts for tests and trials: a local OpenSSH server standing in for a Raspberry Pi."""
