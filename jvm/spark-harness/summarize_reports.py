"""Prints what the JVM harness's tests did, from Surefire's XML reports.

`mvn -q` prints nothing on success; this prints one line per skipped test with its reason (a
worker not built, or not yet speaking Spark's dialect), then the count line CI reads.
"""

from __future__ import annotations

import pathlib
import sys
import xml.etree.ElementTree as ElementTree


def skip_reason(skipped: ElementTree.Element) -> str:
    """The assumption's message: the attribute, or the first line of the exception text."""
    if skipped.get("message"):
        return skipped.get("message")
    first_line = (skipped.text or "").strip().splitlines()[:1]
    return first_line[0].split("Assumption failed: ", 1)[-1] if first_line else "no reason given"


def main() -> int:
    reports = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/surefire-reports")
    passed = failed = skipped = 0
    reasons: dict[str, int] = {}
    for report in sorted(reports.glob("TEST-*.xml")):
        for case in ElementTree.parse(report).getroot().iter("testcase"):
            outcome = {child.tag for child in case}
            if outcome & {"failure", "error"}:
                failed += 1
                print(f"FAILED {case.get('classname')}.{case.get('name')}")
            elif "skipped" in outcome:
                skipped += 1
                reason = skip_reason(case.find("skipped"))
                reasons[reason] = reasons.get(reason, 0) + 1
            else:
                passed += 1
    for reason, count in sorted(reasons.items()):
        print(f"skipped {count}: {reason}")
    print(f"spark-harness: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
