"""``ftbench train``: one stage with a thin TRL + PEFT trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ftbench.harness.app.cli_common import VerboseOption, guarded
from ftbench.harness.app.display import Display, library_output
from ftbench.harness.core.yamlfile import read_yaml_mapping

train_app = typer.Typer(
    help="Thin TRL + PEFT trainers that write checkpoints with lineage manifests.", no_args_is_help=True
)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML training config.")]
ForceOption = Annotated[bool, typer.Option(help="Train again even when the output is up to date.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a setting: KEY=VALUE, e.g. trl.learning_rate=1e-4.")
]


def _train(method_name: str, config: Path | None, assignments: list[str] | None, force: bool, verbose: bool) -> None:
    if config is not None:  # a missing or malformed file is refused before TRL and torch load (seconds)
        read_yaml_mapping(config, "training config", "give a YAML file")
    from ftbench.trainers.config import load_settings
    from ftbench.trainers.methods import get_method
    from ftbench.trainers.stage import run_stage

    method = get_method(method_name)
    settings = load_settings(method.defaults, config, assignments or [])
    display = Display()
    log = settings.output.parent / f"{settings.output.name}.log"

    try:
        with library_output(log, verbose):
            result = run_stage(method, settings, force, display.show)
    finally:
        display.stop()
    print(f"{'reused up-to-date' if result.reused else 'wrote'} {method_name} stage {result.path}")
    if result.manifest.training is not None:
        for line in result.manifest.training.summary():
            print(line)


def _command(method_name: str, summary: str) -> None:
    """Register ``ftbench train METHOD``."""

    def command(
        config: ConfigOption = None,
        assignments: SetOption = None,
        force: ForceOption = False,
        verbose: VerboseOption = False,
    ) -> None:
        _train(method_name, config, assignments, force, verbose)

    command.__doc__ = summary
    train_app.command(method_name)(guarded(command))


for _name, _summary in (
    ("sft", "Supervised fine-tuning on Countdown solver traces, UltraFeedback chosen responses and tasks' rows."),
    ("dpo", "DPO on on-policy Countdown pairs (ranked by the task's reward) and UltraFeedback pairs."),
    ("rloo", "RLOO on Countdown prompts, rewarded by the Countdown task's scoring function."),
    ("reward", "Train a reward model (the default win-rate judge) on UltraFeedback preference pairs."),
):
    _command(_name, _summary)
