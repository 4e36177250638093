"""Reads `buildifier --mode=check --lint=warn --format=json` on stdin; prints findings.

Usage: buildifier_report.py ALLOWED_FILE. Each line of ALLOWED_FILE that is not a
comment is "path: category", a warning that passes. Prints one line per file to
reformat and per other warning, then a summary; exits 1 if it printed any finding.
"""

import json
import sys


def main(allowed_file: str) -> int:
    allowed = set()
    with open(allowed_file, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                allowed.add(line)
    report = json.load(sys.stdin)
    findings = []
    passed = 0
    for entry in report.get("files", []):
        path = entry["filename"]
        if not entry.get("valid", True):
            findings.append(f"{path}: not valid Starlark (run buildifier on it)")
        if not entry.get("formatted", True):
            findings.append(f"{path}: not formatted (run tools/lint.sh --fix)")
        for warning in entry.get("warnings", []):
            if f"{path}: {warning['category']}" in allowed:
                passed += 1
                continue
            findings.append(
                f"{path}:{warning['start']['line']}: {warning['category']}:"
                f" {warning['message'].splitlines()[0]} ({warning['url']})"
            )
    for finding in findings:
        print(finding)
    files = len(report.get("files", []))
    print(
        f"buildifier: {files} files, {len(findings)} findings,"
        f" {passed} allowed warnings ({allowed_file})"
    )
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
