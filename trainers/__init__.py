"""Thin trainers on TRL and PEFT that write checkpoints with lineage manifests."""
