"""The application on top of the library: the command line, the pipeline, baselines and the gate."""

import logging

LIBRARY_LOGGERS = (
    "lm_eval",
    "lm-eval",
    "transformers",
    "datasets",
    "trl",
    "peft",
    "accelerate",
    "bitsandbytes",
    "ray",
    "vllm",
    "absl",
)
"""The libraries whose logs go to a command's log file (and the console with ``--verbose``)."""

for _name in LIBRARY_LOGGERS:  # what they log before a command sets up its log (imports) goes nowhere, not to stderr
    logging.getLogger(_name).addHandler(logging.NullHandler())
