"""The binding and the test harness of this tree, as nova-shim/tests has."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(SOURCE, "python-ctypes"))
sys.path.insert(0, os.path.join(SOURCE, "tests", "harness"))
