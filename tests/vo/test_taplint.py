"""STILTS taplint (Debian `stilts`) against `colo up`'s TAP service: 0 errors, gated on the JSON
report's totals.ERROR."""
import json
import subprocess


def test_taplint_reports_no_errors(tap):
    out = subprocess.run(["stilts", "taplint", f"tapurl={tap}", "format=json", "report=EWF"],
                         capture_output=True, text=True, timeout=900)
    report = json.loads(out.stdout)
    errors = [r for s in report["sections"] for r in s["reports"] if r["level"] == "ERROR"]
    assert report["totals"]["ERROR"] == 0, "\n".join(f"{r['code']}: {r['text']}" for r in errors)
