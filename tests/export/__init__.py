"""Tests of //export: the exporter library and command line."""
