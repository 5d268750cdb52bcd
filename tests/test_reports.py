"""Reports: numbers from stored results, planted payloads escaped, and the page as a browser shows it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from ftbench.harness.core.checkpoints import DataSource, Training
from ftbench.reports.analysis import analyse
from ftbench.reports.markdown import render_markdown
from ftbench.reports.report import write_report
from tests.devtools import FLAGS
from tests.records import make_manifest, make_record, with_request, write_results

PAYLOADS = [
    "<script>document.title='pwned'</script>",
    "</details></pre><b>broken</b>",
    "\"><img src=x onerror=\"document.body.setAttribute('data-pwned','1')\">",
]


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    base = make_record("a", "initial", "fp32", {"accuracy": [1, 1, 1, 1, 1, 0, 0, 0] * 4})
    worse = make_record("b", "initial", "nf4", {"accuracy": [0, 0, 0, 1, 1, 0, 1, 0] * 4})
    sft = make_record("c", "sft", "fp32", {"accuracy": [1, 1, 1, 1, 1, 0, 0, 0] * 4})
    for i, sample in enumerate(worse.samples):
        worse.samples[i] = sample.model_copy(update={"response": PAYLOADS[i % 3], "prompt": PAYLOADS[(i + 1) % 3]})
    return write_results(tmp_path / "results", [base, worse, sft])


def test_analysis_numbers(planted: Path) -> None:
    analysis = analyse([planted])
    assert analysis.baseline.label == "initial@fp32"
    deltas = {(d.variant.label, d.metric): d for d in analysis.deltas if d.metric == "accuracy"}
    nf4 = deltas[("initial@nf4", "accuracy")].comparison
    assert nf4 is not None and nf4.test == "mcnemar_exact" and nf4.n == 32
    assert nf4.delta == pytest.approx(3 / 8 - 5 / 8)
    assert nf4.p_value == pytest.approx(0.0768, abs=1e-3)  # 12 vs 4 discordant: 2 * P(X <= 4 | 16, 1/2)
    same = deltas[("sft@fp32", "accuracy")].comparison
    assert same is not None and same.delta == 0 and same.p_value == 1.0


def test_payloads_are_escaped(planted: Path, tmp_path: Path) -> None:
    files = write_report([planted], tmp_path / "report")
    html = files.html.read_text()
    assert html.count("<script") == 1  # only the page's own task filter
    assert "<img" not in html and "<b>broken" not in html
    assert html.count("<details") == html.count("</details>")
    assert "&lt;script&gt;document.title" in html
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)  # nothing to fetch
    assert "<link" not in html and "@import" not in html
    markdown = files.markdown.read_text()
    assert "## At a glance" in markdown and "| initial (initial) |" in markdown


@pytest.mark.slow
def test_page_renders_in_headless_chromium(planted: Path, tmp_path: Path) -> None:
    browser = shutil.which("chromium")
    assert browser, "chromium is needed for this test: `make test` installs Debian's chromium package"
    files = write_report([planted], tmp_path / "report")
    flags = [*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [browser, *flags, "--dump-dom", files.html.as_uri()], capture_output=True, text=True, timeout=120, check=True
    )
    assert '<table class="matrix">' in dom.stdout and dom.stdout.count("<svg") >= 2
    assert "<details>" in dom.stdout and "doc 0:" in dom.stdout
    assert "data-pwned" not in dom.stdout.split("<body", 1)[1].split(">", 1)[0]
    assert "<title>ftbench report" in dom.stdout and "pwned</title>" not in dom.stdout
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    shot = tmp_path / "report.png"
    subprocess.run(
        [browser, *flags, "--window-size=1280,1600", f"--screenshot={shot}", files.html.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert shot.stat().st_size > 20_000
    shutil.copy(shot, Path(__file__).resolve().parent.parent / "results" / "report-screenshot.png")
    assert re.search(r"initial@nf4", files.html.read_text())


def test_report_cli_refuses_an_unknown_baseline(planted: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from ftbench.harness.app.cli import app

    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["report", str(planted), "--out", str(out), "--baseline", "dpo"])
    assert result.exit_code == 2
    assert "baseline 'dpo' is not in the results; choose one of initial@fp32" in result.stderr
    assert not out.exists()
    ok = CliRunner().invoke(app, ["report", str(planted), "--out", str(out), "--baseline", "sft"])
    assert ok.exit_code == 0 and (out / "report.html").is_file()
    assert "Baseline: **sft@fp32**" in (out / "report.md").read_text()


def test_repeats_show_mean_and_sd_and_differing_settings_are_named(tmp_path: Path) -> None:
    first = make_record("a", "initial", "fp32", {"accuracy": [1.0, 0.0, 1.0, 1.0]})
    second = make_record("b", "initial", "fp32", {"accuracy": [0.0, 0.0, 1.0, 1.0]})
    second = with_request(second, seed=2)
    other = make_record("c", "sft", "fp32", {"accuracy": [1.0, 1.0, 1.0, 1.0]})
    other = with_request(other, limit=4)
    analysis = analyse([write_results(tmp_path / "r", [first, second, other])])
    cell = analysis.cells[("countdown", "accuracy", analysis.baseline)]
    assert cell.repeats == 2 and cell.value == pytest.approx(0.625)
    assert cell.repeat_sd == pytest.approx(0.1767767, abs=1e-6)  # sd of 0.75 and 0.5
    assert any("sft@fp32 differs from the baseline in limit" in note for note in analysis.notes)


def test_stages_table_reads_each_checkpoints_manifest(tmp_path: Path) -> None:
    base = make_record("a", "initial", "fp32", {"accuracy": [1, 0] * 4})
    sft = make_record("b", "sft", "fp32", {"accuracy": [1, 1] * 4})
    sft.variant.manifest = make_manifest(
        "sft",
        "sft",
        "checkpoints/initial",
        finetune="lora",
        data=[DataSource(name="countdown", source="s", split="train", rows=48)],
        training=Training(inputs_hash="i", steps=7, final_loss=0.498, wall_seconds=81.4),
    )
    files = write_report([write_results(tmp_path / "results", [base, sft])], tmp_path / "report")
    markdown = files.markdown.read_text()
    assert "| sft | sft | sft | initial | lora | countdown 48 | 7 | 0.498 | 81 |" in markdown
    assert "| initial | initial | unknown | – | – | – | – | – | – |" in markdown
    html = files.html.read_text()
    assert "<td>countdown 48</td>" in html and 'id="stages"' in html


def test_repeats_are_listed_with_each_repeats_value(tmp_path: Path) -> None:
    first = make_record("a", "initial", "fp32", {"accuracy": [1.0, 0.0, 1.0, 1.0]})
    second = with_request(make_record("b", "initial", "fp32", {"accuracy": [0.0, 0.0, 1.0, 1.0]}), repeat=1)
    markdown = render_markdown(analyse([write_results(tmp_path / "r", [first, second])]))
    section = markdown.split("## Repeated evaluations")[1].split("## Overview")[0]
    assert "| initial@fp32 | countdown | accuracy | 0.625 ± 0.177 | 0.750, 0.500 |" in section


def test_a_chosen_baseline_is_compared_in_full_on_the_first_screen(tmp_path: Path) -> None:
    """`--baseline lora` answers "full vs LoRA?" on the first screen even when nothing differs significantly."""
    initial = make_record("a", "initial", "fp32", {"accuracy": [1, 0, 1, 0] * 4})
    lora = make_record("b", "lora", "fp32", {"accuracy": [1, 1, 0, 0] * 4})
    full = make_record("c", "full", "fp32", {"accuracy": [1, 1, 1, 0] * 4})
    results = write_results(tmp_path / "r", [initial, lora, full])
    chosen = render_markdown(analyse([results], baseline="lora")).split("## Overview")[0]
    section = chosen.split("### Each variant against the baseline lora@fp32")[1]
    assert "| full@fp32 vs lora@fp32 | countdown | accuracy | +0.250 |" in section
    assert "Other significant changes" not in chosen
    default = render_markdown(analyse([results])).split("## Overview")[0]
    assert "Each variant against the baseline" not in default and "Other significant changes" in default
