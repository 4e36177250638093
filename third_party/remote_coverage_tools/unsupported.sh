#!/bin/sh
# Offline stand-in: coverage is not collected by this project. See third_party/README.md.
echo "remote_coverage_tools is an offline stand-in: coverage is not supported here" >&2
exit 1
