"""The README's set-up commands are the ones CI runs: keep them true."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    test_command = [line for line in ci if "pytest" in line]
    assert len(test_command) == 1 and test_command[0] in readme
    assert "LEDGER_REQUIRE_POSTGRES=1" in "\n".join(ci)
    assert "ledger demo" in readme
