"""``ftbench train``: one stage with a thin TRL + PEFT trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from harness.app.cli_common import VerboseOption, guarded
from harness.app.display import Display, library_output

train_app = typer.Typer(
    help="Thin TRL + PEFT trainers that write checkpoints with lineage manifests.", no_args_is_help=True
)

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML training config.")]
ForceOption = Annotated[bool, typer.Option(help="Train again even when the output is up to date.")]
SetOption = Annotated[
    list[str] | None, typer.Option("--set", help="Override a setting: KEY=VALUE, e.g. trl.learning_rate=1e-4.")
]


def _train(method_name: str, config: Path | None, assignments: list[str] | None, force: bool, verbose: bool) -> None:
    from trainers.config import load_settings
    from trainers.methods import get_method
    from trainers.stage import run_stage

    method = get_method(method_name)
    settings = load_settings(method.defaults, config, assignments or [])
    display = Display()
    log = settings.output.parent / f"{settings.output.name}.log"
    try:
        with library_output(log, verbose):
            result = run_stage(
                method, settings, force, lambda step, total, logs: display.training(settings.stage, step, total, logs)
            )
    finally:
        display.stop()
    print(f"{'reused up-to-date' if result.reused else 'wrote'} {method_name} stage {result.path}")
    if result.manifest.training is not None:
        for line in result.manifest.training.summary():
            print(line)


@train_app.command("sft")
@guarded
def train_sft_command(
    config: ConfigOption = None,
    assignments: SetOption = None,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Supervised fine-tuning on Countdown solver traces and UltraFeedback chosen responses."""
    _train("sft", config, assignments, force, verbose)


@train_app.command("dpo")
@guarded
def train_dpo_command(
    config: ConfigOption = None,
    assignments: SetOption = None,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """DPO on on-policy Countdown pairs (ranked by the task's reward) and UltraFeedback pairs."""
    _train("dpo", config, assignments, force, verbose)


@train_app.command("rloo")
@guarded
def train_rloo_command(
    config: ConfigOption = None,
    assignments: SetOption = None,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """RLOO on Countdown prompts, rewarded by the Countdown task's scoring function."""
    _train("rloo", config, assignments, force, verbose)


@train_app.command("reward")
@guarded
def train_reward_command(
    config: ConfigOption = None,
    assignments: SetOption = None,
    force: ForceOption = False,
    verbose: VerboseOption = False,
) -> None:
    """Train a reward model (the default win-rate judge) on UltraFeedback preference pairs."""
    _train("reward", config, assignments, force, verbose)
