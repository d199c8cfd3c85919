"""lnnedge: train small continuous-time networks in PyTorch and run them on edge devices.

The public entry points most users need:

    from lnnedge.compiler import compile_module   # torch module + example inputs -> .lnnb
    from lnnedge.refvm import RefVM                # run a .lnnb in numpy (the oracle)
    from lnnedge.runtime import CVM                # run a .lnnb on the C VM (ctypes)
"""

__version__ = "0.1.0"
