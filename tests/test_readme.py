"""The README as a reader meets it: its Python blocks run as written in a fresh interpreter, its quick start is the two
make commands, and every genlab name its code uses exists after `import genlab`."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_snippets_run_in_a_fresh_interpreter(tmp_path):
    """Every ```python block, in order (later ones use names from earlier ones), as one script in a new process:
    nothing imported or set up by the test session can make a block pass that fails for a reader."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    script = tmp_path / "readme_blocks.py"
    script.write_text("\n".join(blocks))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "runs" / "my-ae" / "model.safetensors").is_file()


def test_readme_quick_start_is_make_demo_and_make_test():
    text = README.read_text()
    quick = text.split("## Quick start", 1)[1].split("##", 1)[0]
    commands = [line.split("#")[0].strip() for line in re.findall(r"```sh\n(.*?)```", quick, flags=re.S)[0].splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


def test_every_genlab_name_the_readme_uses_in_code_resolves_after_a_plain_import():
    """``genlab.evaluate.evaluate``, ``genlab.latent.interpolate_codes``, ... as written in the README's code (blocks
    and inline code), reached from ``import genlab`` alone in a fresh interpreter."""
    text = README.read_text()
    prose = re.sub(r"```.*?```", " ", text, flags=re.S)
    code = " ".join(re.findall(r"```python\n(.*?)```", text, flags=re.S) + re.findall(r"`([^`]+)`", prose))
    names = sorted({m for m in re.findall(r"\bgenlab(?:\.[A-Za-z_]\w*)+", code) if not m.endswith(".lock")})
    assert {"genlab.evaluate.evaluate", "genlab.latent.interpolate_codes", "genlab.load"} <= set(names)
    probe = "import genlab\n" + "".join(f"{name}\n" for name in names)
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
