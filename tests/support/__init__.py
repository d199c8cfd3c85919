"""Test support code: real parts the tests start and the faults they put on them. Production code never
imports this package (tests/test_devices.py checks)."""
