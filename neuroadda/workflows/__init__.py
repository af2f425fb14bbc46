"""Use cases composed from the stages: pretrain, finetune, adapt, the transfer study (the CLI calls these)."""
