"""All metadata lives in setup.cfg; this file only lets older pips build the package."""
from setuptools import setup

setup()
