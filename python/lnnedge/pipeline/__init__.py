"""The steps a user runs — train, compile, build, run, verify, deploy, quantize-check, bench, stream — as
functions with typed inputs that return report objects (reports.py) and print nothing.

tasks.py parses the command line, calls one of them and hands the report to lnnedge.console. Each module is
imported on its own (this package imports none of them), so a task loads only what it needs.
"""
