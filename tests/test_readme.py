"""The README's Python snippet runs as written (in a temporary directory)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    namespace = {}  # the blocks are one tour: later ones use names from earlier ones
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    assert (tmp_path / "runs" / "my-ae" / "model.safetensors").is_file()


def test_readme_quick_start_is_make_demo_and_make_test():
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in re.findall(r"```sh\n(.*?)```", quick, flags=re.S)[0].splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


def test_the_modules_the_readme_names_are_there_after_a_plain_import():
    import subprocess
    import sys

    code = "import genlab; genlab.evaluate.evaluate; genlab.evaluate.evaluate_run; genlab.latent.interpolate; genlab.latent.traverse"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
